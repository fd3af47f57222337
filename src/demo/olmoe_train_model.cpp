#include "demo/olmoe_train_model.h"

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace c3po::demo {

namespace {

std::string layer(int i) { return "model.layers." + std::to_string(i) + "."; }

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto variance = x.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x * torch::rsqrt(variance + eps));
}

torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w) { return torch::matmul(x, w.t()); }

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

}  // namespace

OlmoeTrainModel::OlmoeTrainModel(const OlmoeConfig& config) : config_(config) {
  config_.validate("OlmoeConfig");
  const int64_t H = config_.hidden_size, F = config_.intermediate_size, V = config_.vocab_size;
  const int64_t kv = static_cast<int64_t>(config_.num_key_value_heads) * config_.head_dim();
  add("model.embed_tokens.weight", {V, H});
  for (int i = 0; i < config_.num_hidden_layers; ++i) {
    const auto p = layer(i);
    add(p + "self_attn.q_proj.weight", {H, H});
    add(p + "self_attn.k_proj.weight", {kv, H});
    add(p + "self_attn.v_proj.weight", {kv, H});
    add(p + "self_attn.o_proj.weight", {H, H});
    add(p + "self_attn.q_norm.weight", {H});
    add(p + "self_attn.k_norm.weight", {kv});
    add(p + "input_layernorm.weight", {H});
    add(p + "post_attention_layernorm.weight", {H});
    add(p + "mlp.gate.weight", {config_.num_experts, H});
    for (int e = 0; e < config_.num_experts; ++e) {
      const auto x = p + "mlp.experts." + std::to_string(e) + ".";
      add(x + "gate_proj.weight", {F, H});
      add(x + "up_proj.weight", {F, H});
      add(x + "down_proj.weight", {H, F});
    }
  }
  add("model.norm.weight", {H});
  add("lm_head.weight", {V, H});
}

OlmoeTrainModel::OlmoeTrainModel(const OlmoeConfig& config, uint64_t seed) : OlmoeTrainModel(config) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& [name, t] : params_) {
    if (t.dim() == 1)
      t.fill_(1.0);
    else
      t.normal_(0.0, 0.02, gen);
  }
}

void OlmoeTrainModel::add(const std::string& name, std::vector<int64_t> shape) {
  index_[name] = params_.size();
  params_.emplace_back(name, torch::zeros(shape, torch::kFloat32).set_requires_grad(true));
}

const torch::Tensor& OlmoeTrainModel::param(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("", name, "no such parameter in the demo OLMoE model");
  return params_[it->second].second;
}

std::vector<torch::Tensor> OlmoeTrainModel::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& [name, t] : params_) out.push_back(t);
  return out;
}

OlmoeOutput OlmoeTrainModel::forward(const torch::Tensor& tokens, const torch::Tensor& lengths) const {
  const auto& c = config_;
  const int64_t B = tokens.size(0), T = tokens.size(1), H = c.hidden_size;
  const int64_t nh = c.num_attention_heads, hd = c.head_dim(), E = c.num_experts, K = c.num_experts_per_tok;
  if (T > c.max_position_embeddings)
    throw Error("", "tokens", "sequence of " + std::to_string(T) + " tokens exceeds max_position_embeddings");

  // RoPE tables as HF computes them: inv_freq = theta^(-2i/d) in fp32, angles = pos * inv_freq.
  auto inv_freq = 1.0 / torch::pow(c.rope_theta, torch::arange(0, hd, 2, torch::kInt64).to(torch::kFloat32) / hd);
  auto positions = torch::arange(T, torch::kFloat32);
  auto freqs = torch::outer(positions, inv_freq);
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = emb.cos(), sin = emb.sin();  // [T, hd]
  auto causal = torch::full({T, T}, -std::numeric_limits<float>::infinity()).triu(1);

  auto valid = (torch::arange(T).unsqueeze(0) < lengths.unsqueeze(1)).reshape({B * T});
  auto valid_rows = valid.nonzero().squeeze(1);
  std::vector<torch::Tensor> all_probs, all_selected, router_probs;

  auto x = param("model.embed_tokens.weight").index_select(0, tokens.reshape({-1})).reshape({B, T, H});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const auto p = layer(i);
    auto h = rms_norm(x, param(p + "input_layernorm.weight"), c.rms_norm_eps);
    // OLMoE normalises the whole projected q / k before splitting heads.
    auto q = rms_norm(project(h, param(p + "self_attn.q_proj.weight")), param(p + "self_attn.q_norm.weight"), c.rms_norm_eps);
    auto k = rms_norm(project(h, param(p + "self_attn.k_proj.weight")), param(p + "self_attn.k_norm.weight"), c.rms_norm_eps);
    auto v = project(h, param(p + "self_attn.v_proj.weight"));
    q = q.view({B, T, nh, hd}).transpose(1, 2);
    k = k.view({B, T, nh, hd}).transpose(1, 2);
    v = v.view({B, T, nh, hd}).transpose(1, 2);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(hd)) + causal;
    auto attn = torch::matmul(torch::softmax(scores, -1), v).transpose(1, 2).reshape({B, T, H});
    x = x + project(attn, param(p + "self_attn.o_proj.weight"));

    auto flat = rms_norm(x, param(p + "post_attention_layernorm.weight"), c.rms_norm_eps).reshape({B * T, H});
    auto probs = torch::softmax(project(flat, param(p + "mlp.gate.weight")), -1);  // over all experts, fp32
    auto [weights, selected] = torch::topk(probs, K, -1);  // no renormalisation (norm_topk_prob false)
    router_probs.push_back(probs.view({B, T, E}));
    all_probs.push_back(probs.index_select(0, valid_rows));
    all_selected.push_back(selected.index_select(0, valid_rows));
    auto moe = torch::zeros_like(flat);
    for (int e = 0; e < E; ++e) {
      auto hits = (selected == e).nonzero();  // [m, 2]: (token, slot)
      if (hits.size(0) == 0) continue;
      auto rows = hits.select(1, 0);
      auto w = weights.index({rows, hits.select(1, 1)}).unsqueeze(1);
      auto xe = flat.index_select(0, rows);
      const auto ep = p + "mlp.experts." + std::to_string(e) + ".";
      auto ye = project(torch::silu(project(xe, param(ep + "gate_proj.weight"))) * project(xe, param(ep + "up_proj.weight")),
                       param(ep + "down_proj.weight"));
      moe = moe.index_add(0, rows, ye * w);
    }
    x = x + moe.reshape({B, T, H});
  }
  x = rms_norm(x, param("model.norm.weight"), c.rms_norm_eps);
  OlmoeOutput out;
  out.logits = project(x, param("lm_head.weight"));
  out.router_probs = std::move(router_probs);

  // HF load_balancing_loss_func: all layers' tokens concatenated, E * sum(f * P).
  auto probs = torch::cat(all_probs, 0);
  auto selected = torch::cat(all_selected, 0);
  auto expert_mask = torch::one_hot(selected, E).to(torch::kFloat32);   // [N, K, E]
  auto tokens_per_expert = expert_mask.mean(0);                          // [K, E]
  auto router_prob_per_expert = probs.mean(0);                           // [E]
  out.aux_loss = (tokens_per_expert * router_prob_per_expert.unsqueeze(0)).sum() * static_cast<double>(E);
  return out;
}

void OlmoeTrainModel::save(const std::string& dir) const {
  std::filesystem::create_directories(dir);
  std::vector<torch::Tensor> keep;
  std::vector<io::TensorData> tensors;
  for (const auto& [name, t] : params_) {
    keep.push_back(t.detach().contiguous().to(torch::kFloat32));
    const auto& k = keep.back();
    tensors.push_back({name, io::DType::F32, k.sizes().vec(), k.data_ptr(), static_cast<std::size_t>(k.nbytes())});
  }
  io::write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  io::write_json_file(dir + "/config.json", config_.to_hf_json("float32"));
}

OlmoeTrainModel OlmoeTrainModel::load(const std::string& dir) {
  const auto config_path = dir + "/config.json";
  OlmoeTrainModel model(OlmoeConfig::from_hf_json(io::read_json_file(config_path), config_path));
  auto ck = io::Checkpoint::open(dir);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : model.params_) {
    const auto& view = ck.get(name);
    if (view.shape != t.sizes().vec())
      throw Error(view.file, name, "shape does not match what config.json implies");
    torch::Tensor src;
    if (view.dtype == io::DType::F32) {
      src = torch::from_blob(const_cast<std::byte*>(view.data), view.shape, torch::kFloat32);
    } else if (view.dtype == io::DType::BF16) {
      src = torch::from_blob(const_cast<std::byte*>(view.data), view.shape, torch::kBFloat16).to(torch::kFloat32);
    } else {
      throw Error(view.file, name, std::string("expected F32 or BF16, got ") + io::dtype_name(view.dtype));
    }
    t.copy_(src);
  }
  return model;
}

}  // namespace c3po::demo
