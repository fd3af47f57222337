// The default update of NGD and the oracle (docs/method.md section 6): the core weights themselves
// are the parameters (direct), clamped at >= 0, mixed softly while optimising. Checked on the tiny
// checkpoints of all five architectures against finite differences and the base forward.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "../model/test_util.h"
#include "model/engine.h"
#include "remix/methods.h"
#include "remix/options.h"
#include "remix/tail_objective.h"

using namespace c3po;
using namespace c3po::remix;
using c3po::model::test::Expected;

namespace {

struct Case {
  std::unique_ptr<model::MoeModel> model;
  std::vector<int> critical;
  std::vector<int64_t> ids, letters;
  int gold = 0;
  model::ForwardResult base;
  torch::Tensor omega0;  // [C, E]

  explicit Case(const std::string& arch) {
    model = model::MoeModel::load(model::test::model_dir(arch), model::Dtype::F32);
    Expected ex(arch);
    ids = ex.ids(2);
    letters = Expected::to_vector(ex.get(2, "letters"));
    gold = static_cast<int>(ex.get(2, "gold").item<int64_t>());
    const int L = model->num_moe_layers();
    critical = L >= 2 ? std::vector<int>{L - 2, L - 1} : std::vector<int>{L - 1};
    model::ForwardOptions fo;
    fo.capture = true;
    fo.keep_prefix_from = critical.front();
    fo.vocab_rows = letters;
    base = model->forward({ids}, fo);
    omega0 = base.pathway[0]
                 .index_select(0, torch::tensor(std::vector<int64_t>(critical.begin(), critical.end()), torch::kLong))
                 .to(torch::kFloat);
  }
  TailItem item() const { return {&base.prefixes[0], letters, gold, 1.0}; }
  int core() const { return std::min(4, model->num_experts()); }
};

class DirectUpdate : public ::testing::TestWithParam<std::string> {};

}  // namespace

// d L(omega(theta)) / d theta of the direct form (theta = the core weights) under the soft mix,
// against central finite differences of the same objective.
TEST_P(DirectUpdate, DirectGradientMatchesCentralFiniteDifferences) {
  Case c(GetParam());
  CoreParameterisation p(c.omega0, c.core(), Parameterisation::Direct);
  TailObjective obj(*c.model, c.critical, {c.item()});
  auto theta = p.initial_theta().clone().requires_grad_(true);
  obj(p.omega(theta), p.core()).backward();
  const auto grad = theta.grad().clone();
  auto value = [&](const torch::Tensor& t) {
    torch::NoGradGuard ng;
    return obj(p.omega(t), p.core()).item<double>();
  };
  const double h = 1e-3;
  int nonzero = 0;
  for (int64_t l = 0; l < theta.size(0); ++l)
    for (int64_t j = 0; j < theta.size(1); ++j) {
      auto plus = theta.detach().clone(), minus = theta.detach().clone();
      plus[l][j] += h;
      minus[l][j] -= h;
      const double fd = (value(plus) - value(minus)) / (2 * h);
      const double ad = grad[l][j].item<double>();
      EXPECT_NEAR(ad, fd, 2e-3 + 2e-2 * std::abs(fd)) << GetParam() << " layer " << l << " core " << j;
      nonzero += std::abs(fd) > 1e-3;
    }
  EXPECT_GT(nonzero, 0) << "the gradient is not trivially zero";
}

// Zero steps, and ten steps at learning rate 0, answer with omega0 itself, hence the base logits.
TEST_P(DirectUpdate, ZeroStepsAndZeroLearningRateReproduceBase) {
  Case c(GetParam());
  TailObjective own(*c.model, c.critical, {c.item()});
  for (int steps : {0, 10}) {
    RemixOptions o;
    o.core_experts = c.core();
    o.opt.steps = steps;
    o.opt.lr = 0;
    o.opt.lr_min = 0;
    const auto r = ngd(c.omega0, own, o);
    EXPECT_TRUE(torch::equal(r.omega, c.omega0)) << GetParam() << " steps " << steps;
    const auto logits = answer_logits(*c.model, c.critical, c.item(), r.omega);
    EXPECT_TRUE(torch::allclose(logits, c.base.logits[0], 1e-5, 1e-5)) << GetParam() << " steps " << steps;
  }
}

// Large steps drive core weights below zero; the clamp keeps every weight >= 0 and finite.
TEST_P(DirectUpdate, ClampedWeightsNeverGoNegative) {
  Case c(GetParam());
  TailObjective own(*c.model, c.critical, {c.item()});
  for (auto topk : {TopKMode::Soft, TopKMode::Hard}) {
    RemixOptions o;
    o.core_experts = c.core();
    o.opt.lr = 1.0;
    o.opt.schedule = Schedule::Constant;
    o.opt.optimizer = OptimizerKind::Sgd;
    o.opt.topk = topk;
    const auto r = ngd(c.omega0, own, o);
    EXPECT_GE(r.omega.min().item<double>(), 0.0) << GetParam();
    EXPECT_TRUE(torch::isfinite(r.omega).all().item<bool>()) << GetParam();
  }
}

// The soft mix over exactly the base top-k experts, with omega0's weights, is the base forward.
TEST_P(DirectUpdate, SoftMixOfTheBaseTopKAtOmega0IsTheBaseForward) {
  Case c(GetParam());
  const auto topk = std::get<1>(c.omega0.topk(c.model->top_k(), 1));
  model::ForwardOptions fo;
  fo.vocab_rows = c.letters;
  fo.overrides = {critical_override(c.critical, c.omega0, topk)};
  const auto soft = c.model->forward({c.ids}, fo).logits[0];
  EXPECT_TRUE(torch::allclose(soft, c.base.logits[0], 1e-5, 1e-5))
      << GetParam() << " max diff " << (soft - c.base.logits[0]).abs().max().item<double>();
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, DirectUpdate,
                         ::testing::ValuesIn(c3po::model::test::architectures()),
                         [](const auto& info) { return info.param; });
