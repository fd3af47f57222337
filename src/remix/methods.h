#pragma once
// The four re-mixing algorithms of method.md section 6, over an abstract view of the model:
// a Scorer gives an item's option-letter logits under an override of the critical layers.
// Pathways here are [C, E]: the router distributions of the C critical layers only.
#include <torch/torch.h>

#include <optional>
#include <vector>

#include "remix/options.h"

namespace c3po::remix {

// One multiple-choice item that can be re-run under a routing override (through the engine's
// tail re-run from its PrefixState).
class Scorer {
 public:
  virtual ~Scorer() = default;
  // Logits over the scored classes (the option letters, or the full vocabulary) at the item's last
  // position, with the critical layers routed by omega [C, E]. soft_sets [C, n] (int64): mix all
  // these experts instead of the top-k. Differentiable with respect to omega.
  virtual torch::Tensor logits(const torch::Tensor& omega, const std::optional<torch::Tensor>& soft_sets) = 0;
  // The index of the gold class among those logits.
  virtual int64_t gold_class() const = 0;
};

// Cross-entropy of the gold class.
torch::Tensor item_loss(Scorer& s, const torch::Tensor& omega, const std::optional<torch::Tensor>& soft_sets);

// A scalar loss of a pathway for the critical layers, differentiable with respect to omega.
class Objective {
 public:
  virtual ~Objective() = default;
  virtual torch::Tensor operator()(const torch::Tensor& omega, const std::optional<torch::Tensor>& soft_sets) = 0;
  virtual int cost() const = 0;  // item re-runs one evaluation spends
};

struct WeightedScorer {
  Scorer* scorer;
  double weight;  // kernel weight; normalised inside the objective
};

// sum_i K_i loss_i(omega) / sum_i K_i, one scorer at a time.
class WeightedLoss : public Objective {
 public:
  explicit WeightedLoss(std::vector<WeightedScorer> items);
  torch::Tensor operator()(const torch::Tensor& omega, const std::optional<torch::Tensor>& soft_sets) override;
  int cost() const override { return static_cast<int>(items_.size()); }
  bool empty() const { return items_.empty(); }

 private:
  std::vector<WeightedScorer> items_;  // positive weights only, normalised
};

// The objective's value without a gradient.
double objective_value(Objective& objective, const torch::Tensor& omega);

// The core-expert parameterisation (method.md section 6). The n core experts of each critical
// layer are the n largest entries of omega0; other entries are kept.
//   direct: theta = omega[core] itself; after each step project() clamps it at >= 0.
//   log:    omega(theta)[core] = m * softmax(theta), m the core mass of omega0, theta0 = log omega0[core].
// Both start exactly at omega0.
class CoreParameterisation {
 public:
  CoreParameterisation(const torch::Tensor& omega0, int core_experts,
                       Parameterisation kind = Parameterisation::Direct);
  torch::Tensor initial_theta() const;                 // [C, n]
  torch::Tensor omega(const torch::Tensor& theta) const;  // [C, E]
  // Puts theta back into its domain after an optimiser step (in place, no gradient).
  void project(torch::Tensor& theta) const;
  const torch::Tensor& core() const { return core_; }  // [C, n] int64
  Parameterisation kind() const { return kind_; }

 private:
  Parameterisation kind_;
  torch::Tensor omega0_, core_, mass_;
};

struct RemixResult {
  torch::Tensor omega;             // [C, E], the pathway the item is answered with
  std::vector<double> losses;      // objective per step (NGD, oracle) or per alpha (kernel)
  std::optional<double> alpha;     // kernel regression
  int evaluations = 0;             // tail re-runs spent
  // NGD / oracle with trace_steps: omega before step 0..steps-1, then after the last step.
  std::vector<torch::Tensor> iterates;
};

// Neighbourhood gradient descent: minimise the neighbourhood objective over omega(theta).
RemixResult ngd(const torch::Tensor& omega0, Objective& neighbourhood, const RemixOptions& opt);

// NGD on the item's own loss with its true label: an upper bound, never a deployable method.
// Returns the iterate with the lowest own loss (hard top-k), so it never ends worse than it started.
RemixResult oracle(const torch::Tensor& omega0, Objective& own_loss, const RemixOptions& opt);

// Kernel regression: omega_hat = sum K_i omega_i / sum K_i, answer with a*omega0 + (1-a)*omega_hat,
// a from the grid {0, 0.1, ..., 1} minimising the neighbourhood objective (or opt.fixed_alpha).
// neighbour_pathways: [k, C, E]; weights: the k kernel weights.
RemixResult kernel_regression(const torch::Tensor& omega0, const torch::Tensor& neighbour_pathways,
                              const std::vector<double>& weights, Objective& neighbourhood,
                              const RemixOptions& opt);

// Mode finding: mean shift in pathway space over reference pathways [N, C, E], labels unused.
RemixResult mode_finding(const torch::Tensor& omega0, const torch::Tensor& reference_pathways,
                         const RemixOptions& opt);

}  // namespace c3po::remix
