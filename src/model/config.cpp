#include "model/config.h"

#include <cmath>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/error.h"
#include "io/files.h"
#include "io/json_file.h"

namespace c3po::model {
namespace {

using nlohmann::json;

// Reads typed fields of one config object; every problem names the file and the field.
class Fields {
 public:
  Fields(const std::string& source, const json& j) : source_(source), j_(j) {}

  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  int64_t integer(const std::string& key) const {
    if (!has(key)) throw Error(source_, key, "required integer field is missing");
    return integer_value(key);
  }
  int64_t integer(const std::string& key, int64_t fallback) const {
    return has(key) ? integer_value(key) : fallback;
  }
  std::optional<int64_t> opt_integer(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return integer_value(key);
  }
  int64_t positive(const std::string& key) const {
    int64_t v = integer(key);
    if (v <= 0) throw Error(source_, key, "expected a positive integer, got " + std::to_string(v));
    return v;
  }
  int64_t positive(const std::string& key, int64_t fallback) const {
    int64_t v = integer(key, fallback);
    if (v <= 0) throw Error(source_, key, "expected a positive integer, got " + std::to_string(v));
    return v;
  }
  double number(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number()) throw Error(source_, key, "expected a number, got " + v.dump());
    return v.get<double>();
  }
  // A finite number > 0 (epsilons, RoPE bases: 0, a negative value or inf makes every logit NaN).
  double positive_number(const std::string& key, double fallback) const {
    const double v = number(key, fallback);
    if (!(v > 0) || !std::isfinite(v))
      throw Error(source_, key, "expected a finite number > 0, got " + j_.at(key).dump());
    return v;
  }
  std::optional<double> opt_number(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return number(key, 0.0);
  }
  bool boolean(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_boolean()) throw Error(source_, key, "expected true or false, got " + v.dump());
    return v.get<bool>();
  }
  std::string string(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_string()) throw Error(source_, key, "expected a string, got " + v.dump());
    return v.get<std::string>();
  }
  std::vector<int64_t> integers(const std::string& key) const {
    std::vector<int64_t> out;
    if (!has(key)) return out;
    const json& v = j_.at(key);
    if (v.is_number_integer()) return {v.get<int64_t>()};
    if (!v.is_array()) throw Error(source_, key, "expected an integer or a list of integers");
    for (const auto& e : v) {
      if (!e.is_number_integer()) throw Error(source_, key, "expected a list of integers, got " + v.dump());
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  const json& raw(const std::string& key) const { return j_.at(key); }

 private:
  int64_t integer_value(const std::string& key) const {
    const json& v = j_.at(key);
    if (!v.is_number_integer()) throw Error(source_, key, "expected an integer, got " + v.dump());
    return v.get<int64_t>();
  }
  const std::string& source_;
  const json& j_;
};

// Sizes far beyond any released model are refused before anything is allocated for them (a
// config saying 10^9 layers would otherwise end in std::bad_alloc).
void at_most(const std::string& source, const char* key, int64_t v, int64_t max) {
  if (v > max) throw Error(source, key, fmt::format("{} is beyond what c3po supports (at most {})", v, max));
}

void parse_common(const Fields& f, ModelConfig& c, double default_eps, double default_theta) {
  c.vocab_size = f.positive("vocab_size");
  c.hidden_size = f.positive("hidden_size");
  c.num_layers = f.positive("num_hidden_layers");
  c.num_heads = f.positive("num_attention_heads");
  c.num_kv_heads = f.positive("num_key_value_heads", c.num_heads);
  at_most(c.source, "vocab_size", c.vocab_size, int64_t{1} << 24);
  at_most(c.source, "hidden_size", c.hidden_size, int64_t{1} << 17);
  at_most(c.source, "num_hidden_layers", c.num_layers, 1024);
  at_most(c.source, "num_attention_heads", c.num_heads, 4096);
  at_most(c.source, "num_key_value_heads", c.num_kv_heads, 4096);
  c.rms_norm_eps = f.positive_number("rms_norm_eps", default_eps);
  c.rope_theta = f.positive_number("rope_theta", default_theta);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.max_position_embeddings = f.integer("max_position_embeddings", 0);
  c.bos_token_id = f.opt_integer("bos_token_id");
  c.eos_token_ids = f.integers("eos_token_id");
  std::string act = f.string("hidden_act", "silu");
  if (act != "silu") throw Error(c.source, "hidden_act", "unsupported activation '" + act + "' (expected silu)");
  if (f.has("rope_scaling")) {
    const auto& rs = f.raw("rope_scaling");
    std::string type = rs.is_object() ? rs.value("rope_type", rs.value("type", std::string("default")))
                                      : std::string("?");
    if (type != "default")
      throw Error(c.source, "rope_scaling", "unsupported RoPE scaling '" + type + "' (only none/default)");
  }
}

void finish_attention(const Fields& f, ModelConfig& c) {
  if (c.num_heads % c.num_kv_heads != 0)
    throw Error(c.source, "num_key_value_heads",
                "must divide num_attention_heads (" + std::to_string(c.num_heads) + ")");
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_heads != 0)
      throw Error(c.source, "num_attention_heads", "must divide hidden_size when head_dim is not given");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0) throw Error(c.source, "head_dim", "must be even for RoPE");
}

void check_experts(ModelConfig& c, const char* experts_field) {
  at_most(c.source, experts_field, c.num_experts, 1 << 16);
  if (c.top_k > c.num_experts)
    throw Error(c.source, "num_experts_per_tok",
                "top-k " + std::to_string(c.top_k) + " exceeds " + experts_field + " " +
                    std::to_string(c.num_experts));
  if (c.num_moe_layers() == 0) throw Error(c.source, experts_field, "the model has no MoE layer");
}

// qwen2_moe / qwen3_moe: a layer is sparse unless listed in mlp_only_layers, every
// decoder_sparse_step-th layer.
void qwen_layers(const Fields& f, ModelConfig& c) {
  int64_t step = f.positive("decoder_sparse_step", 1);
  std::vector<int64_t> only_mlp = f.integers("mlp_only_layers");
  c.layer_is_moe.assign(c.num_layers, false);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    bool dense = std::find(only_mlp.begin(), only_mlp.end(), i) != only_mlp.end();
    c.layer_is_moe[i] = !dense && c.num_experts > 0 && (i + 1) % step == 0;
  }
}

void qwen_window(const Fields& f, ModelConfig& c) {
  if (f.boolean("use_sliding_window", false)) c.sliding_window = f.positive("sliding_window", 4096);
}

}  // namespace

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
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(source, "", "not valid JSON: " + io::json_error_text(e));
  }
  if (!j.is_object()) throw Error(source, "", "expected a JSON object");
  ModelConfig c;
  c.source = source;
  Fields f(c.source, j);
  if (!f.has("model_type")) throw Error(source, "model_type", "required field is missing");
  c.model_type = f.string("model_type", "");

  if (c.model_type == "olmoe") {
    parse_common(f, c, 1e-5, 10000.0);
    c.moe_intermediate_size = c.intermediate_size = f.positive("intermediate_size");
    c.num_experts = f.positive("num_experts");
    c.top_k = f.positive("num_experts_per_tok");
    c.norm_topk_prob = f.boolean("norm_topk_prob", false);
    c.qkv_bias = c.o_bias = f.boolean("attention_bias", false);
    c.qk_norm = QkNorm::Full;
    c.clip_qkv = f.opt_number("clip_qkv");
    c.layer_is_moe.assign(c.num_layers, true);
    finish_attention(f, c);
    check_experts(c, "num_experts");
  } else if (c.model_type == "qwen2_moe") {
    parse_common(f, c, 1e-6, 10000.0);
    c.intermediate_size = f.positive("intermediate_size", 5632);
    c.moe_intermediate_size = f.positive("moe_intermediate_size");
    c.num_experts = f.positive("num_experts");
    c.top_k = f.positive("num_experts_per_tok");
    c.norm_topk_prob = f.boolean("norm_topk_prob", false);
    c.shared_expert_intermediate_size = f.integer("shared_expert_intermediate_size", 5632);
    if (c.shared_expert_intermediate_size <= 0)
      throw Error(source, "shared_expert_intermediate_size", "expected a positive integer");
    c.shared_expert_gated = true;
    c.qkv_bias = f.boolean("qkv_bias", true);
    qwen_window(f, c);
    qwen_layers(f, c);
    finish_attention(f, c);
    check_experts(c, "num_experts");
  } else if (c.model_type == "qwen3_moe") {
    parse_common(f, c, 1e-6, 10000.0);
    c.intermediate_size = f.positive("intermediate_size", 6144);
    c.moe_intermediate_size = f.positive("moe_intermediate_size");
    c.num_experts = f.positive("num_experts");
    c.top_k = f.positive("num_experts_per_tok");
    c.norm_topk_prob = f.boolean("norm_topk_prob", false);
    c.qkv_bias = c.o_bias = f.boolean("attention_bias", false);
    c.head_dim = f.integer("head_dim", 0);
    c.qk_norm = QkNorm::PerHead;
    qwen_window(f, c);
    qwen_layers(f, c);
    finish_attention(f, c);
    check_experts(c, "num_experts");
  } else if (c.model_type == "mixtral") {
    parse_common(f, c, 1e-5, 1e6);
    c.moe_intermediate_size = c.intermediate_size = f.positive("intermediate_size");
    c.num_experts = f.positive("num_local_experts");
    c.top_k = f.positive("num_experts_per_tok");
    c.norm_topk_prob = true;  // Mixtral always renormalises (no flag)
    c.head_dim = f.integer("head_dim", 0);
    c.sliding_window = f.opt_integer("sliding_window");
    c.layer_is_moe.assign(c.num_layers, true);
    finish_attention(f, c);
    check_experts(c, "num_local_experts");
  } else if (c.model_type == "deepseek") {
    parse_common(f, c, 1e-6, 10000.0);
    c.intermediate_size = f.positive("intermediate_size");
    c.moe_intermediate_size = f.positive("moe_intermediate_size");
    c.num_experts = f.positive("n_routed_experts");
    c.top_k = f.positive("num_experts_per_tok");
    // The remote code renormalises only when top_k > 1, with + 1e-20 in the denominator.
    c.norm_topk_prob = f.boolean("norm_topk_prob", false) && c.top_k > 1;
    c.topk_norm_eps = 1e-20;
    c.qkv_bias = c.o_bias = f.boolean("attention_bias", false);
    std::string scoring = f.string("scoring_func", "softmax");
    if (scoring != "softmax")
      throw Error(source, "scoring_func", "unsupported '" + scoring + "' (expected softmax)");
    int64_t shared = f.integer("n_shared_experts", 0);
    if (shared < 0) throw Error(source, "n_shared_experts", "expected >= 0");
    c.shared_expert_intermediate_size = shared * c.moe_intermediate_size;
    int64_t first_dense = f.integer("first_k_dense_replace", 0);
    int64_t freq = f.positive("moe_layer_freq", 1);
    if (first_dense < 0) throw Error(source, "first_k_dense_replace", "expected >= 0");
    c.layer_is_moe.assign(c.num_layers, false);
    for (int64_t i = 0; i < c.num_layers; ++i) c.layer_is_moe[i] = i >= first_dense && i % freq == 0;
    finish_attention(f, c);
    check_experts(c, "n_routed_experts");
  } else {
    throw Error(source, "model_type",
                "unsupported architecture '" + c.model_type +
                    "' (expected olmoe, qwen2_moe, qwen3_moe, mixtral or deepseek)");
  }
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
