// OLMoE: q/k RMSNorm over the whole projected vector before the head split, optional clip_qkv,
// a softmax router whose top-k weights are renormalised only when norm_topk_prob, no shared expert.
#include "model/arch/arch.h"

namespace c3po::model {
namespace {

void read_config(const ConfigReader& f, ModelConfig& c) {
  read_common_fields(f, c, 1e-5, 10000.0);
  c.moe_intermediate_size = c.intermediate_size = f.positive("intermediate_size");
  c.num_experts = f.positive("num_experts");
  c.top_k = f.positive("num_experts_per_tok");
  c.norm_topk_prob = f.boolean("norm_topk_prob", false);
  c.qkv_bias = c.o_bias = f.boolean("attention_bias", false);
  c.qk_norm = QkNorm::Full;
  c.clip_qkv = f.opt_number("clip_qkv");
  c.layer_is_moe.assign(c.num_layers, true);
  finish_attention(c);
  check_experts(c, "num_experts");
}

TensorNames tensor_names(const ModelConfig&) { return TensorNames{}; }

}  // namespace

extern const Architecture kOlmoe{"olmoe", read_config, tensor_names};

}  // namespace c3po::model
