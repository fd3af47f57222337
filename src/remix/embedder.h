#pragma once
// Text embedders that need no model forward (method.md section 5): the deterministic hashed
// n-gram embedder. The model's own embedder comes out of the engine's forward pass.
#include <torch/torch.h>

#include <string>
#include <vector>

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

}  // namespace c3po::remix
