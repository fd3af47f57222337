#include "remix/tail_objective.h"

#include <algorithm>
#include <map>

#include "eval/requests.h"
#include "io/error.h"

namespace c3po::remix {

model::RouteOverride critical_override(const std::vector<int>& critical_layers, const torch::Tensor& omega,
                                       const std::optional<torch::Tensor>& soft_sets, int64_t tokens) {
  if (omega.dim() != 2 || omega.size(0) != static_cast<int64_t>(critical_layers.size()))
    throw Error("", "omega", "expected one row per critical layer");
  model::RouteOverride r;
  for (std::size_t c = 0; c < critical_layers.size(); ++c) {
    model::LayerOverride lo;
    lo.moe_layer = critical_layers[c];
    lo.omega = omega[static_cast<int64_t>(c)];
    if (soft_sets) lo.soft_set = (*soft_sets)[static_cast<int64_t>(c)];
    lo.tokens = tokens;
    r.layers.push_back(std::move(lo));
  }
  return r;
}

TailObjective::TailObjective(const model::MoeModel& model, std::vector<int> critical_layers,
                             std::vector<TailItem> items, bool full_vocab, int64_t tokens)
    : model_(model), critical_(std::move(critical_layers)), tokens_(tokens) {
  double total = 0;
  for (auto& i : items)
    if (i.weight > 0 && i.prefix) {
      total += i.weight;
      items_.push_back(std::move(i));
    }
  const int64_t n = static_cast<int64_t>(items_.size());
  if (n == 0) return;
  std::vector<const std::vector<int64_t>*> letter_ids;
  for (const auto& i : items_) letter_ids.push_back(&i.letter_ids);
  const auto columns = eval::letter_columns(letter_ids);
  if (!full_vocab) rows_ = columns.vocab_rows;
  std::size_t widest = 0;
  for (const auto& i : items_) widest = std::max(widest, i.letter_ids.size());
  gather_ = torch::zeros({n, static_cast<int64_t>(widest)}, torch::kLong);
  mask_ = torch::zeros({n, static_cast<int64_t>(widest)}, torch::kBool);
  target_ = torch::zeros({n}, torch::kLong);
  weights_ = torch::zeros({n});
  for (int64_t r = 0; r < n; ++r) {
    const auto& i = items_[r];
    if (i.gold < 0 || i.gold >= static_cast<int>(i.letter_ids.size()))
      throw Error("", "gold", "gold option outside the item's options");
    states_.push_back(i.prefix);
    weights_[r] = i.weight / total;
    if (full_vocab) {
      // Over the full vocabulary the classes are the token ids; the gold class is its letter.
      target_[r] = i.letter_ids[i.gold];
      continue;
    }
    for (std::size_t j = 0; j < i.letter_ids.size(); ++j) {
      gather_[r][static_cast<int64_t>(j)] = columns.columns[r][j];
      mask_[r][static_cast<int64_t>(j)] = true;
    }
    target_[r] = i.gold;
  }
}

torch::Tensor TailObjective::operator()(const torch::Tensor& omega, const std::optional<torch::Tensor>& soft_sets) {
  if (items_.empty()) return torch::zeros({}, torch::kFloat);
  const auto logits = model_.tail(states_, critical_override(critical_, omega, soft_sets, tokens_), rows_);  // [N, V']
  torch::Tensor scored = logits;
  if (!rows_.empty())
    scored = logits.gather(1, gather_).masked_fill(~mask_, -std::numeric_limits<float>::infinity());
  const auto losses = torch::nn::functional::cross_entropy(
      scored, target_, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  return (losses * weights_).sum();
}

torch::Tensor answer_logits(const model::MoeModel& model, const std::vector<int>& critical_layers,
                            const TailItem& item, const torch::Tensor& omega, int64_t tokens) {
  torch::NoGradGuard no_grad;
  return model.tail(*item.prefix, critical_override(critical_layers, omega.detach(), std::nullopt, tokens),
                    item.letter_ids);
}

}  // namespace c3po::remix
