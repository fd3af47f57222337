// Properties of the engine that hold for any weights: checked on every tiny checkpoint (fp32).
#include <gtest/gtest.h>

#include "model/engine.h"
#include "test_util.h"

namespace c3po::model::test {
namespace {

class Properties : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model = MoeModel::load(model_dir(GetParam()), Dtype::F32);
    ex = std::make_unique<Expected>(GetParam());
  }
  // Hard override of the given MoE layers with the stored Dirichlet distributions of a case.
  RouteOverride stored_override(int c) const {
    auto layers = Expected::to_vector(ex->get(c, "override_layers"));
    auto omega = ex->get(c, "override_omega");
    RouteOverride r;
    for (std::size_t j = 0; j < layers.size(); ++j) r.layers.push_back({static_cast<int>(layers[j]), omega[j].clone(), {}});
    return r;
  }
  std::unique_ptr<MoeModel> model;
  std::unique_ptr<Expected> ex;
};

TEST_P(Properties, OverrideWithOwnDistributionReproducesBaseLogits) {
  for (int c = 0; c < ex->num_cases(); ++c) {
    ForwardOptions cap;
    cap.capture = true;
    auto base = model->forward({ex->ids(c)}, cap);
    RouteOverride own;
    for (int m = 0; m < model->num_moe_layers(); ++m) own.layers.push_back({m, base.pathway[0][m].clone(), {}});
    ForwardOptions o;
    o.overrides = {own};
    o.capture = true;
    auto r = model->forward({ex->ids(c)}, o);
    EXPECT_LT(max_abs_diff(r.logits, base.logits), 1e-6) << "case " << c;
    EXPECT_TRUE(torch::equal(r.topk_idx, base.topk_idx));
    // A different distribution must change the answer (the override is not ignored).
    auto other = stored_override(c);
    ForwardOptions o2;
    o2.overrides = {other};
    EXPECT_GT(max_abs_diff(model->forward({ex->ids(c)}, o2).logits, base.logits), 1e-3);
  }
}

TEST_P(Properties, SoftOverrideOverTopkSetEqualsHardOverride) {
  // Mixing exactly the top-k experts of omega with omega's weights is the hard override.
  for (int c = 0; c < ex->num_cases(); ++c) {
    auto hard = stored_override(c);
    auto soft = hard;
    for (auto& l : soft.layers) l.soft_set = std::get<1>(l.omega.topk(model->top_k()));
    ForwardOptions oh, os;
    oh.overrides = {hard};
    os.overrides = {soft};
    EXPECT_LT(max_abs_diff(model->forward({ex->ids(c)}, oh).logits, model->forward({ex->ids(c)}, os).logits), 1e-5);
  }
}

TEST_P(Properties, TailEqualsFullForwardUnderSameOverride) {
  const int L = model->num_moe_layers();
  const int from = std::max(0, L - 2);
  std::vector<int64_t> letters = Expected::to_vector(ex->get(0, "letters"));
  for (int c = 0; c < ex->num_cases(); ++c) {
    ForwardOptions keep;
    keep.keep_prefix_from = from;
    auto base = model->forward({ex->ids(c)}, keep);
    ASSERT_EQ(base.prefixes.size(), 1u);
    const PrefixState& state = base.prefixes[0];
    EXPECT_GT(state.bytes(), 0u);
    EXPECT_EQ(state.position, static_cast<int64_t>(ex->ids(c).size()) - 1);
    // No override: the tail reproduces the base logits.
    EXPECT_LT(max_abs_diff(model->tail(state, {}, {}), base.logits[0]), 1e-5);
    auto route = stored_override(c);
    ForwardOptions full;
    full.overrides = {route};
    full.vocab_rows = letters;
    auto want = model->forward({ex->ids(c)}, full).logits[0];
    EXPECT_LT(max_abs_diff(model->tail(state, route, letters), want), 1e-5) << "case " << c;
    // Against the independent reference too (full vocabulary).
    EXPECT_LT(max_abs_diff(model->tail(state, route, {}), ex->get(c, "logits_override")), 1e-4);
  }
}

TEST_P(Properties, BatchedTailEqualsSingleTails) {
  const int from = model->num_moe_layers() - 1;
  std::vector<std::vector<int64_t>> prompts;
  for (int c = 0; c < ex->num_cases(); ++c) prompts.push_back(ex->ids(c));
  ForwardOptions keep;
  keep.keep_prefix_from = from;
  auto base = model->forward(prompts, keep);
  auto route = stored_override(0);
  route.layers.erase(std::remove_if(route.layers.begin(), route.layers.end(),
                                    [&](const LayerOverride& l) { return l.moe_layer < from; }),
                     route.layers.end());
  ASSERT_FALSE(route.empty());
  std::vector<const PrefixState*> states;
  for (const auto& p : base.prefixes) states.push_back(&p);
  auto batched = model->tail(states, route, {});
  ASSERT_EQ(batched.size(0), static_cast<int64_t>(states.size()));
  for (std::size_t i = 0; i < states.size(); ++i)
    EXPECT_LT(max_abs_diff(batched[i], model->tail(*states[i], route, {})), 1e-5) << i;
}

TEST_P(Properties, TailRejectsOverrideBeforeItsLayer) {
  ForwardOptions keep;
  keep.keep_prefix_from = model->num_moe_layers() - 1;
  auto base = model->forward({ex->ids(0)}, keep);
  RouteOverride early;
  early.layers.push_back({0, torch::full({model->num_experts()}, 1.0 / model->num_experts()), {}});
  ASSERT_GT(model->num_moe_layers(), 1);
  EXPECT_THROW(model->tail(base.prefixes[0], early, {}), Error);
}

// d loss / d omega from autograd against central finite differences (fp32 model; the step keeps
// every perturbed omega's top-k set unchanged, the stored omegas have a top-k gap > 1e-3).
TEST_P(Properties, GradientMatchesFiniteDifferences) {
  const int c = 2;
  auto letters = Expected::to_vector(ex->get(c, "letters"));
  const int64_t gold = ex->get(c, "gold").item<int64_t>();
  auto loss_of = [&](const RouteOverride& r) {
    ForwardOptions o;
    o.overrides = {r};
    o.vocab_rows = letters;
    return -torch::log_softmax(model->forward({ex->ids(c)}, o).logits[0], 0)[gold];
  };
  auto route = stored_override(c);
  for (auto& l : route.layers) l.omega.requires_grad_(true);
  loss_of(route).backward();
  const double h = 2e-4;
  int checked = 0;
  for (std::size_t j = 0; j < route.layers.size(); ++j) {
    auto grad = route.layers[j].omega.grad();
    auto selected = std::get<1>(route.layers[j].omega.detach().topk(model->top_k()));
    for (int64_t i = 0; i < selected.size(0); ++i) {
      const int64_t e = selected[i].item<int64_t>();
      auto plus = stored_override(c), minus = stored_override(c);
      plus.layers[j].omega[e] += h;
      minus.layers[j].omega[e] -= h;
      torch::NoGradGuard ng;
      const double fd = (loss_of(plus).item<double>() - loss_of(minus).item<double>()) / (2 * h);
      const double ad = grad[e].item<double>();
      EXPECT_NEAR(ad, fd, 5e-3 + 2e-2 * std::abs(ad)) << "layer " << j << " expert " << e;
      ++checked;
    }
    // Unselected experts get exactly zero gradient under the hard override.
    auto mask = torch::ones_like(grad, torch::kBool);
    mask.index_fill_(0, selected, false);
    EXPECT_EQ(grad.masked_select(mask).abs().max().item<double>(), 0.0);
  }
  EXPECT_GT(checked, 0);
}

TEST_P(Properties, TailGradientEqualsFullForwardGradient) {
  const int c = 1;
  auto letters = Expected::to_vector(ex->get(c, "letters"));
  auto route = stored_override(c);
  for (auto& l : route.layers) l.omega.requires_grad_(true);
  ForwardOptions o;
  o.overrides = {route};
  o.vocab_rows = letters;
  o.keep_prefix_from = route.min_moe_layer();
  auto r = model->forward({ex->ids(c)}, o);
  r.logits[0].logsumexp(0).backward();
  std::vector<torch::Tensor> full_grads;
  for (auto& l : route.layers) full_grads.push_back(l.omega.grad().clone()), l.omega.mutable_grad().zero_();
  model->tail(r.prefixes[0], route, letters).logsumexp(0).backward();
  for (std::size_t j = 0; j < route.layers.size(); ++j)
    EXPECT_LT(max_abs_diff(route.layers[j].omega.grad(), full_grads[j]), 1e-5);
}

TEST_P(Properties, KvCachedDecodingEqualsRecomputation) {
  for (int c = 0; c < ex->num_cases(); ++c) {
    auto ids = ex->ids(c);
    ForwardOptions all;
    all.all_positions = true;
    auto full = model->forward({ids}, all).logits[0];
    KvCache cache;
    // Prefill half the prompt at once, then one token at a time.
    const std::size_t half = ids.size() / 2;
    auto logits = model->decode(cache, std::vector<int64_t>(ids.begin(), ids.begin() + half + 1));
    EXPECT_LT(max_abs_diff(logits, full[half]), 1e-4);
    for (std::size_t t = half + 1; t < ids.size(); ++t) {
      logits = model->decode(cache, {ids[t]});
      EXPECT_LT(max_abs_diff(logits, full[t]), 1e-4) << "position " << t;
    }
    EXPECT_EQ(cache.length, static_cast<int64_t>(ids.size()));
  }
}

TEST_P(Properties, GreedyGenerationMatchesReference) {
  for (int c = 0; c < ex->num_cases(); ++c) {
    auto want = Expected::to_vector(ex->get(c, "greedy_ids"));
    if (want.empty()) continue;  // the reference found a near-tie at the first step
    std::vector<int64_t> streamed;
    auto got = model->generate(ex->ids(c), static_cast<int>(want.size()), [&](int64_t t) {
      streamed.push_back(t);
      return true;
    });
    EXPECT_EQ(got, want) << "case " << c;
    EXPECT_EQ(streamed, got);
  }
}

TEST_P(Properties, BatchOfDifferentLengthsEqualsOneByOne) {
  std::vector<std::vector<int64_t>> prompts;
  for (int c = ex->num_cases() - 1; c >= 0; --c) prompts.push_back(ex->ids(c));
  ForwardOptions o;
  o.all_positions = true;
  o.capture = true;
  o.embed_layer = 2;
  std::vector<RouteOverride> routes;
  for (int c = ex->num_cases() - 1; c >= 0; --c) routes.push_back(c == 1 ? RouteOverride{} : stored_override(c));
  o.overrides = routes;
  auto batch = model->forward(prompts, o);
  ASSERT_EQ(batch.logits.size(0), static_cast<int64_t>(prompts.size()));
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    ForwardOptions one = o;
    one.overrides = {routes[b]};
    auto r = model->forward({prompts[b]}, one);
    const int64_t T = static_cast<int64_t>(prompts[b].size());
    EXPECT_EQ(batch.lengths[b], T);
    EXPECT_LT(max_abs_diff(batch.logits[b].narrow(0, 0, T), r.logits[0]), 1e-5) << b;
    EXPECT_EQ(batch.logits[b].narrow(0, T, batch.logits.size(1) - T).abs().sum().item<double>(), 0.0);
    EXPECT_LT(max_abs_diff(batch.pathway[b], r.pathway[0]), 1e-6);
    EXPECT_TRUE(torch::equal(batch.topk_idx[b], r.topk_idx[0]));
    EXPECT_LT(max_abs_diff(batch.embedding[b], r.embedding[0]), 1e-5);
  }
}

TEST_P(Properties, BadInputsAreErrors) {
  EXPECT_THROW(model->forward({}), Error);
  EXPECT_THROW(model->forward(std::vector<std::vector<int64_t>>{std::vector<int64_t>{}}), Error);
  EXPECT_THROW(model->forward({{1, model->config().vocab_size}}), Error);
  EXPECT_THROW(model->forward({{1, -1}}), Error);
  ForwardOptions rows;
  rows.vocab_rows = {0, model->config().vocab_size};
  EXPECT_THROW(model->forward({{1, 2}}, rows), Error);
  ForwardOptions bad;
  bad.overrides = {RouteOverride{{{0, torch::ones({model->num_experts() + 1}), {}}}}};
  EXPECT_THROW(model->forward({{1, 2}}, bad), Error);
  bad.overrides = {RouteOverride{{{model->num_moe_layers(), torch::ones({model->num_experts()}), {}}}}};
  EXPECT_THROW(model->forward({{1, 2}}, bad), Error);
  bad.overrides = {RouteOverride{{{0, torch::ones({model->num_experts()}), torch::tensor({0, 0}, torch::kInt64)}}}};
  EXPECT_THROW(model->forward({{1, 2}}, bad), Error);
  bad.overrides = {RouteOverride{}, RouteOverride{}};  // two overrides for one prompt
  EXPECT_THROW(model->forward({{1, 2}}, bad), Error);
  try {
    model->forward({{1, 400000}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "input_ids");
    EXPECT_NE(std::string(e.what()).find("400000"), std::string::npos);
  }
}

TEST_P(Properties, FingerprintIsStableAndDependsOnWeights) {
  auto again = MoeModel::load(model_dir(GetParam()), Dtype::F32);
  EXPECT_EQ(model->fingerprint(), again->fingerprint());
  EXPECT_EQ(model->fingerprint().size(), 16u);
  auto bf16 = MoeModel::load(model_dir(GetParam()), Dtype::BF16);
  EXPECT_NE(model->fingerprint(), bf16->fingerprint());
  for (const auto& other : architectures())
    if (other != GetParam()) {
      EXPECT_NE(model->fingerprint(), MoeModel::load(model_dir(other), Dtype::F32)->fingerprint());
    }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, Properties, ::testing::ValuesIn(architectures()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace c3po::model::test
