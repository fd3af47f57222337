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

  // One forward for everything: each group's shared prefix once, then its suffixes, which attend
  // to the prefix's keys/values of the same pass. Only the scored positions go through the LM head.
  // Packing checks the token ids and the context length; the targets are checked here, all before
  // anything runs.
  PackedBatch batch(c);
  std::vector<int64_t> head_rows;
  std::vector<int64_t> prefix_first(groups.size(), 0), prefix_row(groups.size(), 0), suffix_row(n_requests, 0);
  std::size_t i = 0;
  for (int64_t g = 0; g < G; ++g) {
    int prefix = -1;
    if (shared[g] > 0) {
      const Segment& s = batch.add_tokens(groups[g][0].input.data(), shared[g], 0, fmt::format("group {}", g));
      prefix = static_cast<int>(batch.segments.size()) - 1;
      int64_t p0 = shared[g];
      for (const auto& q : groups[g]) p0 = std::min(p0, first_scored(q));
      prefix_first[g] = p0;
      prefix_row[g] = static_cast<int64_t>(head_rows.size());
      for (int64_t p = p0; p < shared[g]; ++p) head_rows.push_back(s.offset + p);
    }
    for (std::size_t r = 0; r < groups[g].size(); ++r, ++i) {
      const ScoreRequest& q = groups[g][r];
      const int64_t len = static_cast<int64_t>(q.input.size());
      const std::string where = fmt::format("group {} request {}", g, r);
      const int64_t* suffix = q.input.data() + shared[g];
      const Segment& s = prefix >= 0 ? batch.add_continuation(suffix, len - shared[g], prefix, where)
                                     : batch.add_tokens(suffix, len, 0, where);
      if (q.targets.empty() || q.targets.size() > q.input.size())
        throw Error(where, "targets",
                    fmt::format("expected 1 to {} scored tokens (the input's length), got {}", q.input.size(),
                                q.targets.size()));
      for (int64_t t : q.targets)
        if (t < 0 || t >= c.vocab_size)
          throw Error(where, "targets", fmt::format("token id {} out of range [0, {})", t, c.vocab_size));
      suffix_row[i] = static_cast<int64_t>(head_rows.size());
      for (int64_t p = std::max(shared[g], first_scored(q)); p < len; ++p)
        head_rows.push_back(s.offset + p - shared[g]);
    }
  }

  auto x = M.run(batch.embed(M.embed), batch.position_tensor(), 0, batch.segments, no_routing_change, {}, {});
  const torch::Tensor logits = M.head(x.index_select(0, torch::tensor(head_rows, torch::kInt64)), {});

  // Per sequence: its scored rows (inside the shared prefix, then in its suffix), in float64.
  i = 0;
  for (int64_t g = 0; g < G; ++g)
    for (std::size_t r = 0; r < groups[g].size(); ++r, ++i) {
      const ScoreRequest& q = groups[g][r];
      const int64_t p0 = first_scored(q), len = static_cast<int64_t>(q.input.size());
      std::vector<torch::Tensor> parts;
      if (p0 < shared[g])
        parts.push_back(logits.narrow(0, prefix_row[g] + (p0 - prefix_first[g]), shared[g] - p0));
      const int64_t from = std::max(shared[g], p0);
      parts.push_back(logits.narrow(0, suffix_row[i], len - from));
      const auto rows = (parts.size() == 1 ? parts[0] : torch::cat(parts, 0)).to(torch::kFloat64);
      const auto target = torch::tensor(q.targets, torch::kInt64);
      const auto logp = torch::log_softmax(rows, -1);
      out[g][r].loglik = logp.gather(1, target.unsqueeze(1)).sum().item<double>();
      out[g][r].is_greedy = torch::equal(rows.argmax(-1), target);
    }
  return out;
}

}  // namespace c3po::model
