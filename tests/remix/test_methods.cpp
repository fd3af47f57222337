#include <gtest/gtest.h>
#include <torch/torch.h>

#include "remix/methods.h"

using namespace c3po::remix;

namespace {

// A differentiable stand-in for a model: hard top-k of each layer's omega, then a fixed linear map
// to class logits. Enough structure for the methods' invariants; the engine tests cover the model.
class LinearScorer : public Scorer {
 public:
  LinearScorer(int64_t layers, int64_t experts, int64_t classes, int64_t gold, int top_k, uint64_t seed)
      : gold_(gold), top_k_(top_k) {
    torch::manual_seed(seed);
    map_ = torch::randn({classes, layers * experts}, torch::kDouble) * 3;
  }
  torch::Tensor logits(const torch::Tensor& omega, const std::optional<torch::Tensor>& soft) override {
    ++calls;
    torch::Tensor routed;
    if (soft) {
      routed = torch::zeros_like(omega).scatter(1, *soft, omega.gather(1, *soft));
    } else {
      auto idx = std::get<1>(omega.topk(top_k_, 1));
      routed = torch::zeros_like(omega).scatter(1, idx, omega.gather(1, idx));
    }
    return torch::matmul(map_, routed.reshape({-1}).to(torch::kDouble));
  }
  int64_t gold_class() const override { return gold_; }
  int calls = 0;

 private:
  torch::Tensor map_;
  int64_t gold_;
  int top_k_;
};

torch::Tensor random_pathway(int64_t layers, int64_t experts, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::softmax(torch::randn({layers, experts}) * 2, 1);
}

RemixOptions options(int core = 6) {
  RemixOptions o;
  o.core_experts = core;
  return o;
}

}  // namespace

TEST(CoreParameterisation, LogFormStartsAtOmega0AndStaysADistribution) {
  auto w0 = random_pathway(3, 10, 1);
  CoreParameterisation p(w0, 4, Parameterisation::Log);
  EXPECT_TRUE(torch::allclose(p.omega(p.initial_theta()), w0, 1e-6, 1e-7));
  auto moved = p.omega(p.initial_theta() + torch::randn({3, 4}));
  EXPECT_TRUE(torch::allclose(moved.sum(1), torch::ones({3}), 1e-5, 1e-6));
  // Non-core entries are untouched.
  auto non_core = torch::ones({3, 10}, torch::kBool).scatter(1, p.core(), false);
  EXPECT_TRUE(torch::equal(moved.masked_select(non_core), w0.masked_select(non_core)));
  // Core = the top-4 of omega0 in each layer.
  auto expected = std::get<1>(w0.topk(4, 1));
  EXPECT_TRUE(torch::equal(std::get<0>(p.core().sort(1)), std::get<0>(expected.sort(1))));
}

TEST(CoreParameterisation, DirectFormIsTheCoreWeightsThemselves) {
  auto w0 = random_pathway(3, 10, 1);
  CoreParameterisation p(w0, 4);  // direct is the default
  EXPECT_TRUE(torch::equal(p.initial_theta(), w0.gather(1, p.core())));
  EXPECT_TRUE(torch::equal(p.omega(p.initial_theta()), w0));
  // A move of theta is the same move of omega at the core entries, nothing else changes.
  auto delta = torch::randn({3, 4}) * 0.01;
  auto moved = p.omega(p.initial_theta() + delta);
  EXPECT_TRUE(torch::allclose(moved - w0, torch::zeros({3, 10}).scatter(1, p.core(), delta), 1e-6, 1e-7));
  // project() clamps at zero and leaves non-negative entries alone.
  auto theta = torch::tensor({{-0.5f, 0.2f, 0.0f, 0.3f}});
  CoreParameterisation(random_pathway(1, 6, 2), 4).project(theta);
  EXPECT_TRUE(torch::equal(theta, torch::tensor({{0.0f, 0.2f, 0.0f, 0.3f}})));
}

TEST(Ngd, DirectClampEngagesAndKeepsWeightsNonNegative) {
  // SGD at a large rate on a map that pushes the gold-irrelevant weights down: without the clamp
  // some core weights would end negative.
  auto w0 = random_pathway(2, 8, 60);
  LinearScorer s(2, 8, 4, 1, 2, 61);
  auto o = options(6);
  o.opt.optimizer = OptimizerKind::Sgd;
  o.opt.schedule = Schedule::Constant;
  o.opt.lr = 5.0;
  WeightedLoss obj({{&s, 1.0}});
  auto r = ngd(w0, obj, o);
  EXPECT_GE(r.omega.min().item<double>(), 0.0);
  EXPECT_GT((r.omega == 0).sum().item<int64_t>(), 0) << "the clamp never engaged: the test proves nothing";
}

// A hand-built neighbourhood whose best pathway is known: the gold class's logit grows with the
// weight of expert 5 in the one critical layer, every other weight is irrelevant. NGD must move
// weight onto expert 5 and bring it into the answer's top-2.
TEST(Ngd, MovesTowardTheKnownBestPathway) {
  class OneExpertScorer : public Scorer {
   public:
    torch::Tensor logits(const torch::Tensor& omega, const std::optional<torch::Tensor>& soft) override {
      torch::Tensor routed;
      if (soft) {
        routed = torch::zeros_like(omega).scatter(1, *soft, omega.gather(1, *soft));
      } else {
        auto idx = std::get<1>(omega.topk(2, 1));
        routed = torch::zeros_like(omega).scatter(1, idx, omega.gather(1, idx));
      }
      return torch::stack({routed[0][5] * 8.0, torch::zeros({}), torch::zeros({})});
    }
    int64_t gold_class() const override { return 0; }
  };
  auto w0 = torch::tensor({{0.30f, 0.25f, 0.20f, 0.10f, 0.05f, 0.06f, 0.02f, 0.02f}});
  OneExpertScorer a, b;
  WeightedLoss nb({{&a, 0.5}, {&b, 0.5}});
  auto o = options(6);  // expert 5 is core (6th largest) but outside the base top-2
  o.opt.lr = 0.1;
  auto r = ngd(w0, nb, o);
  EXPECT_GT(r.omega[0][5].item<double>(), w0[0][5].item<double>() + 0.05);
  auto top2 = std::get<1>(r.omega.topk(2, 1));
  EXPECT_TRUE((top2 == 5).any().item<bool>()) << r.omega;
  // With hard top-k no gradient reaches expert 5 (it is not selected): nothing moves it.
  o.opt.topk = TopKMode::Hard;
  auto h = ngd(w0, nb, o);
  EXPECT_NEAR(h.omega[0][5].item<double>(), w0[0][5].item<double>(), 1e-7);
}

TEST(Ngd, ZeroStepsReproduceBase) {
  auto w0 = random_pathway(2, 8, 2);
  LinearScorer s(2, 8, 4, 1, 2, 3);
  auto o = options();
  o.opt.steps = 0;
  WeightedLoss obj({{&s, 1.0}});
  auto r = ngd(w0, obj, o);
  EXPECT_TRUE(torch::equal(r.omega, w0));
  EXPECT_EQ(s.calls, 0);
}

TEST(Ngd, LowersTheNeighbourhoodObjective) {
  auto w0 = random_pathway(2, 8, 4);
  LinearScorer a(2, 8, 4, 0, 2, 5), b(2, 8, 4, 0, 2, 6);
  auto o = options();
  o.opt.steps = 30;
  o.opt.lr = 0.1;
  for (auto param : {Parameterisation::Direct, Parameterisation::Log})
    for (auto mode : {TopKMode::Hard, TopKMode::Soft}) {
      o.opt.topk = mode;
      o.opt.param = param;
      WeightedLoss nb({{&a, 0.7}, {&b, 0.3}});
      auto r = ngd(w0, nb, o);
      ASSERT_EQ(r.losses.size(), 30u);
      EXPECT_EQ(r.evaluations, 60);
      EXPECT_LT(r.losses.back(), r.losses.front());
      if (mode == TopKMode::Hard) {
        EXPECT_LT(objective_value(nb, r.omega), objective_value(nb, w0));
      }
      if (param == Parameterisation::Log) {
        EXPECT_TRUE(torch::allclose(r.omega.sum(1), torch::ones({2}), 1e-5, 1e-6));
      } else {
        EXPECT_GE(r.omega.min().item<double>(), 0.0);
      }
    }
}

TEST(Ngd, ObjectiveWeightsAreNormalised) {
  auto w0 = random_pathway(2, 8, 7);
  LinearScorer a(2, 8, 4, 2, 2, 8), b(2, 8, 4, 1, 2, 9);
  WeightedLoss o1({{&a, 1.0}, {&b, 3.0}}), o2({{&a, 0.25}, {&b, 0.75}});
  auto r1 = ngd(w0, o1, options());
  auto r2 = ngd(w0, o2, options());
  EXPECT_TRUE(torch::allclose(r1.omega, r2.omega, 1e-5, 1e-7));
  EXPECT_NEAR(r1.losses[0], r2.losses[0], 1e-9);
}

TEST(Oracle, NeverEndsWorseThanItStarted) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto w0 = random_pathway(3, 10, 100 + seed);
    LinearScorer s(3, 10, 5, seed % 5, 3, 200 + seed);
    auto o = options(5);
    o.opt.lr = 0.5;  // large steps overshoot: the guard matters
    WeightedLoss own({{&s, 1.0}});
    auto r = oracle(w0, own, o);
    torch::NoGradGuard g;
    EXPECT_LE(item_loss(s, r.omega, std::nullopt).item<double>(),
              item_loss(s, w0, std::nullopt).item<double>() + 1e-12);
  }
}

TEST(KernelRegression, AlphaOneReproducesBaseAndAlphaZeroIsTheWeightedMean) {
  auto w0 = random_pathway(2, 6, 10);
  auto p1 = random_pathway(2, 6, 11), p2 = random_pathway(2, 6, 12);
  LinearScorer a(2, 6, 3, 0, 2, 13), b(2, 6, 3, 1, 2, 14);
  WeightedLoss nb({{&a, 2.0}, {&b, 6.0}});
  auto o = options();
  o.fixed_alpha = 1.0;
  EXPECT_TRUE(torch::allclose(kernel_regression(w0, torch::stack({p1, p2}), {2.0, 6.0}, nb, o).omega, w0));
  o.fixed_alpha = 0.0;
  EXPECT_TRUE(torch::allclose(kernel_regression(w0, torch::stack({p1, p2}), {2.0, 6.0}, nb, o).omega,
                              0.25 * p1 + 0.75 * p2, 1e-6, 1e-7));
}

TEST(KernelRegression, GridPicksTheAlphaWithTheLowestObjective) {
  auto w0 = random_pathway(2, 6, 20);
  auto p1 = random_pathway(2, 6, 21);
  LinearScorer a(2, 6, 3, 2, 2, 22);
  WeightedLoss nb({{&a, 1.0}});
  auto r = kernel_regression(w0, p1.unsqueeze(0), {1.0}, nb, options());
  ASSERT_TRUE(r.alpha.has_value());
  ASSERT_EQ(r.losses.size(), 11u);
  for (int i = 0; i <= 10; ++i) {
    const double l = objective_value(nb, i / 10.0 * w0 + (1 - i / 10.0) * p1);
    EXPECT_NEAR(r.losses[i], l, 1e-9);
    EXPECT_LE(r.losses[static_cast<int>(std::lround(*r.alpha * 10))], l);
  }
}

TEST(ModeFinding, ConvergesGeometricallyToASingleMode) {
  // All references at one pathway R: each step halves the distance, so after T steps
  // omega = R + 0.5^T (omega0 - R) exactly.
  auto w0 = random_pathway(2, 5, 30);
  auto R = random_pathway(2, 5, 31);
  auto refs = torch::stack({R, R, R, R});
  auto o = options();
  o.mode_iterations = 4;
  auto r = mode_finding(w0, refs, o);
  EXPECT_TRUE(torch::allclose(r.omega, R + std::pow(0.5, 4) * (w0 - R), 1e-6, 1e-7));
}

TEST(ModeFinding, UsesOnlyTheKNearestReferences) {
  auto w0 = random_pathway(1, 4, 40);
  auto near = w0 + 0.01 * (random_pathway(1, 4, 41) - w0);
  auto far = random_pathway(1, 4, 42);
  auto o = options();
  o.neighbours.k = 1;
  o.mode_iterations = 1;
  auto r = mode_finding(w0, torch::stack({far, near}), o);
  EXPECT_TRUE(torch::allclose(r.omega, 0.5 * w0 + 0.5 * near, 1e-6, 1e-7));
}

TEST(Ngd, WorksWhenTheCallerDisabledGradients) {
  // The evaluation harness runs methods under NoGradGuard.
  torch::NoGradGuard no_grad;
  auto w0 = random_pathway(2, 8, 50);
  LinearScorer s(2, 8, 4, 1, 2, 51);
  WeightedLoss obj({{&s, 1.0}});
  auto r = ngd(w0, obj, options());
  EXPECT_EQ(r.losses.size(), 10u);
  EXPECT_FALSE(torch::equal(r.omega, w0));
  auto o = oracle(w0, obj, options());
  EXPECT_LE(objective_value(obj, o.omega), objective_value(obj, w0) + 1e-12);
}
