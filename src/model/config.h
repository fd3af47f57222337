#pragma once
// The typed configuration of a supported MoE checkpoint, parsed from its config.json.
// No torch here: the CLI, the data code and tests include this cheaply.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace c3po::model {

// How the per-head or whole-vector q/k RMSNorm is applied (OLMoE: whole projected vector;
// Qwen3-MoE: per head; others: none).
enum class QkNorm { None, Full, PerHead };

struct ModelConfig {
  std::string model_type;  // olmoe, qwen2_moe, qwen3_moe, mixtral, deepseek
  std::string source;      // the config.json it was read from, for error messages

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;      // dense MLP width (dense layers)
  int64_t moe_intermediate_size = 0;  // width of one routed expert
  int64_t num_experts = 0;            // routed experts E
  int64_t top_k = 0;
  int64_t shared_expert_intermediate_size = 0;  // 0: no shared expert
  bool shared_expert_gated = false;             // Qwen2-MoE: sigmoid(shared_expert_gate · x) * shared(x)
  bool norm_topk_prob = false;                  // renormalise the k selected weights
  double topk_norm_eps = 0.0;                   // added to the renormalisation denominator
  std::vector<bool> layer_is_moe;  // per decoder layer

  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool qkv_bias = false;
  bool o_bias = false;  // bias on o_proj (HF attention_bias)
  QkNorm qk_norm = QkNorm::None;
  std::optional<double> clip_qkv;
  std::optional<int64_t> sliding_window;
  bool tie_word_embeddings = false;
  int64_t max_position_embeddings = 0;

  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;

  int64_t num_moe_layers() const;
  // Decoder layer index of MoE layer m (MoE layers are numbered 0..L-1 in model order).
  int64_t decoder_layer_of_moe(int64_t moe_layer) const;
};

// Parses folder/config.json (or the given .json file) through its architecture's reader
// (model/arch/). Unknown model_type, a missing required
// field or an inconsistent value is a c3po::Error naming the file and field.
ModelConfig load_config(const std::string& folder_or_file);
ModelConfig parse_config(const std::string& source, const std::string& json_text);

}  // namespace c3po::model
