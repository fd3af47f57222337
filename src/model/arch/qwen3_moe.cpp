// Qwen3-MoE: per-head q/k RMSNorm (config.qk_norm = PerHead), explicit head_dim, no shared expert.
#include "model/arch/spec.h"

namespace c3po::model {

ArchSpec qwen3_moe_spec(const ModelConfig&) { return ArchSpec{}; }

}  // namespace c3po::model
