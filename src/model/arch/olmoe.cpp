// OLMoE: whole-vector q/k RMSNorm before the head split (config.qk_norm = Full), optional
// clip_qkv, softmax router without renormalisation (norm_topk_prob), no shared expert.
#include "model/arch/spec.h"

namespace c3po::model {

ArchSpec olmoe_spec(const ModelConfig&) { return ArchSpec{}; }

}  // namespace c3po::model
