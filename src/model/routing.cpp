#include <fmt/core.h>

#include "io/error.h"
#include "model/impl.h"

// The routing point: overrides are resolved, top-k chosen and renormalised, hooks told.
namespace c3po::model {

int RouteOverride::min_moe_layer() const {
  int m = -1;
  for (const auto& l : layers) m = (m < 0 || l.moe_layer < m) ? l.moe_layer : m;
  return m;
}

const LayerOverride* RouteOverride::find(int moe_layer) const {
  for (const auto& l : layers)
    if (l.moe_layer == moe_layer) return &l;
  return nullptr;
}

const LayerOverride* PromptOverrides::override_for(int prompt, int moe_layer) {
  return prompt < static_cast<int>(overrides_.size()) ? overrides_[prompt].find(moe_layer) : nullptr;
}

PathwayCapture::PathwayCapture(int64_t prompts, int64_t moe_layers, int64_t experts, int64_t top_k)
    : pathway(torch::zeros({prompts, moe_layers, experts}, torch::kFloat32)),
      topk_idx(torch::zeros({prompts, moe_layers, top_k}, torch::kInt64)),
      topk_weight(torch::zeros({prompts, moe_layers, top_k}, torch::kFloat32)) {}

void PathwayCapture::on_router(const RouterEvent& e) {
  const int64_t last = e.probs.size(0) - 1;
  pathway[e.prompt][e.moe_layer].copy_(e.probs[last].detach());
  topk_idx[e.prompt][e.moe_layer].copy_(e.topk_idx[last]);
  topk_weight[e.prompt][e.moe_layer].copy_(e.topk_weight[last].detach());
}

const LayerOverride* RoutingChain::override_for(int prompt, int moe_layer) {
  for (RoutingHook* h : hooks_)
    if (const LayerOverride* o = h->override_for(prompt, moe_layer)) return o;
  return nullptr;
}

void RoutingChain::on_router(const RouterEvent& e) {
  for (RoutingHook* h : hooks_) h->on_router(e);
}

bool needs_grad(const RouteOverride& r) {
  for (const auto& l : r.layers)
    if (l.omega.requires_grad()) return true;
  return false;
}

void ModelImpl::check_route(const RouteOverride& r, const std::string& where) const {
  const int64_t E = cfg.num_experts, L = cfg.num_moe_layers();
  for (const auto& lo : r.layers) {
    if (lo.moe_layer < 0 || lo.moe_layer >= L)
      throw Error(where, "moe_layer", fmt::format("{} out of range [0, {})", lo.moe_layer, L));
    if (!lo.omega.defined() || lo.omega.dim() < 1 || lo.omega.dim() > 2 || lo.omega.size(-1) != E ||
        lo.omega.numel() == 0 || !lo.omega.is_floating_point())
      throw Error(where, "omega",
                  fmt::format("expected a float tensor [{}] or [n, {}] for MoE layer {}", E, E, lo.moe_layer));
    if (lo.tokens < 0)
      throw Error(where, "tokens",
                  fmt::format("expected a count of last positions >= 1 or {} (all), got {} for MoE layer {}",
                              kAllTokens, lo.tokens, lo.moe_layer));
    if (lo.soft_set.defined()) {
      if (lo.soft_set.dim() != 1 || lo.soft_set.scalar_type() != torch::kInt64 || lo.soft_set.numel() == 0)
        throw Error(where, "soft_set", "expected a non-empty int64 tensor [s]");
      auto s = lo.soft_set.contiguous();
      const int64_t* p = s.data_ptr<int64_t>();
      std::vector<bool> seen(E, false);
      for (int64_t i = 0; i < s.numel(); ++i) {
        if (p[i] < 0 || p[i] >= E) throw Error(where, "soft_set", fmt::format("expert {} out of range", p[i]));
        if (seen[p[i]]) throw Error(where, "soft_set", fmt::format("expert {} listed twice", p[i]));
        seen[p[i]] = true;
      }
    }
    for (const auto& other : r.layers)
      if (&other != &lo && other.moe_layer == lo.moe_layer)
        throw Error(where, "moe_layer", fmt::format("MoE layer {} overridden twice", lo.moe_layer));
  }
}

RoutingDecision route_rows(const ModelConfig& cfg, const torch::Tensor& probs, const std::vector<Segment>& segs,
                           int m, RoutingHook& hook) {
  const int64_t N = probs.size(0), k = cfg.top_k;
  // Overridden rows: the last `tokens` positions of each prompt that has an override. A segment
  // continues a prompt after `past` cached positions; the positions it does not hold cannot be
  // overridden here (tail() checks that they are not asked for).
  struct Over {
    int64_t first = 0, n = 0;  // rows first .. first+n-1
    const LayerOverride* o = nullptr;
    torch::Tensor omega;  // [n, E] float32
  };
  std::vector<Over> over;
  for (const auto& g : segs) {
    const LayerOverride* o = hook.override_for(g.prompt, m);
    if (!o) continue;
    const int64_t length = g.past + g.length;
    const int64_t from = o->tokens == kAllTokens ? 0 : std::max<int64_t>(0, length - o->tokens);
    const int64_t covered = length - from;
    const int64_t n = std::min(covered, g.length);
    torch::Tensor om = o->omega.to(torch::kFloat32);
    if (om.dim() == 1) {
      om = n == 1 ? om.unsqueeze(0) : om.unsqueeze(0).expand({n, om.size(0)});
    } else {
      if (om.size(0) != covered)
        throw Error(fmt::format("prompt {}", g.prompt), "omega",
                    fmt::format("{} rows for MoE layer {}, but the override covers {} positions", om.size(0), m,
                                covered));
      om = om.narrow(0, covered - n, n);
    }
    over.push_back({g.offset + g.length - n, n, o, om});
  }
  torch::Tensor sel = probs;
  if (!over.empty()) {
    std::vector<torch::Tensor> rows, omegas;
    for (const auto& v : over) {
      rows.push_back(v.n == 1 ? torch::full({1}, v.first, torch::kInt64)
                              : torch::arange(v.first, v.first + v.n, torch::kInt64));
      omegas.push_back(v.omega);
    }
    sel = probs.index_put({rows.size() == 1 ? rows[0] : torch::cat(rows)},
                          omegas.size() == 1 ? omegas[0] : torch::cat(omegas));
  }
  auto [topk_w, topk_i] = torch::topk(sel, k, -1);
  if (cfg.norm_topk_prob) topk_w = topk_w / (topk_w.sum(-1, true) + cfg.topk_norm_eps);

  Assignments a{torch::arange(N, torch::kInt64).repeat_interleave(k), topk_i.flatten(), topk_w.flatten()};
  bool any_soft = false;
  for (const auto& v : over) any_soft = any_soft || v.o->soft_set.defined();
  if (any_soft) {
    // Soft rows drop their top-k assignments and mix every expert of the set instead.
    std::vector<torch::Tensor> rows, experts, weights;
    auto keep = torch::ones({N}, torch::kBool);
    for (const auto& v : over)
      if (v.o->soft_set.defined()) keep.narrow(0, v.first, v.n).fill_(false);
    auto kept = keep.repeat_interleave(k).nonzero().flatten();
    rows.push_back(a.rows.index_select(0, kept));
    experts.push_back(a.experts.index_select(0, kept));
    weights.push_back(a.weights.index_select(0, kept));
    for (const auto& v : over) {
      if (!v.o->soft_set.defined()) continue;
      const int64_t s = v.o->soft_set.numel();
      auto ws = v.omega.index_select(1, v.o->soft_set);  // [n, s]
      if (cfg.norm_topk_prob) ws = ws / (ws.sum(-1, true) + cfg.topk_norm_eps);
      rows.push_back(torch::arange(v.first, v.first + v.n, torch::kInt64).repeat_interleave(s));
      experts.push_back(v.o->soft_set.repeat({v.n}));
      weights.push_back(ws.flatten());
    }
    a = Assignments{torch::cat(rows), torch::cat(experts), torch::cat(weights)};
  }
  for (const auto& g : segs) {
    RouterEvent e;
    e.moe_layer = m;
    e.prompt = g.prompt;
    e.probs = probs.narrow(0, g.offset, g.length);
    e.topk_idx = topk_i.narrow(0, g.offset, g.length);
    e.topk_weight = topk_w.narrow(0, g.offset, g.length);
    hook.on_router(e);
  }
  return RoutingDecision{topk_i, topk_w, std::move(a)};
}

}  // namespace c3po::model
