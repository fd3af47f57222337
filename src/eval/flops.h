#pragma once
// Forward cost estimates, so methods can report what they spend (method.md section 8).
// Matrix multiplies only (2 FLOPs per multiply-add); norms, softmaxes and routing are ignored.
#include <cstdint>

#include "model/config.h"

namespace c3po::eval {

struct FlopsModel {
  int64_t body_params = 0;  // active parameters used by matmuls, without embedding and LM head
  int64_t hidden = 0;
  int64_t vocab = 0;
  int64_t layers = 0;
  int64_t attention_width = 0;  // num_heads * head_dim
  int64_t window = 0;           // sliding window (0: full attention)
};

// active_parameter_count: MoeModel::active_parameter_count() (all parameters one token uses,
// embedding and LM head included once each, or once if tied).
FlopsModel flops_model(const model::ModelConfig& config, int64_t active_parameter_count);

// FLOPs of running n_tokens new tokens after n_past cached ones: 2 x body parameters per token,
// plus attention (scores and mixing: 4 x width per attended key per layer), plus the LM head for
// `scored_positions` positions with `head_rows` rows each (-1 = the full vocabulary).
double forward_flops(const FlopsModel& m, int64_t n_tokens, int64_t n_past = 0, int64_t scored_positions = 1,
                     int64_t head_rows = -1);

}  // namespace c3po::eval
