#pragma once
// The re-mixing objectives evaluated by the engine: items re-run from their PrefixState under an
// override of the critical layers (method.md section 7), a whole neighbourhood in one batched tail.
#include <torch/torch.h>

#include <vector>

#include "model/engine.h"
#include "remix/methods.h"

namespace c3po::remix {

// One item as a tail re-run sees it.
struct TailItem {
  const model::PrefixState* prefix = nullptr;
  std::vector<int64_t> letter_ids;  // token ids of the option letters, in option order
  int gold = -1;                    // gold option (unused when only answering)
  double weight = 1.0;              // kernel weight
};

// The RouteOverride that puts omega [C, E] on the critical MoE layers (soft: soft_sets [C, n]) at
// the last `tokens` positions of each prompt (RemixTokens::count; 0 = all), the same omega at each.
model::RouteOverride critical_override(const std::vector<int>& critical_layers, const torch::Tensor& omega,
                                       const std::optional<torch::Tensor>& soft_sets, int64_t tokens = 1);

// sum_i K_i CE_i(omega) / sum_i K_i over items re-run in one batched tail call. The loss is over the
// option letters (default) or the full vocabulary (full_vocab). omega re-mixes the last `tokens`
// positions of every item (0 = all); the items' prefix states must re-run at least those.
class TailObjective : public Objective {
 public:
  TailObjective(const model::MoeModel& model, std::vector<int> critical_layers, std::vector<TailItem> items,
                bool full_vocab = false, int64_t tokens = 1);
  torch::Tensor operator()(const torch::Tensor& omega, const std::optional<torch::Tensor>& soft_sets) override;
  int cost() const override { return static_cast<int>(items_.size()); }

 private:
  const model::MoeModel& model_;
  std::vector<int> critical_;
  int64_t tokens_ = 1;
  std::vector<TailItem> items_;
  std::vector<const model::PrefixState*> states_;
  std::vector<int64_t> rows_;         // vocabulary rows the tail computes (empty: all)
  torch::Tensor gather_, mask_, target_, weights_;  // [N, maxopt] columns into rows_, valid mask, gold, K
};

// Letter logits [n_options] of one item under omega (hard top-k) at its last `tokens` positions, no
// gradient.
torch::Tensor answer_logits(const model::MoeModel& model, const std::vector<int>& critical_layers,
                            const TailItem& item, const torch::Tensor& omega, int64_t tokens = 1);

}  // namespace c3po::remix
