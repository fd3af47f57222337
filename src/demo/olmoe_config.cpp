#include "demo/olmoe_config.h"

#include <nlohmann/json.hpp>

#include "io/error.h"

namespace c3po::demo {

void OlmoeConfig::validate(const std::string& origin) const {
  auto positive = [&](int v, const char* field) {
    if (v <= 0) throw Error(origin, field, "expected a positive integer, got " + std::to_string(v));
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(num_key_value_heads, "num_key_value_heads");
  positive(num_experts, "num_experts");
  positive(num_experts_per_tok, "num_experts_per_tok");
  positive(max_position_embeddings, "max_position_embeddings");
  if (hidden_size % num_attention_heads != 0 || head_dim() % 2 != 0)
    throw Error(origin, "num_attention_heads", "hidden_size must split into heads of even size");
  if (num_key_value_heads != num_attention_heads)
    throw Error(origin, "num_key_value_heads", "the demo trainer supports plain multi-head attention only");
  if (num_experts_per_tok > num_experts)
    throw Error(origin, "num_experts_per_tok", "must not exceed num_experts");
  if (!(rms_norm_eps > 0)) throw Error(origin, "rms_norm_eps", "expected a positive number");
  if (!(rope_theta > 0)) throw Error(origin, "rope_theta", "expected a positive number");
}

nlohmann::json OlmoeConfig::to_hf_json(const std::string& torch_dtype) const {
  return {
      {"architectures", {"OlmoeForCausalLM"}},
      {"model_type", "olmoe"},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"hidden_act", "silu"},
      {"max_position_embeddings", max_position_embeddings},
      {"initializer_range", 0.02},
      {"rms_norm_eps", rms_norm_eps},
      {"use_cache", true},
      {"pad_token_id", eos_token_id},
      {"bos_token_id", nullptr},
      {"eos_token_id", eos_token_id},
      {"tie_word_embeddings", false},
      {"rope_theta", rope_theta},
      {"rope_scaling", nullptr},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"clip_qkv", nullptr},
      {"num_experts_per_tok", num_experts_per_tok},
      {"num_experts", num_experts},
      {"output_router_logits", false},
      {"router_aux_loss_coef", router_aux_loss_coef},
      {"norm_topk_prob", false},
      {"torch_dtype", torch_dtype},
  };
}

OlmoeConfig OlmoeConfig::from_hf_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw Error(origin, "", "expected a JSON object");
  if (j.value("model_type", std::string()) != "olmoe")
    throw Error(origin, "model_type", "expected \"olmoe\"");
  auto integer = [&](const char* field) {
    if (!j.contains(field) || !j[field].is_number_integer())
      throw Error(origin, field, "expected an integer");
    return j[field].get<int>();
  };
  auto number = [&](const char* field, double fallback) {
    if (!j.contains(field)) return fallback;
    if (!j[field].is_number()) throw Error(origin, field, "expected a number");
    return j[field].get<double>();
  };
  if (j.contains("norm_topk_prob") && j["norm_topk_prob"] != false)
    throw Error(origin, "norm_topk_prob", "the demo model does not renormalise top-k (expected false)");
  if (j.contains("clip_qkv") && !j["clip_qkv"].is_null())
    throw Error(origin, "clip_qkv", "the demo model does not clip q/k/v (expected null)");
  if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"] != false)
    throw Error(origin, "tie_word_embeddings", "expected false");
  OlmoeConfig c;
  c.vocab_size = integer("vocab_size");
  c.hidden_size = integer("hidden_size");
  c.intermediate_size = integer("intermediate_size");
  c.num_hidden_layers = integer("num_hidden_layers");
  c.num_attention_heads = integer("num_attention_heads");
  c.num_key_value_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                              ? integer("num_key_value_heads")
                              : c.num_attention_heads;
  c.num_experts = integer("num_experts");
  c.num_experts_per_tok = integer("num_experts_per_tok");
  c.rms_norm_eps = number("rms_norm_eps", 1e-5);
  c.rope_theta = number("rope_theta", 10000.0);
  c.max_position_embeddings = j.contains("max_position_embeddings") ? integer("max_position_embeddings") : 4096;
  c.eos_token_id = j.contains("eos_token_id") && j["eos_token_id"].is_number_integer() ? integer("eos_token_id") : 0;
  c.router_aux_loss_coef = number("router_aux_loss_coef", 0.01);
  c.validate(origin);
  return c;
}

}  // namespace c3po::demo
