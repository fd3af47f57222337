#include "common/olmoe_shape.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <utility>
#include <vector>

namespace c3po::bench {

using model::ModelConfig;

ModelConfig olmoe_1b_7b() {
  ModelConfig c;
  c.model_type = "olmoe";
  c.source = "<bench>";
  c.vocab_size = 50304;
  c.hidden_size = 2048;
  c.num_layers = 16;
  c.num_heads = c.num_kv_heads = 16;
  c.head_dim = 128;
  c.intermediate_size = c.moe_intermediate_size = 1024;
  c.num_experts = 64;
  c.top_k = 8;
  c.layer_is_moe.assign(16, true);
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.qk_norm = model::QkNorm::Full;
  c.max_position_embeddings = 4096;
  return c;
}

std::map<std::string, torch::Tensor> random_weights(const ModelConfig& c, int64_t layer_sets) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const int64_t pool_size = 1 << 26;
  auto pool = torch::randn({pool_size}, torch::kBFloat16);
  int64_t cursor = 0;
  auto matrix = [&](int64_t rows, int64_t cols) {
    const int64_t n = rows * cols;
    auto t = torch::empty({rows, cols}, torch::kBFloat16);
    auto flat = t.view({n});
    for (int64_t done = 0; done < n;) {
      const int64_t take = std::min(n - done, pool_size - cursor);
      flat.narrow(0, done, take).copy_(pool.narrow(0, cursor, take));
      done += take;
      cursor = (cursor + take + 7919) % (pool_size - 1);
    }
    return t.mul_(1.0 / std::sqrt(static_cast<double>(cols)));
  };
  auto norm = [&](int64_t n) { return torch::ones({n}, torch::kBFloat16); };
  const int64_t H = c.hidden_size, F = c.moe_intermediate_size;
  std::map<std::string, torch::Tensor> w;
  w["model.embed_tokens.weight"] = matrix(c.vocab_size, H).mul_(std::sqrt(static_cast<double>(H)));
  w["model.norm.weight"] = norm(H);
  w["lm_head.weight"] = matrix(c.vocab_size, H);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    if (i >= layer_sets) {
      const std::string from = "model.layers." + std::to_string(i % layer_sets) + ".";
      std::vector<std::pair<std::string, torch::Tensor>> copies;
      for (auto it = w.lower_bound(from); it != w.end() && it->first.rfind(from, 0) == 0; ++it)
        copies.emplace_back(p + it->first.substr(from.size()), it->second);
      for (auto& [name, t] : copies) w[name] = t;
      continue;
    }
    w[p + "input_layernorm.weight"] = norm(H);
    w[p + "post_attention_layernorm.weight"] = norm(H);
    for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj"}) w[p + "self_attn." + n + ".weight"] = matrix(H, H);
    w[p + "self_attn.q_norm.weight"] = norm(H);
    w[p + "self_attn.k_norm.weight"] = norm(H);
    // Router gain 4 so the routing is far from uniform, as in trained models.
    w[p + "mlp.gate.weight"] = torch::randn({c.num_experts, H}, torch::kBFloat16).mul_(4.0 / std::sqrt(H));
    for (int64_t e = 0; e < c.num_experts; ++e) {
      const std::string q = p + "mlp.experts." + std::to_string(e) + ".";
      w[q + "gate_proj.weight"] = matrix(F, H);
      w[q + "up_proj.weight"] = matrix(F, H);
      w[q + "down_proj.weight"] = matrix(H, F);
    }
  }
  return w;
}

int64_t take_layer_sets(int& argc, char** argv) {
  int64_t layer_sets = 16;
  int out = 0;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--layer_sets=", 13) == 0)
      layer_sets = std::clamp<int64_t>(std::atoll(argv[i] + 13), 1, 16);
    else
      argv[out++] = argv[i];
  }
  argc = out;
  return layer_sets;
}

double unique_bytes(const std::map<std::string, torch::Tensor>& w) {
  std::set<const void*> seen;
  double n = 0;
  for (const auto& [name, t] : w)
    if (seen.insert(t.data_ptr()).second) n += static_cast<double>(t.nbytes());
  return n;
}

std::unique_ptr<model::MoeModel> olmoe_model(int64_t layer_sets, double* weight_bytes) {
  const auto config = olmoe_1b_7b();
  auto weights = random_weights(config, layer_sets);
  if (weight_bytes) *weight_bytes = unique_bytes(weights);
  return model::MoeModel::from_tensors(config, std::move(weights), model::Dtype::BF16);
}

double vm_hwm_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  return 0.0;
}

}  // namespace c3po::bench
