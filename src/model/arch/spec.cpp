#include "model/arch/spec.h"

#include "io/error.h"

namespace c3po::model {

ArchSpec arch_spec(const ModelConfig& c) {
  if (c.model_type == "olmoe") return olmoe_spec(c);
  if (c.model_type == "qwen2_moe") return qwen2_moe_spec(c);
  if (c.model_type == "qwen3_moe") return qwen3_moe_spec(c);
  if (c.model_type == "mixtral") return mixtral_spec(c);
  if (c.model_type == "deepseek") return deepseek_spec(c);
  throw Error(c.source, "model_type", "unsupported architecture '" + c.model_type + "'");
}

std::string tensor_name(const std::string& templ, long layer, long expert) {
  std::string out;
  for (std::size_t i = 0; i < templ.size(); ++i) {
    if (templ.compare(i, 3, "{i}") == 0) {
      out += std::to_string(layer);
      i += 2;
    } else if (templ.compare(i, 3, "{e}") == 0) {
      out += std::to_string(expert);
      i += 2;
    } else {
      out += templ[i];
    }
  }
  return out;
}

}  // namespace c3po::model
