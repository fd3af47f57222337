#include "model/arch/config_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "io/error.h"

namespace c3po::model {

using nlohmann::json;

bool ConfigReader::has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }

int64_t ConfigReader::integer_value(const std::string& key) const {
  const json& v = j_.at(key);
  if (!v.is_number_integer()) throw Error(source_, key, "expected an integer, got " + v.dump());
  return v.get<int64_t>();
}

int64_t ConfigReader::integer(const std::string& key) const {
  if (!has(key)) throw Error(source_, key, "required integer field is missing");
  return integer_value(key);
}

int64_t ConfigReader::integer(const std::string& key, int64_t fallback) const {
  return has(key) ? integer_value(key) : fallback;
}

std::optional<int64_t> ConfigReader::opt_integer(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return integer_value(key);
}

int64_t ConfigReader::positive(const std::string& key) const {
  const int64_t v = integer(key);
  if (v <= 0) throw Error(source_, key, "expected a positive integer, got " + std::to_string(v));
  return v;
}

int64_t ConfigReader::positive(const std::string& key, int64_t fallback) const {
  const int64_t v = integer(key, fallback);
  if (v <= 0) throw Error(source_, key, "expected a positive integer, got " + std::to_string(v));
  return v;
}

int64_t ConfigReader::non_negative(const std::string& key, int64_t fallback) const {
  const int64_t v = integer(key, fallback);
  if (v < 0) throw Error(source_, key, "expected >= 0, got " + std::to_string(v));
  return v;
}

double ConfigReader::number(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  const json& v = j_.at(key);
  if (!v.is_number()) throw Error(source_, key, "expected a number, got " + v.dump());
  return v.get<double>();
}

double ConfigReader::positive_number(const std::string& key, double fallback) const {
  const double v = number(key, fallback);
  if (!(v > 0) || !std::isfinite(v))
    throw Error(source_, key, "expected a finite number > 0, got " + j_.at(key).dump());
  return v;
}

std::optional<double> ConfigReader::opt_number(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return number(key, 0.0);
}

bool ConfigReader::boolean(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const json& v = j_.at(key);
  if (!v.is_boolean()) throw Error(source_, key, "expected true or false, got " + v.dump());
  return v.get<bool>();
}

std::string ConfigReader::string(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  const json& v = j_.at(key);
  if (!v.is_string()) throw Error(source_, key, "expected a string, got " + v.dump());
  return v.get<std::string>();
}

std::vector<int64_t> ConfigReader::integers(const std::string& key) const {
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

namespace {

// Sizes far beyond any released model are refused before anything is allocated for them (a
// config saying 10^9 layers would otherwise end in std::bad_alloc).
void at_most(const std::string& source, const char* key, int64_t v, int64_t max) {
  if (v > max) throw Error(source, key, fmt::format("{} is beyond what c3po supports (at most {})", v, max));
}

}  // namespace

void read_common_fields(const ConfigReader& f, ModelConfig& c, double default_eps, double default_theta) {
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
  const std::string act = f.string("hidden_act", "silu");
  if (act != "silu") throw Error(c.source, "hidden_act", "unsupported activation '" + act + "' (expected silu)");
  if (f.has("rope_scaling")) {
    const auto& rs = f.raw("rope_scaling");
    const std::string type = rs.is_object() ? rs.value("rope_type", rs.value("type", std::string("default")))
                                            : std::string("?");
    if (type != "default")
      throw Error(c.source, "rope_scaling", "unsupported RoPE scaling '" + type + "' (only none/default)");
  }
}

void finish_attention(ModelConfig& c) {
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

void read_sparse_step_layers(const ConfigReader& f, ModelConfig& c) {
  const int64_t step = f.positive("decoder_sparse_step", 1);
  const std::vector<int64_t> only_mlp = f.integers("mlp_only_layers");
  c.layer_is_moe.assign(c.num_layers, false);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const bool dense = std::find(only_mlp.begin(), only_mlp.end(), i) != only_mlp.end();
    c.layer_is_moe[i] = !dense && c.num_experts > 0 && (i + 1) % step == 0;
  }
}

void read_optional_sliding_window(const ConfigReader& f, ModelConfig& c) {
  if (f.boolean("use_sliding_window", false)) c.sliding_window = f.positive("sliding_window", 4096);
}

}  // namespace c3po::model
