#pragma once
// What the methods of one run share: the model, the reference store, the options, the embedder,
// the neighbour search of the current item and the cache of references' PrefixStates.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "eval/method.h"
#include "model/engine.h"
#include "remix/embedder.h"
#include "remix/neighbours.h"
#include "remix/options.h"
#include "remix/prefix_cache.h"
#include "remix/store.h"
#include "tokenizer/tokenizer.h"

namespace c3po::remix {

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
  // The same for several references at once (indices may repeat). Each state missing from the
  // cache is computed by a forward of its own, so a state is the same bits whatever else was
  // cached. `flops` is charged for every distinct reference, cached or not: an item's reported
  // cost does not depend on the items before it.
  std::vector<Reference> references(const std::vector<int64_t>& indices, double* flops);
  // Model forwards run so far to compute references' PrefixStates (one per cache miss).
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

}  // namespace c3po::remix
