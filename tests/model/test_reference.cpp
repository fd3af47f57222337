// The engine against the independent plain-PyTorch reference (tests/reference/moe_reference.py)
// on the tiny checkpoints of all five architectures.
#include <gtest/gtest.h>

#include "model/engine.h"
#include "test_util.h"

namespace c3po::model::test {
namespace {

// Records the router distribution of every position of every MoE layer (prompt 0).
struct RecordAll : RoutingHook {
  std::map<int, torch::Tensor> probs;
  void on_router(const RouterEvent& e) override { probs[e.moe_layer] = e.probs.detach().clone(); }
};

class Reference : public ::testing::TestWithParam<std::string> {
 protected:
  static std::unique_ptr<MoeModel> f32(const std::string& arch) { return MoeModel::load(model_dir(arch), Dtype::F32); }
};

TEST_P(Reference, Fp32LogitsAllAndLastPosition) {
  auto model = f32(GetParam());
  Expected ex(GetParam());
  ASSERT_GE(ex.num_cases(), 3);
  for (int c = 0; c < ex.num_cases(); ++c) {
    auto want = ex.get(c, "logits_f32");
    ForwardOptions all;
    all.all_positions = true;
    auto r = model->forward({ex.ids(c)}, all);
    ASSERT_EQ(r.logits.sizes(), (std::vector<int64_t>{1, want.size(0), want.size(1)}));
    EXPECT_LT(max_abs_diff(r.logits[0], want), 1e-4) << "case " << c;
    auto last = model->forward({ex.ids(c)});
    EXPECT_LT(max_abs_diff(last.logits[0], want[-1]), 1e-4) << "case " << c;
  }
}

TEST_P(Reference, RouterProbsTopkAndHiddenStates) {
  auto model = f32(GetParam());
  Expected ex(GetParam());
  for (int c = 0; c < ex.num_cases(); ++c) {
    RecordAll rec;
    ForwardOptions o;
    o.capture = true;
    o.hidden_states = true;
    o.hook = &rec;
    auto r = model->forward({ex.ids(c)}, o);
    auto probs = ex.get(c, "router_probs");  // [Lm, T, E]
    ASSERT_EQ(static_cast<int64_t>(rec.probs.size()), probs.size(0));
    for (int m = 0; m < probs.size(0); ++m) EXPECT_LT(max_abs_diff(rec.probs[m], probs[m]), 1e-5) << c << "/" << m;
    EXPECT_LT(max_abs_diff(r.pathway[0], probs.select(1, probs.size(1) - 1)), 1e-5);
    EXPECT_TRUE(torch::equal(r.topk_idx[0], ex.get(c, "topk_idx"))) << "case " << c;
    EXPECT_LT(max_abs_diff(r.topk_weight[0], ex.get(c, "topk_weight")), 1e-5);
    auto hs = ex.get(c, "hidden_states");
    ASSERT_EQ(r.hidden_states[0].sizes(), hs.sizes());
    EXPECT_LT(max_abs_diff(r.hidden_states[0], hs), 1e-4);
    // The embedder is the prompt mean of one of those hidden states.
    for (int layer : {1, static_cast<int>(hs.size(0)) - 1}) {
      ForwardOptions e;
      e.embed_layer = layer;
      auto er = model->forward({ex.ids(c)}, e);
      EXPECT_LT(max_abs_diff(er.embedding[0], hs[layer].mean(0)), 1e-5);
    }
  }
}

RouteOverride hard_override(const Expected& ex, int c, bool soft) {
  auto layers = Expected::to_vector(ex.get(c, "override_layers"));
  auto omega = ex.get(c, "override_omega");
  RouteOverride r;
  for (std::size_t j = 0; j < layers.size(); ++j) {
    LayerOverride lo;
    lo.moe_layer = static_cast<int>(layers[j]);
    lo.omega = omega[j].clone();
    if (soft) lo.soft_set = ex.get(c, "soft_set")[j].clone();
    r.layers.push_back(lo);
  }
  return r;
}

TEST_P(Reference, HardAndSoftOverrideLogits) {
  auto model = f32(GetParam());
  Expected ex(GetParam());
  for (int c = 0; c < ex.num_cases(); ++c) {
    for (bool soft : {false, true}) {
      ForwardOptions o;
      o.overrides = {hard_override(ex, c, soft)};
      auto r = model->forward({ex.ids(c)}, o);
      auto want = ex.get(c, soft ? "logits_soft" : "logits_override");
      EXPECT_LT(max_abs_diff(r.logits[0], want), 1e-4) << "case " << c << (soft ? " soft" : " hard");
    }
  }
}

TEST_P(Reference, GradientOfLetterLossWrtOmega) {
  auto model = f32(GetParam());
  Expected ex(GetParam());
  for (int c = 0; c < ex.num_cases(); ++c) {
    auto route = hard_override(ex, c, false);
    for (auto& l : route.layers) l.omega.requires_grad_(true);
    ForwardOptions o;
    o.overrides = {route};
    o.vocab_rows = Expected::to_vector(ex.get(c, "letters"));
    auto r = model->forward({ex.ids(c)}, o);
    const int64_t gold = ex.get(c, "gold").item<int64_t>();
    auto loss = -torch::log_softmax(r.logits[0], 0)[gold];
    EXPECT_NEAR(loss.item<double>(), ex.get(c, "loss_override").item<double>(), 1e-4);
    loss.backward();
    auto want = ex.get(c, "grad_omega");
    for (std::size_t j = 0; j < route.layers.size(); ++j) {
      auto got = route.layers[j].omega.grad();
      ASSERT_TRUE(got.defined());
      // rtol 1e-3 against the fp64 reference, with an absolute floor for entries near zero.
      auto tol = want[j].abs() * 1e-3 + 1e-5;
      EXPECT_TRUE(((got - want[j]).abs() <= tol).all().item<bool>())
          << "case " << c << " layer " << j << "\n got " << got << "\n want " << want[j];
    }
  }
}

// bf16. The engine's bf16 logits equal the reference's bitwise only where the bf16 matmul kernels
// are those of the machine that wrote expected.safetensors (an AMD EPYC without AMX): on an Intel
// CPU with AMX, oneDNN accumulates in another order and case 1 of OLMoE differs by 0.047. So the
// test asks for what holds on every CPU. Tolerance: the
// engine's bf16 logits may be at most 1.5x as far from the exact (fp32) logits as the reference's
// own bf16 logits are, plus 0.02; measured: the engine's gap is <= the reference's (ratio 0.66-1.0) on all cases.
constexpr double kBf16GapFactor = 1.5;
constexpr double kBf16Slack = 0.02;

TEST_P(Reference, Bf16LogitsWithinRoundingOfReference) {
  auto model = MoeModel::load(model_dir(GetParam()), Dtype::BF16);
  Expected ex(GetParam());
  for (int c = 0; c < ex.num_cases(); ++c) {
    auto want = ex.get(c, "logits_bf16");
    auto exact = ex.get(c, "logits_f32");
    ForwardOptions all;
    all.all_positions = true;
    auto got = model->forward({ex.ids(c)}, all).logits[0];
    const double ref_gap = max_abs_diff(want, exact);
    const double engine_gap = max_abs_diff(got, exact);
    const double vs_ref = max_abs_diff(got, want);
    std::printf("%s case %d: |engine bf16 - f32| = %.4g, |ref bf16 - f32| = %.4g, |engine - ref bf16| = %.4g\n",
                GetParam().c_str(), c, engine_gap, ref_gap, vs_ref);
    EXPECT_LE(engine_gap, kBf16GapFactor * ref_gap + kBf16Slack) << "case " << c;
    // The top token agrees wherever the exact top-2 margin exceeds the bf16 noise.
    auto top2 = std::get<0>(exact.topk(2, -1));
    auto clear = (top2.select(1, 0) - top2.select(1, 1)) > 2 * (engine_gap + ref_gap);
    auto agree = got.argmax(-1) == exact.argmax(-1);
    EXPECT_TRUE(agree.masked_select(clear).all().item<bool>()) << "case " << c;
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, Reference, ::testing::ValuesIn(architectures()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace c3po::model::test
