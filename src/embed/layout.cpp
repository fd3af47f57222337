#include "embed/layout.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "io/error.h"
#include "io/json_file.h"

namespace c3po::embed {
namespace fs = std::filesystem;
using nlohmann::json;

const char* pooling_name(Pooling p) {
  switch (p) {
    case Pooling::Cls: return "cls";
    case Pooling::Max: return "max";
    case Pooling::Mean: return "mean";
    case Pooling::MeanSqrtLen: return "mean_sqrt_len";
    case Pooling::WeightedMean: return "weightedmean";
    case Pooling::LastToken: return "lasttoken";
  }
  return "?";
}

namespace {

// The boolean keys of sentence-transformers' Pooling config, in concatenation order.
constexpr std::array<std::pair<const char*, Pooling>, 6> kPoolingKeys{{
    {"pooling_mode_cls_token", Pooling::Cls},
    {"pooling_mode_max_tokens", Pooling::Max},
    {"pooling_mode_mean_tokens", Pooling::Mean},
    {"pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen},
    {"pooling_mode_weightedmean_tokens", Pooling::WeightedMean},
    {"pooling_mode_lasttoken", Pooling::LastToken},
}};

std::string supported_pooling_keys() {
  std::string s;
  for (const auto& [key, mode] : kPoolingKeys) s += (s.empty() ? "" : ", ") + std::string(key);
  return s;
}

int positive_int(const json& j, const std::string& key, const std::string& file) {
  if (!j.contains(key)) throw Error(file, key, "missing (expected a positive integer)");
  const json& v = j.at(key);
  if (!v.is_number_integer() || v.get<long long>() <= 0 || v.get<long long>() > (1LL << 30))
    throw Error(file, key, "expected a positive integer, got " + v.dump());
  return v.get<int>();
}

bool optional_bool(const json& j, const std::string& key, bool fallback, const std::string& file) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  if (!j.at(key).is_boolean()) throw Error(file, key, "expected true or false, got " + j.at(key).dump());
  return j.at(key).get<bool>();
}

std::vector<Pooling> read_pooling(const std::string& file, int& dimension) {
  const json j = io::read_json_file(file);
  if (!j.is_object()) throw Error(file, "", "expected a JSON object");
  std::vector<Pooling> modes;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (key == "word_embedding_dimension") {
      dimension = positive_int(j, key, file);
      continue;
    }
    if (key == "pooling_mode") {  // the constructor's string form, when a config carries it
      if (it->is_null()) continue;
      const std::string s = it->is_string() ? it->get<std::string>() : "";
      const std::array<std::pair<const char*, Pooling>, 5> names{{{"cls", Pooling::Cls},
                                                                  {"max", Pooling::Max},
                                                                  {"mean", Pooling::Mean},
                                                                  {"weightedmean", Pooling::WeightedMean},
                                                                  {"lasttoken", Pooling::LastToken}}};
      auto found = std::find_if(names.begin(), names.end(), [&](const auto& n) { return s == n.first; });
      if (found == names.end())
        throw Error(file, key, "unknown pooling mode " + it->dump() + " (supported: cls, max, mean, weightedmean, lasttoken)");
      return {found->second};
    }
    if (key.rfind("pooling_mode", 0) != 0) continue;  // other settings (include_prompt, ...) do not change the output
    auto known = std::find_if(kPoolingKeys.begin(), kPoolingKeys.end(),
                              [&](const auto& k) { return key == k.first; });
    if (known == kPoolingKeys.end())
      throw Error(file, key, "unknown pooling mode (supported: " + supported_pooling_keys() + ")");
    if (!it->is_boolean()) throw Error(file, key, "expected true or false, got " + it->dump());
    if (it->get<bool>()) modes.push_back(known->second);
  }
  if (modes.empty()) throw Error(file, "pooling_mode_*", "no pooling mode is enabled (one of " + supported_pooling_keys() + ")");
  std::sort(modes.begin(), modes.end());
  return modes;
}

std::string module_kind(const std::string& type) {
  const auto dot = type.rfind('.');
  return dot == std::string::npos ? type : type.substr(dot + 1);
}

std::string read_text_or_empty(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return {};
  return io::read_json_file(p.string()).dump();
}

}  // namespace

SentenceTransformerLayout read_layout(const std::string& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw Error(folder, "", "expected a sentence-transformers folder (config.json, model.safetensors, tokenizer.json, modules.json)");
  const fs::path root(folder);
  SentenceTransformerLayout out;
  out.transformer_dir = folder;
  const fs::path modules_path = root / "modules.json";
  if (fs::exists(modules_path, ec)) {
    const std::string file = modules_path.string();
    const json modules = io::read_json_file(file);
    if (!modules.is_array() || modules.empty()) throw Error(file, "", "expected a non-empty array of modules");
    bool seen_transformer = false, seen_pooling = false;
    for (std::size_t i = 0; i < modules.size(); ++i) {
      const json& m = modules[i];
      const std::string where = "[" + std::to_string(i) + "]";
      if (!m.is_object() || !m.contains("type") || !m["type"].is_string())
        throw Error(file, where + ".type", "expected a module object with a string \"type\"");
      std::string path;
      if (m.contains("path")) {
        if (!m["path"].is_string()) throw Error(file, where + ".path", "expected a string");
        path = m["path"].get<std::string>();
        if (fs::path(path).is_absolute() || path.find("..") != std::string::npos)
          throw Error(file, where + ".path", "expected a subfolder of the model folder, got \"" + path + "\"");
      }
      const std::string type = m["type"].get<std::string>();
      const std::string kind = module_kind(type);
      if (kind == "Transformer") {
        if (i != 0) throw Error(file, where + ".type", "the Transformer module must come first");
        seen_transformer = true;
        out.transformer_dir = (root / path).lexically_normal().string();
        if (!fs::is_directory(out.transformer_dir, ec))
          throw Error(file, where + ".path", "folder \"" + path + "\" does not exist");
      } else if (kind == "Pooling") {
        if (!seen_transformer || seen_pooling)
          throw Error(file, where + ".type", "expected one Pooling module, after the Transformer");
        seen_pooling = true;
        out.pooling_file = (root / path / "config.json").string();
        out.pooling = read_pooling(out.pooling_file, out.pooling_dimension);
        out.digest_text += read_text_or_empty(out.pooling_file);
      } else if (kind == "Normalize") {
        if (!seen_pooling) throw Error(file, where + ".type", "Normalize must come after the Pooling module");
        out.normalize = true;
      } else {
        throw Error(file, where + ".type",
                    "unsupported module \"" + type + "\" (supported: Transformer, Pooling, Normalize)");
      }
    }
    if (!seen_transformer) throw Error(file, "", "no sentence_transformers.models.Transformer module");
    if (!seen_pooling) throw Error(file, "", "no sentence_transformers.models.Pooling module");
  } else {
    out.pooling = {Pooling::Mean};  // sentence-transformers' choice for a plain transformer folder
  }

  // sentence_bert_config.json sits beside the transformer's files (the root in the new layout).
  for (const fs::path& dir : {fs::path(out.transformer_dir), root}) {
    const fs::path p = dir / "sentence_bert_config.json";
    if (!fs::exists(p, ec)) continue;
    const std::string file = p.string();
    const json j = io::read_json_file(file);
    if (!j.is_object()) throw Error(file, "", "expected a JSON object");
    if (j.contains("max_seq_length") && !j["max_seq_length"].is_null()) {
      out.max_seq_length = positive_int(j, "max_seq_length", file);
      out.max_seq_length_file = file;
    }
    out.do_lower_case = optional_bool(j, "do_lower_case", false, file);
    break;
  }

  const fs::path tok_cfg = fs::path(out.transformer_dir) / "tokenizer_config.json";
  if (fs::exists(tok_cfg, ec)) {
    const std::string file = tok_cfg.string();
    const json j = io::read_json_file(file);
    if (!j.is_object()) throw Error(file, "", "expected a JSON object");
    if (j.contains("model_max_length") && !j["model_max_length"].is_null()) {
      if (!j["model_max_length"].is_number() || j["model_max_length"].get<double>() <= 0)
        throw Error(file, "model_max_length", "expected a positive number, got " + j["model_max_length"].dump());
      out.tokenizer_max_length = j["model_max_length"].get<double>();
    }
    if (j.contains("truncation_side") && !j["truncation_side"].is_null()) {
      const json& side = j["truncation_side"];
      if (side != "left" && side != "right")
        throw Error(file, "truncation_side", "expected \"left\" or \"right\", got " + side.dump());
      out.truncate_left = side == "left";
    }
  }
  return out;
}

BertConfig read_bert_config(const std::string& path) {
  const json j = io::read_json_file(path);
  if (!j.is_object()) throw Error(path, "", "expected a JSON object");
  BertConfig c;
  c.file = path;
  if (!j.contains("model_type") || !j["model_type"].is_string())
    throw Error(path, "model_type", "missing (expected \"bert\")");
  const std::string type = j["model_type"].get<std::string>();
  if (type != "bert")
    throw Error(path, "model_type", "unsupported model type \"" + type + "\" (supported: bert)");
  c.hidden = positive_int(j, "hidden_size", path);
  c.layers = positive_int(j, "num_hidden_layers", path);
  c.heads = positive_int(j, "num_attention_heads", path);
  c.intermediate = positive_int(j, "intermediate_size", path);
  c.vocab = positive_int(j, "vocab_size", path);
  c.max_positions = j.contains("max_position_embeddings") ? positive_int(j, "max_position_embeddings", path) : 512;
  c.type_vocab = j.contains("type_vocab_size") ? positive_int(j, "type_vocab_size", path) : 2;
  if (c.hidden % c.heads != 0)
    throw Error(path, "num_attention_heads",
                "hidden_size " + std::to_string(c.hidden) + " is not divisible by " + std::to_string(c.heads) + " heads");
  if (j.contains("layer_norm_eps")) {
    if (!j["layer_norm_eps"].is_number() || j["layer_norm_eps"].get<double>() <= 0)
      throw Error(path, "layer_norm_eps", "expected a positive number, got " + j["layer_norm_eps"].dump());
    c.layer_norm_eps = j["layer_norm_eps"].get<double>();
  }
  if (j.contains("position_embedding_type") && !j["position_embedding_type"].is_null() &&
      j["position_embedding_type"] != "absolute")
    throw Error(path, "position_embedding_type",
                "unsupported " + j["position_embedding_type"].dump() + " (supported: \"absolute\")");
  const std::string act = j.contains("hidden_act") ? (j["hidden_act"].is_string() ? j["hidden_act"].get<std::string>() : "")
                                                   : "gelu";
  if (act == "gelu") c.activation = Activation::GeluErf;
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") c.activation = Activation::GeluTanh;
  else if (act == "relu") c.activation = Activation::Relu;
  else if (act == "silu" || act == "swish") c.activation = Activation::Silu;
  else
    throw Error(path, "hidden_act",
                "unsupported activation " + (j.contains("hidden_act") ? j["hidden_act"].dump() : std::string("?")) +
                    " (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu)");
  return c;
}

}  // namespace c3po::embed
