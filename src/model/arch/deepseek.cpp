// DeepSeekMoE (remote code "deepseek"): leading dense layers, n_shared_experts merged into one
// ungated MLP of width n_shared * moe_intermediate_size.
#include "model/arch/spec.h"

namespace c3po::model {

ArchSpec deepseek_spec(const ModelConfig& c) {
  ArchSpec s;
  if (c.shared_expert_intermediate_size > 0) s.shared_prefix = "model.layers.{i}.mlp.shared_experts.";
  return s;
}

}  // namespace c3po::model
