// DeepSeekMoE (remote code "deepseek"): the first first_k_dense_replace layers dense, then MoE
// every moe_layer_freq-th layer; n_shared_experts merged into one ungated MLP of width
// n_shared_experts * moe_intermediate_size; top-k renormalised only when norm_topk_prob and
// top_k > 1, with 1e-20 added to the denominator (as the remote code does).
#include "model/arch/arch.h"

#include "io/error.h"

namespace c3po::model {
namespace {

void read_config(const ConfigReader& f, ModelConfig& c) {
  read_common_fields(f, c, 1e-6, 10000.0);
  c.intermediate_size = f.positive("intermediate_size");
  c.moe_intermediate_size = f.positive("moe_intermediate_size");
  c.num_experts = f.positive("n_routed_experts");
  c.top_k = f.positive("num_experts_per_tok");
  c.norm_topk_prob = f.boolean("norm_topk_prob", false) && c.top_k > 1;
  c.topk_norm_eps = 1e-20;
  c.qkv_bias = c.o_bias = f.boolean("attention_bias", false);
  const std::string scoring = f.string("scoring_func", "softmax");
  if (scoring != "softmax") throw Error(c.source, "scoring_func", "unsupported '" + scoring + "' (expected softmax)");
  c.shared_expert_intermediate_size = f.non_negative("n_shared_experts", 0) * c.moe_intermediate_size;
  const int64_t first_dense = f.non_negative("first_k_dense_replace", 0);
  const int64_t freq = f.positive("moe_layer_freq", 1);
  c.layer_is_moe.assign(c.num_layers, false);
  for (int64_t i = 0; i < c.num_layers; ++i) c.layer_is_moe[i] = i >= first_dense && i % freq == 0;
  finish_attention(c);
  check_experts(c, "n_routed_experts");
}

TensorNames tensor_names(const ModelConfig&) {
  TensorNames n;
  n.shared_prefix = "model.layers.{i}.mlp.shared_experts.";
  return n;
}

}  // namespace

extern const Architecture kDeepseek{"deepseek", read_config, tensor_names};

}  // namespace c3po::model
