#include <fmt/core.h>

#include "io/error.h"
#include "model/impl.h"

// Log-likelihood scoring of sequences that share their beginning: each group's shared prefix runs
// once, then every suffix runs on top of its group's keys/values.
namespace c3po::model {

int64_t shared_prefix_length(const std::vector<ScoreRequest>& group) {
  if (group.size() < 2) return 0;
  std::size_t shortest = group[0].input.size();
  for (const auto& r : group) shortest = std::min(shortest, r.input.size());
  if (shortest == 0) return 0;
  std::size_t n = 0;
  while (n + 1 < shortest) {
    const int64_t t = group[0].input[n];
    bool same = true;
    for (const auto& r : group) same = same && r.input[n] == t;
    if (!same) break;
    ++n;
  }
  return static_cast<int64_t>(n);
}

std::vector<SequenceScore> MoeModel::score_continuations(const std::vector<ScoreRequest>& group) const {
  return score_continuations(std::vector<std::vector<ScoreRequest>>{group})[0];
}

std::vector<std::vector<SequenceScore>> MoeModel::score_continuations(
    const std::vector<std::vector<ScoreRequest>>& groups) const {
  const ModelImpl& M = *impl_;
  const ModelConfig& c = M.cfg;
  torch::NoGradGuard no_grad;
  const int64_t G = static_cast<int64_t>(groups.size());
  std::vector<std::vector<SequenceScore>> out(groups.size());
  std::vector<int64_t> shared(groups.size(), 0);
  std::size_t n_requests = 0;
  for (int64_t g = 0; g < G; ++g) {
    out[g].resize(groups[g].size());
    n_requests += groups[g].size();
    shared[g] = shared_prefix_length(groups[g]);
  }
  if (n_requests == 0) return out;
  RoutingHook no_routing_change;

  // Position (in its sequence) of the first scored token's predictor.
  auto first_scored = [](const ScoreRequest& q) { return static_cast<int64_t>(q.input.size() - q.targets.size()); };

  // 2 (packed first, so that every input is checked before anything runs). Every suffix of every
  // group, on top of its group's cache; only the scored positions go through the LM head.
  // Packing checks the token ids and the context length; the targets are checked here.
  std::vector<std::vector<torch::Tensor>> keys(groups.size()), values(groups.size());
  PackedBatch suffixes(c);
  std::vector<int64_t> suffix_head_rows, suffix_row(n_requests, 0);
  {
    std::size_t i = 0;
    for (int64_t g = 0; g < G; ++g)
      for (std::size_t r = 0; r < groups[g].size(); ++r, ++i) {
        const ScoreRequest& q = groups[g][r];
        const int64_t len = static_cast<int64_t>(q.input.size());
        const std::string where = fmt::format("group {} request {}", g, r);
        Segment& s = suffixes.add_tokens(q.input.data() + shared[g], len - shared[g], shared[g], where);
        if (q.targets.empty() || q.targets.size() > q.input.size())
          throw Error(where, "targets",
                      fmt::format("expected 1 to {} scored tokens (the input's length), got {}", q.input.size(),
                                  q.targets.size()));
        for (int64_t t : q.targets)
          if (t < 0 || t >= c.vocab_size)
            throw Error(where, "targets", fmt::format("token id {} out of range [0, {})", t, c.vocab_size));
        s.past_keys = &keys[g];
        s.past_values = &values[g];
        suffix_row[i] = static_cast<int64_t>(suffix_head_rows.size());
        for (int64_t p = std::max(shared[g], first_scored(q)); p < len; ++p)
          suffix_head_rows.push_back(s.offset + p - shared[g]);
      }
  }

  // 1. The shared prefixes of all groups that have one, in one forward; their keys/values are kept
  // (all decoder layers), and the scored positions inside them go through the LM head.
  std::vector<int64_t> prefix_first(groups.size(), 0), prefix_row(groups.size(), 0);
  torch::Tensor prefix_logits;
  {
    PackedBatch prefixes(c);
    std::vector<int64_t> seg_group, head_rows;
    for (int64_t g = 0; g < G; ++g) {
      if (shared[g] == 0) continue;
      const Segment& s = prefixes.add_tokens(groups[g][0].input.data(), shared[g], 0, fmt::format("group {}", g));
      int64_t p0 = shared[g];
      for (const auto& q : groups[g]) p0 = std::min(p0, first_scored(q));
      prefix_first[g] = p0;
      prefix_row[g] = static_cast<int64_t>(head_rows.size());
      for (int64_t p = p0; p < shared[g]; ++p) head_rows.push_back(s.offset + p);
      seg_group.push_back(g);
      keys[g].resize(c.num_layers);
      values[g].resize(c.num_layers);
    }
    if (!prefixes.segments.empty()) {
      KvSink on_kv = [&](int layer, int s, const torch::Tensor& k, const torch::Tensor& v) {
        keys[seg_group[s]][layer] = k.contiguous();
        values[seg_group[s]][layer] = v.contiguous();
      };
      auto x = M.run(prefixes.embed(M.embed), prefixes.position_tensor(), 0, prefixes.segments, no_routing_change,
                     on_kv, {});
      if (!head_rows.empty()) prefix_logits = M.head(x.index_select(0, torch::tensor(head_rows, torch::kInt64)), {});
    }
  }

  auto x = M.run(suffixes.embed(M.embed), suffixes.position_tensor(), 0, suffixes.segments, no_routing_change, {},
                 {});
  const torch::Tensor suffix_logits =
      M.head(x.index_select(0, torch::tensor(suffix_head_rows, torch::kInt64)), {});

  // 3. Per sequence: its scored rows (from the prefix pass, then from its suffix), in float64.
  std::size_t i = 0;
  for (int64_t g = 0; g < G; ++g)
    for (std::size_t r = 0; r < groups[g].size(); ++r, ++i) {
      const ScoreRequest& q = groups[g][r];
      const int64_t p0 = first_scored(q), len = static_cast<int64_t>(q.input.size());
      std::vector<torch::Tensor> parts;
      if (p0 < shared[g])
        parts.push_back(prefix_logits.narrow(0, prefix_row[g] + (p0 - prefix_first[g]), shared[g] - p0));
      const int64_t from = std::max(shared[g], p0);
      parts.push_back(suffix_logits.narrow(0, suffix_row[i], len - from));
      const auto rows = (parts.size() == 1 ? parts[0] : torch::cat(parts, 0)).to(torch::kFloat64);
      const auto target = torch::tensor(q.targets, torch::kInt64);
      const auto logp = torch::log_softmax(rows, -1);
      out[g][r].loglik = logp.gather(1, target.unsqueeze(1)).sum().item<double>();
      out[g][r].is_greedy = torch::equal(rows.argmax(-1), target);
    }
  return out;
}

}  // namespace c3po::model
