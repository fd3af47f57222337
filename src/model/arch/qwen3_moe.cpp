// Qwen3-MoE: q/k RMSNorm per head, explicit head_dim, no shared expert, dense layers by
// decoder_sparse_step and mlp_only_layers, optional sliding window.
#include "model/arch/arch.h"

namespace c3po::model {
namespace {

void read_config(const ConfigReader& f, ModelConfig& c) {
  read_common_fields(f, c, 1e-6, 10000.0);
  c.intermediate_size = f.positive("intermediate_size", 6144);
  c.moe_intermediate_size = f.positive("moe_intermediate_size");
  c.num_experts = f.positive("num_experts");
  c.top_k = f.positive("num_experts_per_tok");
  c.norm_topk_prob = f.boolean("norm_topk_prob", false);
  c.qkv_bias = c.o_bias = f.boolean("attention_bias", false);
  c.head_dim = f.integer("head_dim", 0);
  c.qk_norm = QkNorm::PerHead;
  read_optional_sliding_window(f, c);
  read_sparse_step_layers(f, c);
  finish_attention(c);
  check_experts(c, "num_experts");
}

TensorNames tensor_names(const ModelConfig&) { return TensorNames{}; }

}  // namespace

extern const Architecture kQwen3Moe{"qwen3_moe", read_config, tensor_names};

}  // namespace c3po::model
