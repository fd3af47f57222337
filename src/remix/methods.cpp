#include "remix/methods.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "io/error.h"

namespace c3po::remix {

torch::Tensor item_loss(Scorer& s, const torch::Tensor& omega, const std::optional<torch::Tensor>& soft_sets) {
  auto logits = s.logits(omega, soft_sets).to(torch::kFloat).reshape({1, -1});
  auto target = torch::full({1}, s.gold_class(), torch::kLong);
  return torch::nn::functional::cross_entropy(logits, target);
}

WeightedLoss::WeightedLoss(std::vector<WeightedScorer> items) {
  double total = 0;
  for (const auto& i : items)
    if (i.weight > 0) total += i.weight;
  for (const auto& i : items)
    if (i.weight > 0) items_.push_back({i.scorer, i.weight / total});
}

torch::Tensor WeightedLoss::operator()(const torch::Tensor& omega, const std::optional<torch::Tensor>& soft_sets) {
  torch::Tensor total;
  for (const auto& i : items_) {
    auto l = item_loss(*i.scorer, omega, soft_sets) * i.weight;
    total = total.defined() ? total + l : l;
  }
  return total;
}

double objective_value(Objective& objective, const torch::Tensor& omega) {
  torch::NoGradGuard no_grad;
  return objective(omega, std::nullopt).item<double>();
}

CoreParameterisation::CoreParameterisation(const torch::Tensor& omega0, int core_experts, Parameterisation kind)
    : kind_(kind) {
  if (omega0.dim() != 2) throw Error("", "omega0", "expected a [critical layers, experts] pathway");
  omega0_ = omega0.detach().to(torch::kFloat);
  const int64_t n = std::clamp<int64_t>(core_experts, 1, omega0_.size(1));
  core_ = std::get<1>(omega0_.topk(n, /*dim=*/1));
  mass_ = omega0_.gather(1, core_).sum(1, /*keepdim=*/true);
}

torch::Tensor CoreParameterisation::initial_theta() const {
  const auto w = omega0_.gather(1, core_);
  if (kind_ == Parameterisation::Direct) return w;
  // A floor keeps log() finite for experts the router gave (numerically) zero probability.
  return w.clamp_min(1e-30).log();
}

torch::Tensor CoreParameterisation::omega(const torch::Tensor& theta) const {
  if (kind_ == Parameterisation::Direct) return omega0_.scatter(1, core_, theta);
  return omega0_.scatter(1, core_, mass_ * torch::softmax(theta, 1));
}

void CoreParameterisation::project(torch::Tensor& theta) const {
  if (kind_ != Parameterisation::Direct) return;
  torch::NoGradGuard no_grad;
  theta.clamp_min_(0);
}

namespace {

// Gradient descent on theta; losses[t] is the objective at iterate t (before step t), iterates
// holds every omega visited including the last.
void descend(const CoreParameterisation& p, const RemixOptions& opt, Objective& objective, RemixResult& r,
             std::vector<torch::Tensor>& iterates) {
  // Callers (the evaluation harness) may run under NoGradGuard; the optimisation needs autograd.
  torch::AutoGradMode grad_mode(true);
  auto theta = p.initial_theta().clone().requires_grad_(true);
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (opt.opt.optimizer == OptimizerKind::Adam)
    optimizer = std::make_unique<torch::optim::Adam>(std::vector<torch::Tensor>{theta},
                                                     torch::optim::AdamOptions(opt.opt.lr));
  else
    optimizer = std::make_unique<torch::optim::SGD>(std::vector<torch::Tensor>{theta},
                                                    torch::optim::SGDOptions(opt.opt.lr));
  const std::optional<torch::Tensor> soft =
      opt.opt.topk == TopKMode::Soft ? std::optional<torch::Tensor>(p.core()) : std::nullopt;
  for (int step = 0; step < opt.opt.steps; ++step) {
    for (auto& group : optimizer->param_groups()) group.options().set_lr(opt.opt.lr_at(step));
    optimizer->zero_grad();
    auto omega = p.omega(theta);
    torch::Tensor loss = objective(omega, soft);
    loss.backward();
    r.losses.push_back(loss.item<double>());
    r.evaluations += objective.cost();
    iterates.push_back(omega.detach());
    optimizer->step();
    p.project(theta);
  }
  iterates.push_back(p.omega(theta).detach());
}

}  // namespace

RemixResult ngd(const torch::Tensor& omega0, Objective& neighbourhood, const RemixOptions& opt) {
  RemixResult r;
  r.omega = omega0.detach().to(torch::kFloat);
  if (neighbourhood.cost() == 0 || opt.opt.steps <= 0) return r;
  CoreParameterisation p(omega0, opt.core_experts, opt.opt.param);
  std::vector<torch::Tensor> iterates;
  descend(p, opt, neighbourhood, r, iterates);
  r.omega = iterates.back();
  if (opt.trace_steps) r.iterates = std::move(iterates);
  return r;
}

RemixResult oracle(const torch::Tensor& omega0, Objective& own_loss, const RemixOptions& opt) {
  RemixResult r;
  r.omega = omega0.detach().to(torch::kFloat);
  if (opt.opt.steps <= 0) return r;
  CoreParameterisation p(omega0, opt.core_experts, opt.opt.param);
  std::vector<torch::Tensor> iterates;
  descend(p, opt, own_loss, r, iterates);
  if (opt.trace_steps) r.iterates = iterates;
  // Judge every iterate by the loss the answer is given with (hard top-k), keep the best.
  double best = std::numeric_limits<double>::infinity();
  for (const auto& omega : iterates) {
    const double l = objective_value(own_loss, omega);
    r.evaluations += own_loss.cost();
    if (l < best) {
      best = l;
      r.omega = omega;
    }
  }
  return r;
}

RemixResult kernel_regression(const torch::Tensor& omega0, const torch::Tensor& neighbour_pathways,
                              const std::vector<double>& weights, Objective& neighbourhood,
                              const RemixOptions& opt) {
  RemixResult r;
  const auto w0 = omega0.detach().to(torch::kFloat);
  r.omega = w0;
  double wsum = 0;
  for (double w : weights) wsum += std::max(0.0, w);
  if (weights.empty() || !(wsum > 0)) return r;
  if (neighbour_pathways.size(0) != static_cast<int64_t>(weights.size()))
    throw Error("", "kernel_regression", "one pathway per neighbour expected");
  std::vector<float> normalised;
  for (double w : weights) normalised.push_back(static_cast<float>(std::max(0.0, w) / wsum));
  auto k = torch::tensor(normalised).view({-1, 1, 1});
  const auto omega_hat = (k * neighbour_pathways.to(torch::kFloat)).sum(0);
  auto mix = [&](double a) { return a * w0 + (1 - a) * omega_hat; };
  if (opt.fixed_alpha) {
    r.alpha = *opt.fixed_alpha;
    r.omega = mix(*opt.fixed_alpha);
    return r;
  }
  // From alpha = 1 (the base pathway) down, a strictly lower objective is needed to move: ties
  // keep the pathway closer to the model's own.
  double best = std::numeric_limits<double>::infinity();
  for (int i = 10; i >= 0; --i) {
    const double a = i / 10.0;
    const double l = objective_value(neighbourhood, mix(a));
    r.evaluations += neighbourhood.cost();
    r.losses.push_back(l);
    if (l < best) {
      best = l;
      r.alpha = a;
    }
  }
  std::reverse(r.losses.begin(), r.losses.end());  // losses[i] belongs to alpha = i / 10
  r.omega = mix(*r.alpha);
  return r;
}

RemixResult mode_finding(const torch::Tensor& omega0, const torch::Tensor& reference_pathways,
                         const RemixOptions& opt) {
  RemixResult r;
  auto omega = omega0.detach().to(torch::kFloat);
  r.omega = omega;
  const int64_t n = reference_pathways.size(0);
  if (n == 0) return r;
  const auto refs = reference_pathways.to(torch::kFloat).reshape({n, -1});
  const int64_t k = std::min<int64_t>(std::max(1, opt.neighbours.k), n);
  for (int it = 0; it < opt.mode_iterations; ++it) {
    const auto d = (refs - omega.reshape({1, -1})).norm(2, 1);
    auto [dk, idx] = d.topk(k, 0, /*largest=*/false);
    auto sorted = std::get<0>(dk.sort());
    const double h = k % 2 ? sorted[k / 2].item<double>()
                           : 0.5 * (sorted[k / 2 - 1].item<double>() + sorted[k / 2].item<double>());
    torch::Tensor w = h > 1e-12 ? torch::exp(-dk.square() / (2 * h * h)) : torch::ones_like(dk);
    w = w / w.sum();
    const auto bar = (w.view({-1, 1}) * refs.index_select(0, idx)).sum(0).view_as(omega);
    omega = opt.mode_alpha * omega + (1 - opt.mode_alpha) * bar;
    r.losses.push_back(dk.mean().item<double>());
  }
  r.omega = omega;
  return r;
}

}  // namespace c3po::remix
