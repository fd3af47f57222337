#pragma once
// The configuration files of a sentence-transformers folder and of the BERT inside it, validated.
// No LibTorch here.
#include <optional>
#include <string>
#include <vector>

#include "embed/sentence_encoder.h"

namespace c3po::embed {

struct SentenceTransformerLayout {
  std::string transformer_dir;   // holds config.json, model.safetensors, tokenizer.json
  std::vector<Pooling> pooling;  // sorted in concatenation order, no repeats
  std::string pooling_file;      // where the pooling came from ("" for the default)
  int pooling_dimension = 0;     // word_embedding_dimension when the pooling config gives it
  bool normalize = false;
  std::optional<int> max_seq_length;  // sentence_bert_config.json
  std::string max_seq_length_file;
  bool do_lower_case = false;
  std::optional<double> tokenizer_max_length;  // tokenizer_config.json model_max_length
  bool truncate_left = false;                  // tokenizer_config.json truncation_side
  std::string digest_text;  // the configuration texts that decide the output, for the name hash
};

// Reads modules.json, the pooling config, sentence_bert_config.json and tokenizer_config.json.
SentenceTransformerLayout read_layout(const std::string& folder);

enum class Activation { GeluErf, GeluTanh, Relu, Silu };

struct BertConfig {
  std::string file;  // config.json, for error messages
  int hidden = 0, layers = 0, heads = 0, intermediate = 0, max_positions = 0, type_vocab = 0, vocab = 0;
  double layer_norm_eps = 1e-12;
  Activation activation = Activation::GeluErf;
};

BertConfig read_bert_config(const std::string& path);

}  // namespace c3po::embed
