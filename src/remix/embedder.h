#pragma once
// How items are embedded for neighbour search (method.md section 5): the model's own hidden
// state (taken from the forward pass that runs anyway), the deterministic hashed n-gram
// embedder, or a sentence encoder.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "data/item.h"

namespace c3po::model {
class MoeModel;
}

namespace c3po::remix {

// Word unigrams and bigrams plus character trigrams of the lower-cased text, hashed (FNV-1a) into
// `dim` buckets with a hash-derived sign, then L2-normalised. Identical on every machine.
class HashedNgramEmbedder {
 public:
  explicit HashedNgramEmbedder(int dim = 512) : dim_(dim) {}
  std::string name() const { return "hash:dim=" + std::to_string(dim_); }
  torch::Tensor embed(const std::vector<std::string>& texts) const;  // [N, dim] f32 unit rows

 private:
  int dim_;
};

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


}  // namespace c3po::remix
