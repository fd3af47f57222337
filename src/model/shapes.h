#pragma once
// The configurations of released MoE models, by name, for measurements without their weights
// (`c3po bench --random NAME`). Each is parsed from its config.json fields by the architecture's
// own reader, so it is exactly what loading that checkpoint's config gives. No torch here.
#include <cstdint>
#include <string>

#include "model/config.h"

namespace c3po::model {

// name: a model_type (olmoe, qwen2_moe, qwen3_moe, mixtral, deepseek) or the model's own name
// (olmoe-1b-7b, qwen1.5-moe-a2.7b, qwen3-30b-a3b, mixtral-8x7b, deepseek-moe-16b). layers > 0
// keeps only the first `layers` decoder layers (the same per-token work per layer, less memory).
ModelConfig released_shape(const std::string& name, int64_t layers = 0);
std::string released_shape_names();  // for --help

}  // namespace c3po::model
