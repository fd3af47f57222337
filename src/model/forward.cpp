#include <fmt/core.h>

#include "io/error.h"
#include "model/impl.h"

// forward(): prompts from their first token, with capture, overrides, embeddings, hidden states
// and prefix states on request. tail(): the last tokens of prompts from their prefix states.
namespace c3po::model {

ForwardResult MoeModel::forward(const std::vector<std::vector<int64_t>>& prompts,
                                const ForwardOptions& opt) const {
  const ModelImpl& M = *impl_;
  const ModelConfig& c = M.cfg;
  const int B = static_cast<int>(prompts.size());
  if (B == 0) throw Error("", "prompts", "no prompt given");
  if (!opt.overrides.empty() && static_cast<int>(opt.overrides.size()) != B)
    throw Error("", "overrides", fmt::format("expected one per prompt ({}), got {}", B, opt.overrides.size()));
  if (opt.embed_layer < -1 || opt.embed_layer > c.num_layers)
    throw Error("", "embed_layer", fmt::format("{} out of range [-1, {}]", opt.embed_layer, c.num_layers));
  const int L = num_moe_layers();
  if (opt.keep_prefix_from < -1 || opt.keep_prefix_from >= L)
    throw Error("", "keep_prefix_from", fmt::format("{} out of range [-1, {})", opt.keep_prefix_from, L));
  if (opt.prefix_tokens < 0)
    throw Error("", "prefix_tokens",
                fmt::format("expected a count of last tokens >= 1 or {} (all), got {}", kAllTokens, opt.prefix_tokens));
  bool grad = false;
  for (int b = 0; b < static_cast<int>(opt.overrides.size()); ++b) {
    M.check_route(opt.overrides[b], fmt::format("override of prompt {}", b));
    grad = grad || needs_grad(opt.overrides[b]);
  }
  torch::AutoGradMode grad_mode(grad);

  ForwardResult res;
  PackedBatch batch(c);
  for (int b = 0; b < B; ++b) {
    batch.add_tokens(prompts[b], 0, fmt::format("prompt {}", b));
    res.lengths.push_back(static_cast<int64_t>(prompts[b].size()));
  }
  const std::vector<Segment>& segs = batch.segments;

  PromptOverrides overrides(opt.overrides);
  std::unique_ptr<PathwayCapture> capture;
  if (opt.capture) capture = std::make_unique<PathwayCapture>(B, L, c.num_experts, c.top_k);
  RoutingChain routing;
  routing.add(&overrides);
  routing.add(opt.hook);
  routing.add(capture.get());

  int prefix_layer = -1;
  if (opt.keep_prefix_from >= 0) {
    prefix_layer = static_cast<int>(c.decoder_layer_of_moe(opt.keep_prefix_from));
    res.prefixes.resize(B);
    for (int b = 0; b < B; ++b) {
      auto& p = res.prefixes[b];
      p.moe_layer = opt.keep_prefix_from;
      p.decoder_layer = prefix_layer;
      const int64_t T = segs[b].length;
      p.tokens = opt.prefix_tokens == kAllTokens ? T : std::min(opt.prefix_tokens, T);
      p.position = T - p.tokens;
      p.fingerprint = M.fingerprint;
    }
  }
  KvSink on_kv;
  if (prefix_layer >= 0)
    on_kv = [&](int layer, int s, const torch::Tensor& k, const torch::Tensor& v) {
      if (layer < prefix_layer) return;
      auto& p = res.prefixes[s];
      p.keys.push_back(k.narrow(1, 0, p.position).detach().clone());
      p.values.push_back(v.narrow(1, 0, p.position).detach().clone());
    };
  std::vector<std::vector<torch::Tensor>> hidden(opt.hidden_states ? B : 0);
  if (opt.embed_layer >= 0) res.embedding = torch::zeros({B, c.hidden_size}, torch::kFloat32);
  LayerObserver on_input = [&](int layer, const torch::Tensor& xs) {
    if (layer == prefix_layer)
      for (int b = 0; b < B; ++b)
        res.prefixes[b].hidden =
            xs.narrow(0, segs[b].offset + res.prefixes[b].position, res.prefixes[b].tokens).detach().clone();
    const bool want_embed = opt.embed_layer == layer;
    if (!opt.hidden_states && !want_embed) return;
    auto xf = xs.detach().to(torch::kFloat32);
    for (int b = 0; b < B; ++b) {
      auto rows = xf.narrow(0, segs[b].offset, segs[b].length);
      if (want_embed) res.embedding[b].copy_(rows.mean(0));
      if (opt.hidden_states) hidden[b].push_back(rows.clone());
    }
  };
  auto x = M.run(batch.embed(M.embed), batch.position_tensor(), 0, segs, routing, on_kv, on_input);
  for (auto& h : hidden) res.hidden_states.push_back(torch::stack(h));

  if (opt.all_positions) {
    auto logits = M.head(x, opt.vocab_rows);
    int64_t tmax = 0;
    for (const auto& g : segs) tmax = std::max(tmax, g.length);
    std::vector<torch::Tensor> rows;
    for (const auto& g : segs)
      rows.push_back(torch::constant_pad_nd(logits.narrow(0, g.offset, g.length), {0, 0, 0, tmax - g.length}, 0.0));
    res.logits = torch::stack(rows);
  } else {
    std::vector<int64_t> last;
    for (const auto& g : segs) last.push_back(g.offset + g.length - 1);
    res.logits = M.head(x.index_select(0, torch::tensor(last, torch::kInt64)), opt.vocab_rows);
  }
  if (capture) {
    res.pathway = capture->pathway;
    res.topk_idx = capture->topk_idx;
    res.topk_weight = capture->topk_weight;
  }
  return res;
}

torch::Tensor MoeModel::tail(const PrefixState& state, const RouteOverride& route,
                             const std::vector<int64_t>& vocab_rows) const {
  return tail(std::vector<const PrefixState*>{&state}, route, vocab_rows)[0];
}

torch::Tensor MoeModel::tail(const std::vector<const PrefixState*>& states, const RouteOverride& route,
                             const std::vector<int64_t>& vocab_rows) const {
  const ModelImpl& M = *impl_;
  if (states.empty()) throw Error("", "states", "no prefix state given");
  M.check_route(route, "tail override");
  const int first = states[0]->decoder_layer;
  const int64_t layers_kept = M.cfg.num_layers - first;
  PackedBatch batch(M.cfg);
  std::vector<torch::Tensor> hs;
  std::vector<int64_t> last;
  for (std::size_t i = 0; i < states.size(); ++i) {
    const PrefixState& s = *states[i];
    const std::string where = fmt::format("prefix state {}", i);
    if (s.fingerprint != M.fingerprint)
      throw Error(where, "fingerprint", "comes from a different model (fingerprint " + s.fingerprint + ")");
    if (s.decoder_layer != first || static_cast<int64_t>(s.keys.size()) != layers_kept ||
        s.values.size() != s.keys.size() || !s.hidden.defined())
      throw Error(where, "decoder_layer", "states of one tail batch must all start at the same MoE layer");
    if (s.tokens < 1 || s.hidden.dim() != 2 || s.hidden.size(0) != s.tokens)
      throw Error(where, "hidden", "holds no hidden state per re-run token");
    for (const auto& lo : route.layers) {
      const int64_t length = s.position + s.tokens;
      const int64_t from = lo.tokens == kAllTokens ? 0 : std::max<int64_t>(0, length - lo.tokens);
      if (from < s.position)
        throw Error(where, "override",
                    fmt::format("re-mixes {} of MoE layer {} but the state re-runs only its last {} of {} tokens",
                                lo.tokens == kAllTokens ? std::string("every position")
                                                        : fmt::format("the last {} positions", lo.tokens),
                                lo.moe_layer, s.tokens, length));
    }
    Segment& seg = batch.add_rows(s.tokens, s.position, where);
    seg.past_keys = &s.keys;
    seg.past_values = &s.values;
    seg.past_base = first;
    hs.push_back(s.hidden);
    last.push_back(batch.rows() - 1);
  }
  const int min_layer = route.min_moe_layer();
  if (min_layer >= 0 && min_layer < states[0]->moe_layer)
    throw Error("", "override",
                fmt::format("overrides MoE layer {} but the prefix state starts at MoE layer {}", min_layer,
                            states[0]->moe_layer));
  torch::AutoGradMode grad_mode(needs_grad(route));
  SharedOverride routing(route);
  auto x = M.run(hs.size() == 1 ? hs[0] : torch::cat(hs, 0), batch.position_tensor(), first, batch.segments,
                 routing, {}, {});
  if (batch.rows() != static_cast<int64_t>(states.size())) x = x.index_select(0, torch::tensor(last, torch::kInt64));
  return M.head(x, vocab_rows);
}

}  // namespace c3po::model
