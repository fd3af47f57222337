#include "model/config.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/error.h"
#include "io/files.h"
#include "io/json_file.h"
#include "model/arch/arch.h"

namespace c3po::model {

int64_t ModelConfig::num_moe_layers() const {
  int64_t n = 0;
  for (bool m : layer_is_moe) n += m;
  return n;
}

int64_t ModelConfig::decoder_layer_of_moe(int64_t moe_layer) const {
  int64_t seen = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(layer_is_moe.size()); ++i) {
    if (!layer_is_moe[i]) continue;
    if (seen == moe_layer) return i;
    ++seen;
  }
  throw Error(source, "moe_layer",
              "MoE layer " + std::to_string(moe_layer) + " out of range [0, " + std::to_string(seen) + ")");
}

ModelConfig parse_config(const std::string& source, const std::string& json_text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(source, "", "not valid JSON: " + io::json_error_text(e));
  }
  if (!j.is_object()) throw Error(source, "", "expected a JSON object");
  ModelConfig c;
  c.source = source;
  const ConfigReader f(c.source, j);
  if (!f.has("model_type")) throw Error(source, "model_type", "required field is missing");
  c.model_type = f.string("model_type", "");
  architecture_of(c).read_config(f, c);
  return c;
}

ModelConfig load_config(const std::string& folder_or_file) {
  namespace fs = std::filesystem;
  fs::path p(folder_or_file);
  if (fs::is_directory(p)) p /= "config.json";
  io::require_regular_file(p.string());
  std::ifstream in(p);
  if (!in) throw Error(p.string(), "", "cannot open the model config");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(p.string(), ss.str());
}

}  // namespace c3po::model
