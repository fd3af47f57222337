// Mixtral: block_sparse_moe with experts w1 (gate), w3 (up), w2 (down); always renormalises the
// top-k weights (the config has no flag for it).
#include "model/arch/arch.h"

namespace c3po::model {
namespace {

void read_config(const ConfigReader& f, ModelConfig& c) {
  read_common_fields(f, c, 1e-5, 1e6);
  c.moe_intermediate_size = c.intermediate_size = f.positive("intermediate_size");
  c.num_experts = f.positive("num_local_experts");
  c.top_k = f.positive("num_experts_per_tok");
  c.norm_topk_prob = true;
  c.head_dim = f.integer("head_dim", 0);
  c.sliding_window = f.opt_integer("sliding_window");
  c.layer_is_moe.assign(c.num_layers, true);
  finish_attention(c);
  check_experts(c, "num_local_experts");
}

TensorNames tensor_names(const ModelConfig&) {
  TensorNames n;
  n.router = "model.layers.{i}.block_sparse_moe.gate.weight";
  n.expert_gate = "model.layers.{i}.block_sparse_moe.experts.{e}.w1.weight";
  n.expert_up = "model.layers.{i}.block_sparse_moe.experts.{e}.w3.weight";
  n.expert_down = "model.layers.{i}.block_sparse_moe.experts.{e}.w2.weight";
  return n;
}

}  // namespace

extern const Architecture kMixtral{"mixtral", read_config, tensor_names};

}  // namespace c3po::model
