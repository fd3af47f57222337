// Qwen1.5-MoE / Qwen2-MoE: q/k/v biases, one shared expert gated by sigmoid(shared_expert_gate · x),
// dense layers by decoder_sparse_step and mlp_only_layers, optional sliding window.
#include "model/arch/arch.h"

#include "io/error.h"

namespace c3po::model {
namespace {

void read_config(const ConfigReader& f, ModelConfig& c) {
  read_common_fields(f, c, 1e-6, 10000.0);
  c.intermediate_size = f.positive("intermediate_size", 5632);
  c.moe_intermediate_size = f.positive("moe_intermediate_size");
  c.num_experts = f.positive("num_experts");
  c.top_k = f.positive("num_experts_per_tok");
  c.norm_topk_prob = f.boolean("norm_topk_prob", false);
  c.shared_expert_intermediate_size = f.positive("shared_expert_intermediate_size", 5632);
  c.shared_expert_gated = true;
  c.qkv_bias = f.boolean("qkv_bias", true);
  read_optional_sliding_window(f, c);
  read_sparse_step_layers(f, c);
  finish_attention(c);
  check_experts(c, "num_experts");
}

TensorNames tensor_names(const ModelConfig&) {
  TensorNames n;
  n.shared_prefix = "model.layers.{i}.mlp.shared_expert.";
  n.shared_gate = "model.layers.{i}.mlp.shared_expert_gate.weight";
  return n;
}

}  // namespace

extern const Architecture kQwen2Moe{"qwen2_moe", read_config, tensor_names};

}  // namespace c3po::model
