#include <fmt/core.h>

#include <algorithm>

#include "io/error.h"
#include "model/impl.h"

// The layer loop and its blocks: pre-norm attention and MoE (or dense) MLP with residuals, then
// the final norm and LM head. Forward, tail, scoring and decode all run through run().
namespace c3po::model {
namespace {

// Writes `fresh` [kv_heads, n, d] after the first `past` positions of `buffer` [kv_heads, capacity, d]
// (growing it by doubling when full) and returns the view of the first past + n positions.
torch::Tensor append_in_place(torch::Tensor& buffer, int64_t past, const torch::Tensor& fresh) {
  const int64_t need = past + fresh.size(1);
  if (!buffer.defined() || buffer.size(1) < need) {
    const int64_t capacity = std::max<int64_t>({need, 64, buffer.defined() ? 2 * buffer.size(1) : 0});
    auto grown = torch::empty({fresh.size(0), capacity, fresh.size(2)}, fresh.options());
    if (past > 0) grown.narrow(1, 0, past).copy_(buffer.narrow(1, 0, past));
    buffer = grown;
  }
  buffer.narrow(1, past, fresh.size(1)).copy_(fresh);
  return buffer.narrow(1, 0, need);
}

}  // namespace

torch::Tensor ModelImpl::run(torch::Tensor x, const torch::Tensor& positions, int first_layer,
                             const std::vector<Segment>& segs, RoutingHook& hook, const KvSink& on_kv,
                             const LayerObserver& on_input) const {
  auto [cos, sin] = rope.tables(positions, st);
  ExpertScratch scratch;
  for (int l = first_layer; l < cfg.num_layers; ++l) {
    const LayerWeights& w = layers[l];
    if (on_input) on_input(l, x);
    x = x + attention(w, l, rms_norm(x, w.attn_norm, cfg.rms_norm_eps), cos, sin, segs, on_kv);
    auto h = rms_norm(x, w.mlp_norm, cfg.rms_norm_eps);
    x = x + (w.moe_index >= 0 ? moe(w, h, segs, hook, scratch) : w.dense(h));
  }
  if (on_input) on_input(static_cast<int>(cfg.num_layers), x);
  return x;
}

torch::Tensor ModelImpl::attention(const LayerWeights& w, int layer, const torch::Tensor& h, const torch::Tensor& cos,
                                   const torch::Tensor& sin, const std::vector<Segment>& segs,
                                   const KvSink& on_kv) const {
  const int64_t N = h.size(0), d = cfg.head_dim;
  auto q = project(h, w.wq, w.bq), k = project(h, w.wk, w.bk), v = project(h, w.wv, w.bv);
  if (cfg.qk_norm == QkNorm::Full) {
    q = rms_norm(q, w.q_norm, cfg.rms_norm_eps);
    k = rms_norm(k, w.k_norm, cfg.rms_norm_eps);
  }
  if (cfg.clip_qkv) {
    const double c = *cfg.clip_qkv;
    q = q.clamp(-c, c), k = k.clamp(-c, c), v = v.clamp(-c, c);
  }
  q = q.view({N, cfg.num_heads, d});
  k = k.view({N, cfg.num_kv_heads, d});
  v = v.view({N, cfg.num_kv_heads, d});
  if (cfg.qk_norm == QkNorm::PerHead) {
    q = rms_norm(q, w.q_norm, cfg.rms_norm_eps);
    k = rms_norm(k, w.k_norm, cfg.rms_norm_eps);
  }
  q = rope.apply(q, cos, sin);
  k = rope.apply(k, cos, sin);
  std::vector<torch::Tensor> outs;
  outs.reserve(segs.size());
  for (std::size_t s = 0; s < segs.size(); ++s) {
    const Segment& g = segs[s];
    auto qs = q.narrow(0, g.offset, g.length).transpose(0, 1);
    auto ks = k.narrow(0, g.offset, g.length).transpose(0, 1);
    auto vs = v.narrow(0, g.offset, g.length).transpose(0, 1);
    if (g.cache) {
      ks = append_in_place(g.cache->keys[layer], g.past, ks);
      vs = append_in_place(g.cache->values[layer], g.past, vs);
    } else if (g.parent >= 0) {
      const Segment& p = segs[static_cast<std::size_t>(g.parent)];
      ks = torch::cat({k.narrow(0, p.offset, p.length).transpose(0, 1), ks}, 1);
      vs = torch::cat({v.narrow(0, p.offset, p.length).transpose(0, 1), vs}, 1);
    } else if (g.past > 0) {
      ks = torch::cat({(*g.past_keys)[layer - g.past_base], ks}, 1);
      vs = torch::cat({(*g.past_values)[layer - g.past_base], vs}, 1);
    }
    outs.push_back(causal_attention(qs, ks, vs, attn_scale, cfg.sliding_window));
    if (on_kv) on_kv(layer, static_cast<int>(s), ks, vs);
  }
  return project(outs.size() == 1 ? outs[0] : torch::cat(outs, 0), w.wo, w.bo);
}

torch::Tensor ModelImpl::moe(const LayerWeights& w, const torch::Tensor& h, const std::vector<Segment>& segs,
                             RoutingHook& hook, ExpertScratch& scratch) const {
  const auto probs = torch::softmax(project(h, w.router).to(torch::kFloat32), -1);  // [N, E]
  const RoutingDecision routing = route_rows(cfg, probs, segs, w.moe_index, hook);
  auto out = run_experts(h, w.experts, routing.assignments, &scratch);
  if (w.shared.defined()) {
    auto sh = w.shared(h);
    if (w.shared_gate.defined()) sh = torch::sigmoid(project(h, w.shared_gate)) * sh;
    out = out + sh;
  }
  return out;
}

torch::Tensor ModelImpl::head(const torch::Tensor& x, const std::vector<int64_t>& vocab_rows) const {
  auto h = rms_norm(x, final_norm, cfg.rms_norm_eps);
  torch::Tensor w = lm_head;
  if (!vocab_rows.empty()) {
    for (int64_t r : vocab_rows)
      if (r < 0 || r >= cfg.vocab_size)
        throw Error("", "vocab_rows", fmt::format("row {} out of range [0, {})", r, cfg.vocab_size));
    w = lm_head.index_select(0, torch::tensor(vocab_rows, torch::kInt64));
  }
  return project(h, w).to(torch::kFloat32);
}

}  // namespace c3po::model
