// Mixtral: block_sparse_moe with experts w1 (gate), w3 (up), w2 (down); always renormalises.
#include "model/arch/spec.h"

namespace c3po::model {

ArchSpec mixtral_spec(const ModelConfig&) {
  ArchSpec s;
  s.router = "model.layers.{i}.block_sparse_moe.gate.weight";
  s.expert_gate = "model.layers.{i}.block_sparse_moe.experts.{e}.w1.weight";
  s.expert_up = "model.layers.{i}.block_sparse_moe.experts.{e}.w3.weight";
  s.expert_down = "model.layers.{i}.block_sparse_moe.experts.{e}.w2.weight";
  return s;
}

}  // namespace c3po::model
