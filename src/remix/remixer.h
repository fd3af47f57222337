#pragma once
// Test-time re-mixing as methods of the evaluation harness: for each test item, its neighbours in
// the reference store, their PrefixStates (cached across items under a memory budget), and one of
// mode finding, kernel regression, NGD or the oracle on the critical layers' core experts.
#include <torch/torch.h>

#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/item.h"
#include "eval/method.h"
#include "model/engine.h"
#include "remix/embedder.h"
#include "remix/neighbours.h"
#include "remix/options.h"
#include "remix/store.h"
#include "tokenizer/tokenizer.h"

namespace c3po::remix {

enum class MethodKind { Mode, Kernel, Ngd, Oracle, Icl };
MethodKind parse_method(const std::string& name);  // mode | kernel | ngd | oracle | icl
const char* method_name(MethodKind m);

// How items are embedded for neighbour search: the model's own mean-pooled hidden state at a
// decoder layer (computed in the forward pass that runs anyway), or the hashed n-gram embedder.
struct EmbedderChoice {
  enum class Kind { ModelLayer, Hash, Sentence };
  Kind kind = Kind::ModelLayer;
  int layer = -1;      // ModelLayer: decoder layer; -1 = the middle layer
  int hash_dim = 512;  // Hash
  std::string folder;  // Sentence: a sentence-transformers folder (all-MiniLM-L6-v2, bge, e5, gte)

  // "model", "model:layer=8", "hash", "hash:dim=256", "bert:FOLDER"
  static EmbedderChoice parse(const std::string& spec);
  int resolved_layer(const model::MoeModel& model) const;
};

// The embedder of a run: the model's own hidden states (taken from the forward pass), or a text
// embedder (hashed n-grams, or a sentence encoder loaded once).
class TextEmbedder {
 public:
  TextEmbedder(const EmbedderChoice& choice, const model::MoeModel& model);
  ~TextEmbedder();
  bool from_model() const { return choice_.kind == EmbedderChoice::Kind::ModelLayer; }
  int model_layer() const { return layer_; }
  // Recorded in stores: "model:layer=8", "hash:dim=512", "bert:<folder>:<hash>".
  const std::string& identity() const { return identity_; }
  // Unit rows [N, D] of texts (not for the model embedder).
  torch::Tensor embed(const std::vector<std::string>& texts) const;

 private:
  EmbedderChoice choice_;
  int layer_ = -1;
  std::string identity_;
  HashedNgramEmbedder hasher_;
  std::shared_ptr<const void> encoder_;  // embed::SentenceEncoder, kept out of this header
};

// The text an item is embedded by when the embedder reads text: question, then choices.
std::string embedding_text(const data::McItem& item);

data::McItem to_mc_item(const ReferenceItem& r);
ReferenceItem to_reference_item(const data::McItem& item);

// PrefixStates of references, least recently used evicted beyond the byte budget.
class PrefixCache {
 public:
  explicit PrefixCache(std::size_t budget_bytes) : budget_(budget_bytes) {}
  // The state of reference `index`, or nullptr.
  const model::PrefixState* find(int64_t index);
  const model::PrefixState* insert(int64_t index, model::PrefixState state);
  std::size_t bytes() const { return bytes_; }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  const std::vector<int64_t>& pinned() const { return pinned_; }
  // Pins `indices` in addition to what is pinned, for its lifetime: the earlier pins come back
  // when it ends, by return or by exception, so no state stays pinned for ever.
  class Pin {
   public:
    Pin(PrefixCache& cache, const std::vector<int64_t>& indices) : cache_(cache), before_(cache.pinned()) {
      std::vector<int64_t> all = before_;
      all.insert(all.end(), indices.begin(), indices.end());
      cache_.pin(all);
    }
    ~Pin() { cache_.pin(before_); }
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;

   private:
    PrefixCache& cache_;
    std::vector<int64_t> before_;
  };
  // The state of reference `index` or nullptr, without counting a hit or a miss.
  const model::PrefixState* peek(int64_t index) const;
  // Drops every entry (the counters stay).
  void clear();

 private:
  void pin(const std::vector<int64_t>& indices) { pinned_ = indices; }  // through Pin only
  void evict();
  std::size_t budget_, bytes_ = 0;
  int64_t hits_ = 0, misses_ = 0;
  std::list<int64_t> order_;  // most recent first
  struct Entry {
    model::PrefixState state;
    std::list<int64_t>::iterator where;
  };
  std::unordered_map<int64_t, Entry> entries_;
  std::vector<int64_t> pinned_;
};

// What the methods of one run share: the model, the store, the options, the neighbour cache.
class RemixSession {
 public:
  // The session keeps the store alive; model and tokenizer must outlive it. store may be null when
  // only the oracle runs (it needs no neighbours).
  RemixSession(const model::MoeModel& model, const tokenizer::Tokenizer& tok,
               std::shared_ptr<const ReferenceStore> store, RemixOptions options, CandidatePools pools,
               EmbedderChoice embedder, std::size_t cache_bytes);

  const model::MoeModel& model() const { return model_; }
  const tokenizer::Tokenizer& tokenizer() const { return tok_; }
  const ReferenceStore& store() const;
  const RemixOptions& options() const { return options_; }
  const std::vector<int>& critical_layers() const { return critical_; }
  const TextEmbedder& embedder() const { return embedder_; }
  PrefixCache& cache() { return cache_; }

  // Neighbours of a test item (cached for the item last asked about, so the methods of one item
  // share one search).
  const Neighbourhood& neighbours(const eval::ItemContext& ctx);
  // The PrefixState of reference i (computed by one forward on a miss), with its letter ids.
  struct Reference {
    const model::PrefixState* prefix;
    std::vector<int64_t> letter_ids;
    int gold;
  };
  Reference reference(int64_t index, double* flops);
  // The same for several references at once: every cache miss among them is computed in ONE
  // batched forward (the engine packs the prompts), so a neighbourhood costs one prefill call.
  // The states equal those of one-by-one forwards up to floating-point rounding. Indices may repeat.
  std::vector<Reference> references(const std::vector<int64_t>& indices, double* flops);
  // Model forwards run so far to compute references' PrefixStates (one per reference() miss, one
  // per references() call with misses).
  int64_t prefill_forwards() const { return prefill_forwards_; }

  void prepare(model::ForwardOptions& base) const;
  // References the task may use as neighbours: [N] bool.
  const torch::Tensor& pool_mask(const std::string& task);

 private:
  const model::MoeModel& model_;
  const tokenizer::Tokenizer& tok_;
  std::shared_ptr<const ReferenceStore> store_;
  RemixOptions options_;
  CandidatePools pools_;
  TextEmbedder embedder_;
  std::vector<int> critical_;
  PrefixCache cache_;
  std::unordered_map<int64_t, std::vector<int64_t>> letters_;
  int64_t prefill_forwards_ = 0;
  std::string last_item_;
  Neighbourhood last_neighbours_;
  std::unordered_map<std::string, torch::Tensor> pool_masks_;
};

// The method of a kind: a RemixMethod, or the icl baseline.
std::unique_ptr<eval::ItemMethod> make_method(std::shared_ptr<RemixSession> session, MethodKind kind);

class RemixMethod : public eval::ItemMethod {
 public:
  RemixMethod(std::shared_ptr<RemixSession> session, MethodKind kind) : session_(std::move(session)), kind_(kind) {}
  std::string name() const override { return method_name(kind_); }
  void prepare(model::ForwardOptions& base) override { session_->prepare(base); }
  eval::MethodOutcome run(const eval::ItemContext& ctx) override;
  nlohmann::json settings() const override;

 private:
  std::shared_ptr<RemixSession> session_;
  MethodKind kind_;
};

}  // namespace c3po::remix
