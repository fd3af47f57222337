#pragma once
// BERT-family sentence encoders loaded from a sentence-transformers folder as users download it
// (all-MiniLM-L6-v2, bge, e5, gte; method.md section 5b): the exact fp32 BERT encoder, truncation at
// max_seq_length, the pooling of 1_Pooling/config.json and the Normalize module when listed.
#include <ATen/core/Tensor.h>  // at::Tensor is torch::Tensor

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace c3po::embed {

// sentence-transformers' pooling modes, in the order it concatenates them.
enum class Pooling { Cls, Max, Mean, MeanSqrtLen, WeightedMean, LastToken };
const char* pooling_name(Pooling p);  // "cls", "max", "mean", "mean_sqrt_len", "weightedmean", "lasttoken"

struct EncoderOptions {
  bool always_normalize = false;      // unit rows even if the folder lists no Normalize module
  std::optional<int> max_seq_length;  // instead of sentence_bert_config.json's (tokens incl. [CLS]/[SEP])
  // Texts per forward are limited to about this many tokens (at least one text): larger forwards
  // leave the cache and get slower per token (bench/embed). Does not change the result.
  int tokens_per_forward = 512;
};

class SentenceEncoder {
 public:
  // folder: a sentence-transformers folder (modules.json listing Transformer, Pooling and optionally
  // Normalize; the transformer in the folder itself or a subfolder such as 0_Transformer), or a plain
  // Hugging Face BERT folder, which gets sentence-transformers' default: mean pooling, no Normalize.
  // Every problem is a c3po::Error naming the file and the field.
  static std::unique_ptr<SentenceEncoder> load(const std::string& folder, const EncoderOptions& options = {});
  ~SentenceEncoder();

  // [N, dim()] float32 embeddings, computed at most `batch` texts (and tokens_per_forward) at a time;
  // texts are grouped by length so padding stays small, and the result does not depend on the
  // grouping. Rows are unit vectors iff normalizes().
  at::Tensor encode(const std::vector<std::string>& texts, int batch = 32) const;
  // The ids encode() feeds the model: stripped, lower-cased if the folder says so, tokenized with
  // special tokens and truncated to max_seq_length (the trailing [SEP] kept).
  std::vector<std::vector<std::int32_t>> token_ids(const std::vector<std::string>& texts) const;

  // "bert:<folder name>:<16 hex digits>", the digits hashing the configuration (model, pooling,
  // normalisation, truncation, tokenizer) and a sample of every weight tensor.
  std::string name() const;
  int dim() const;
  int max_seq_length() const;
  bool normalizes() const;
  const std::vector<Pooling>& pooling() const;

 private:
  struct Impl;
  explicit SentenceEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace c3po::embed
