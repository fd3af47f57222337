// Qwen1.5/Qwen2-MoE: q/k/v biases, one shared expert gated by sigmoid(shared_expert_gate · x).
#include "model/arch/spec.h"

namespace c3po::model {

ArchSpec qwen2_moe_spec(const ModelConfig&) {
  ArchSpec s;
  s.shared_prefix = "model.layers.{i}.mlp.shared_expert.";
  s.shared_gate = "model.layers.{i}.mlp.shared_expert_gate.weight";
  return s;
}

}  // namespace c3po::model
