#pragma once
// Typed reads of one config.json object: every problem names the file and the field. The steps
// that several architectures share (common fields, attention shape, expert counts, layer
// patterns) are here too; each architecture's file calls the ones it needs.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace c3po::model {

class ConfigReader {
 public:
  ConfigReader(const std::string& source, const nlohmann::json& j) : source_(source), j_(j) {}

  const std::string& source() const { return source_; }
  bool has(const std::string& key) const;
  int64_t integer(const std::string& key) const;  // required
  int64_t integer(const std::string& key, int64_t fallback) const;
  std::optional<int64_t> opt_integer(const std::string& key) const;
  int64_t positive(const std::string& key) const;  // required, > 0
  int64_t positive(const std::string& key, int64_t fallback) const;
  int64_t non_negative(const std::string& key, int64_t fallback) const;
  double number(const std::string& key, double fallback) const;
  // A finite number > 0 (epsilons, RoPE bases: 0, a negative value or inf makes every logit NaN).
  double positive_number(const std::string& key, double fallback) const;
  std::optional<double> opt_number(const std::string& key) const;
  bool boolean(const std::string& key, bool fallback) const;
  std::string string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> integers(const std::string& key) const;  // an integer or a list of them
  const nlohmann::json& raw(const std::string& key) const { return j_.at(key); }

 private:
  int64_t integer_value(const std::string& key) const;
  const std::string& source_;
  const nlohmann::json& j_;
};

// Vocabulary, widths, heads, norm epsilon, RoPE base, tied embeddings, context length, special ids;
// refuses activations and RoPE scalings c3po does not implement.
void read_common_fields(const ConfigReader& f, ModelConfig& c, double default_eps, double default_theta);
// head_dim from hidden/heads when not given; heads divisible by kv heads; even head_dim.
void finish_attention(ModelConfig& c);
// top-k <= experts, sane maxima, at least one MoE layer (experts_field names the count's field).
void check_experts(ModelConfig& c, const char* experts_field);
// Qwen-MoE layer pattern: sparse every decoder_sparse_step-th layer unless in mlp_only_layers.
void read_sparse_step_layers(const ConfigReader& f, ModelConfig& c);
// Qwen-MoE: sliding_window applies only when use_sliding_window is true.
void read_optional_sliding_window(const ConfigReader& f, ModelConfig& c);

}  // namespace c3po::model
