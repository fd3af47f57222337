#pragma once
// A trainable OLMoE (model_type "olmoe") in LibTorch autograd, written for training the demo
// model and independent of the inference engine in src/model/, so the two cross-check each other.
// Parameters are kept under their Hugging Face names, so saving is a plain dump.
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "demo/olmoe_config.h"

namespace c3po::demo {

struct OlmoeOutput {
  torch::Tensor logits;    // [B, T, V] fp32
  torch::Tensor aux_loss;  // OLMoE load-balancing loss over the non-padding tokens (scalar)
  std::vector<torch::Tensor> router_probs;  // per MoE layer [B, T, E] fp32 router distribution
};

class OlmoeTrainModel {
 public:
  // Fresh weights: N(0, 0.02) for matrices (OLMoE's initializer_range), ones for RMSNorms.
  OlmoeTrainModel(const OlmoeConfig& config, uint64_t seed);
  // Loads config.json + model.safetensors from an HF folder (fp32 or bf16 weights).
  static OlmoeTrainModel load(const std::string& dir);

  const OlmoeConfig& config() const { return config_; }
  // tokens [B, T] int64; lengths [B] int64 (positions >= length are right padding, ignored by
  // the auxiliary loss; causal attention keeps them out of earlier positions).
  OlmoeOutput forward(const torch::Tensor& tokens, const torch::Tensor& lengths) const;

  std::vector<torch::Tensor> parameters() const;
  const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters() const { return params_; }
  const torch::Tensor& param(const std::string& name) const;

  // Writes config.json and model.safetensors (torch_dtype "float32") into dir.
  void save(const std::string& dir) const;

 private:
  explicit OlmoeTrainModel(const OlmoeConfig& config);
  void add(const std::string& name, std::vector<int64_t> shape);

  OlmoeConfig config_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::map<std::string, std::size_t> index_;
};

}  // namespace c3po::demo
