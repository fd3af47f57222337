#include <fmt/core.h>

#include "io/error.h"
#include "model/impl.h"

// KV-cached greedy decoding.
namespace c3po::model {

torch::Tensor MoeModel::decode(KvCache& cache, const std::vector<int64_t>& tokens) const {
  const ModelImpl& M = *impl_;
  torch::NoGradGuard no_grad;
  PackedBatch batch(M.cfg);
  Segment& seg = batch.add_tokens(tokens, cache.length, "decode");
  cache.keys.resize(M.cfg.num_layers);
  cache.values.resize(M.cfg.num_layers);
  seg.cache = &cache;
  RoutingHook no_routing_change;
  auto x = M.run(batch.embed(M.embed), batch.position_tensor(), 0, batch.segments, no_routing_change, {}, {});
  cache.length += batch.rows();
  return M.head(x[batch.rows() - 1].unsqueeze(0), {})[0];
}

std::vector<int64_t> MoeModel::generate(const std::vector<int64_t>& prompt, int max_tokens,
                                        const std::function<bool(int64_t)>& on_token) const {
  std::vector<int64_t> out;
  KvCache cache;
  auto logits = decode(cache, prompt);
  const auto& eos = impl_->cfg.eos_token_ids;
  for (int i = 0; i < max_tokens; ++i) {
    const int64_t next = logits.argmax().item<int64_t>();
    out.push_back(next);
    if (on_token && !on_token(next)) break;
    if (std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    if (i + 1 < max_tokens) logits = decode(cache, {next});
  }
  return out;
}
}  // namespace c3po::model
