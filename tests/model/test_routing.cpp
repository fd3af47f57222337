// The routing point and the engine's one validation of its inputs: the hooks' stated order, the
// architecture table, and the context length on every way into the layer loop.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "io/error.h"
#include "model/arch/arch.h"
#include "model/engine.h"
#include "model/shapes.h"
#include "test_util.h"

namespace c3po::model::test {
namespace {

// Overrides every prompt's last position of MoE layer 0 with a fixed distribution, and records
// the experts the block chose there.
struct FixedOverride : RoutingHook {
  LayerOverride layer;
  std::vector<std::vector<int64_t>> chosen;  // per event, the last position's experts
  const LayerOverride* override_for(int, int moe_layer) override { return moe_layer == 0 ? &layer : nullptr; }
  void on_router(const RouterEvent& e) override {
    if (e.moe_layer != 0) return;
    const auto last = e.topk_idx[e.topk_idx.size(0) - 1].contiguous();
    chosen.emplace_back(last.data_ptr<int64_t>(), last.data_ptr<int64_t>() + last.numel());
  }
};

// A distribution on the given experts with strictly decreasing weights, so top-k returns them in order.
torch::Tensor ranked(int64_t experts, const std::vector<int64_t>& order) {
  auto w = torch::zeros({experts}, torch::kFloat32);
  for (std::size_t i = 0; i < order.size(); ++i) w[order[i]] = static_cast<float>(order.size() - i);
  return w / w.sum();
}

class Routing : public ::testing::TestWithParam<std::string> {};

// ForwardOptions::overrides come first in the chain; the caller's hook is asked only when they
// have none, and it sees the decision either way.
TEST_P(Routing, PerPromptOverridesComeBeforeTheCallersHook) {
  auto m = MoeModel::load(model_dir(GetParam()), Dtype::F32);
  const int64_t E = m->num_experts();
  const int64_t k = m->top_k();
  ASSERT_GE(E, 2 * k);
  std::vector<int64_t> low, high;  // experts 0.. and E-1 down, k each
  for (int64_t i = 0; i < k; ++i) low.push_back(i), high.push_back(E - 1 - i);
  const std::vector<std::vector<int64_t>> prompts{{3, 4, 5, 6}, {7, 8, 9}};
  FixedOverride hook;
  hook.layer.moe_layer = 0;
  hook.layer.omega = ranked(E, low);
  RouteOverride first;
  first.layers.push_back(LayerOverride{0, ranked(E, high), {}, 1});

  ForwardOptions opt;
  opt.hook = &hook;
  opt.capture = true;
  opt.overrides = {first, RouteOverride{}};  // prompt 0 by overrides, prompt 1 by the hook
  const auto r = m->forward(prompts, opt);
  ASSERT_EQ(hook.chosen.size(), 2u);
  EXPECT_EQ(hook.chosen[0], high);
  EXPECT_EQ(hook.chosen[1], low);
  EXPECT_EQ(r.topk_idx[0][0][0].item<int64_t>(), E - 1);
  EXPECT_EQ(r.topk_idx[1][0][0].item<int64_t>(), 0);

  // The hook alone gives prompt 1 the same logits as the same override passed per prompt.
  ForwardOptions by_options;
  RouteOverride second;
  second.layers.push_back(LayerOverride{0, ranked(E, low), {}, 1});
  by_options.overrides = {first, second};
  EXPECT_LT(max_abs_diff(m->forward(prompts, by_options).logits, r.logits), 1e-6);
}

// Every architecture the tests cover is one row of the table, and nothing else is accepted.
TEST_P(Routing, ArchitectureIsOneRowOfTheTable) {
  const Architecture* a = find_architecture(GetParam());
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->model_type, GetParam());
  EXPECT_NE(supported_architectures().find(GetParam()), std::string::npos);
  const auto config = load_config(model_dir(GetParam()));
  EXPECT_EQ(&architecture_of(config), a);
  EXPECT_EQ(find_architecture("llama"), nullptr);
}

// Positions past max_position_embeddings are refused on every way in: forward, scoring, tail and
// decode (the last also in test_errors.cpp), before anything runs.
TEST_P(Routing, EveryWayInChecksTheContextLength) {
  auto m = MoeModel::load(model_dir(GetParam()), Dtype::F32);
  const int64_t max = m->config().max_position_embeddings;
  ASSERT_GT(max, 4);
  const std::vector<int64_t> fits(static_cast<std::size_t>(max), 5), too_long(static_cast<std::size_t>(max + 1), 5);
  auto expect_refused = [](const std::function<void()>& f, const std::string& what) {
    try {
      f();
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("max_position_embeddings"), std::string::npos) << what << ": " << e.what();
    }
  };
  EXPECT_NO_THROW(m->forward({fits}));
  expect_refused([&] { m->forward({{1, 2}, too_long}); }, "forward");
  expect_refused([&] { m->score_continuations({ScoreRequest{too_long, {5}}}); }, "scoring alone");
  expect_refused([&] { m->score_continuations({ScoreRequest{fits, {5}}, ScoreRequest{too_long, {5}}}); },
                 "scoring with a shared prefix");

  ForwardOptions opt;
  opt.keep_prefix_from = m->num_moe_layers() - 1;
  auto state = m->forward({fits}, opt).prefixes.at(0);
  EXPECT_NO_THROW(m->tail(state, RouteOverride{}, {}));
  state.position += 1;  // as if one more position had been cached
  expect_refused([&] { m->tail(state, RouteOverride{}, {}); }, "tail");
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, Routing, ::testing::ValuesIn(architectures()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace c3po::model::test

namespace c3po::model::test {
namespace {

// The released shapes are what their architectures' readers make of the checkpoints' config
// fields; --layers keeps the first N.
TEST(ReleasedShapes, ParseThroughTheirArchitecturesAndShrink) {
  const auto olmoe = released_shape("olmoe-1b-7b");
  EXPECT_EQ(olmoe.num_experts, 64);
  EXPECT_EQ(olmoe.top_k, 8);
  EXPECT_EQ(olmoe.num_layers, 16);
  EXPECT_EQ(released_shape("deepseek", 3).layer_is_moe, (std::vector<bool>{false, true, true}));
  EXPECT_EQ(released_shape("qwen3-30b-a3b").head_dim, 128);
  EXPECT_TRUE(released_shape("mixtral").norm_topk_prob);
  EXPECT_EQ(released_shape("qwen2_moe").shared_expert_intermediate_size, 5632);
  EXPECT_THROW(released_shape("llama"), Error);
  EXPECT_THROW(released_shape("olmoe", 17), Error);
}

// A random model is a model like any other: finite logits, and the seed alone decides its weights.
TEST(RandomModel, SeededAndFinite) {
  const auto config = load_config(model_dir("qwen2_moe"));
  const auto a = MoeModel::random(config, Dtype::F32, 1), b = MoeModel::random(config, Dtype::F32, 1);
  const auto c = MoeModel::random(config, Dtype::F32, 2);
  EXPECT_EQ(a->fingerprint(), b->fingerprint());
  EXPECT_NE(a->fingerprint(), c->fingerprint());
  const auto logits = a->forward({{1, 2, 3, 4}}).logits;
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  EXPECT_TRUE(torch::equal(logits, b->forward({{1, 2, 3, 4}}).logits));
}

// Decoding far past the cache's first capacity (64 positions) still equals recomputation.
TEST(RandomModel, KvCacheGrowsInPlace) {
  const auto m = MoeModel::random(load_config(model_dir("olmoe")), Dtype::F32, 3);
  std::vector<int64_t> ids;
  for (int i = 0; i < 150; ++i) ids.push_back((i * 37) % 200);
  ForwardOptions all;
  all.all_positions = true;
  const auto full = m->forward({ids}, all).logits[0];
  KvCache cache;
  auto logits = m->decode(cache, std::vector<int64_t>(ids.begin(), ids.begin() + 10));
  for (std::size_t t = 10; t < ids.size(); ++t) {
    logits = m->decode(cache, {ids[t]});
    ASSERT_LT(max_abs_diff(logits, full[static_cast<int64_t>(t)]), 1e-4) << "position " << t;
  }
  EXPECT_GE(cache.keys[0].size(1), 150);
}

}  // namespace
}  // namespace c3po::model::test
