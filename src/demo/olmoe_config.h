#pragma once
// The hyper-parameters of the demo's OLMoE model and their Hugging Face config.json spelling.
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace c3po::demo {

struct OlmoeConfig {
  int vocab_size = 768;
  int hidden_size = 128;
  int intermediate_size = 128;  // per expert
  int num_hidden_layers = 6;
  int num_attention_heads = 4;
  int num_key_value_heads = 4;
  int num_experts = 10;  // two per task family (the training routes each family to its pair)
  int num_experts_per_tok = 2;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  int max_position_embeddings = 512;
  int eos_token_id = 0;
  double router_aux_loss_coef = 0.01;

  int head_dim() const { return hidden_size / num_attention_heads; }
  // Throws c3po::Error (naming origin and the field) if the sizes are inconsistent.
  void validate(const std::string& origin) const;

  // Every OlmoeConfig field with its real name; model_type "olmoe", norm_topk_prob false.
  nlohmann::json to_hf_json(const std::string& torch_dtype) const;
  static OlmoeConfig from_hf_json(const nlohmann::json& j, const std::string& origin);
};

}  // namespace c3po::demo
