#include <array>

#include "io/error.h"
#include "model/arch/arch.h"

namespace c3po::model {

extern const Architecture kOlmoe, kQwen2Moe, kQwen3Moe, kMixtral, kDeepseek;

namespace {
// Every supported architecture, one row each.
const std::array<const Architecture*, 5> kArchitectures = {&kOlmoe, &kQwen2Moe, &kQwen3Moe, &kMixtral, &kDeepseek};
}  // namespace

const Architecture* find_architecture(std::string_view model_type) {
  for (const Architecture* a : kArchitectures)
    if (a->model_type == model_type) return a;
  return nullptr;
}

const Architecture& architecture_of(const ModelConfig& config) {
  if (const Architecture* a = find_architecture(config.model_type)) return *a;
  throw Error(config.source, "model_type",
              "unsupported architecture '" + config.model_type + "' (expected " + supported_architectures() + ")");
}

std::string supported_architectures() {
  std::string out;
  for (std::size_t i = 0; i < kArchitectures.size(); ++i) {
    if (i > 0) out += i + 1 == kArchitectures.size() ? " or " : ", ";
    out += kArchitectures[i]->model_type;
  }
  return out;
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
