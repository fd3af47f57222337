// The re-mixing objectives on a real (tiny, random) OLMoE checkpoint, against independent truth:
// finite differences, the full forward pass, and the base logits.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/engine.h"
#include "remix/methods.h"
#include "io/error.h"
#include "remix/remixer.h"
#include "remix/tail_objective.h"

using namespace c3po;
using namespace c3po::remix;

namespace {

const std::string kModel = std::string(C3PO_SOURCE_DIR) + "/tests/model/data/olmoe";

struct Fixture {
  std::unique_ptr<model::MoeModel> model = model::MoeModel::load(kModel, model::Dtype::F32);
  std::vector<int> critical{2, 3};
  std::vector<int64_t> letters{5, 17, 42, 100};
  std::vector<std::vector<int64_t>> prompts{{12, 40, 7, 99, 250, 3, 61}, {300, 8, 15, 16, 23, 42, 4, 8, 77, 1, 2},
                                            {9, 9, 200, 31}};
  model::ForwardResult base;

  Fixture() {
    model::ForwardOptions fo;
    fo.capture = true;
    fo.keep_prefix_from = critical.front();
    fo.vocab_rows = letters;
    base = model->forward(prompts, fo);
  }
  torch::Tensor omega0(int i) const {
    return base.pathway[i].index_select(0, torch::tensor({2, 3}, torch::kLong)).to(torch::kFloat);
  }
  TailItem item(int i, int gold, double w = 1.0) const { return {&base.prefixes[i], letters, gold, w}; }
};

Fixture& fixture() {
  static Fixture f;  // loading once keeps the suite fast; tests only read it
  return f;
}

// A pathway with clear gaps between its entries, so small perturbations never change the top-k.
torch::Tensor separated_pathway(int64_t layers, int64_t experts, uint64_t seed) {
  torch::manual_seed(seed);
  auto ranks = torch::stack({torch::randperm(experts), torch::randperm(experts)}).to(torch::kFloat).slice(0, 0, layers);
  return torch::softmax(ranks * 0.4, 1);
}

}  // namespace

TEST(TailObjective, GradientMatchesCentralFiniteDifferences) {
  auto& f = fixture();
  TailObjective obj(*f.model, f.critical, {f.item(0, 2, 0.6), f.item(1, 1, 0.4)});
  auto omega = separated_pathway(2, f.model->num_experts(), 7).requires_grad_(true);
  auto loss = obj(omega, std::nullopt);
  loss.backward();
  const auto grad = omega.grad().clone();
  const double eps = 1e-3;
  int checked = 0;
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t e = 0; e < f.model->num_experts(); ++e) {
      auto plus = omega.detach().clone(), minus = omega.detach().clone();
      plus[l][e] += eps;
      minus[l][e] -= eps;
      const double fd = (objective_value(obj, plus) - objective_value(obj, minus)) / (2 * eps);
      EXPECT_NEAR(grad[l][e].item<double>(), fd, 2e-3 + 2e-2 * std::abs(fd)) << "layer " << l << " expert " << e;
      ++checked;
    }
  EXPECT_EQ(checked, 2 * f.model->num_experts());
  EXPECT_GT(grad.abs().max().item<double>(), 1e-4);  // the gradient is not trivially zero
}

TEST(TailObjective, EqualsTheFullForwardWithTheSameOverride) {
  auto& f = fixture();
  auto omega_tail = separated_pathway(2, f.model->num_experts(), 11).requires_grad_(true);
  auto omega_full = omega_tail.detach().clone().requires_grad_(true);
  TailObjective obj(*f.model, f.critical, {f.item(1, 3)});
  auto l_tail = obj(omega_tail, std::nullopt);
  l_tail.backward();

  model::ForwardOptions fo;
  fo.vocab_rows = f.letters;
  fo.overrides = {critical_override(f.critical, omega_full, std::nullopt)};
  auto logits = f.model->forward({f.prompts[1]}, fo).logits;  // [1, 4]
  auto l_full = torch::nn::functional::cross_entropy(logits, torch::tensor({3}, torch::kLong));
  l_full.backward();
  EXPECT_NEAR(l_tail.item<double>(), l_full.item<double>(), 1e-5);
  EXPECT_TRUE(torch::allclose(omega_tail.grad(), omega_full.grad(), 1e-4, 1e-6));
}

// --tokens last:3 and all: the objective re-runs the items' last J tokens (each its own length for
// all) under the same omega at each, equals the full forward, and its gradient matches finite
// differences.
TEST(TailObjective, RemixingTheLastJTokensEqualsTheFullForward) {
  auto& f = fixture();
  for (int64_t j : {int64_t{3}, model::kAllTokens}) {
    model::ForwardOptions keep;
    keep.keep_prefix_from = f.critical.front();
    keep.prefix_tokens = j;
    const auto base = f.model->forward(f.prompts, keep);
    EXPECT_EQ(base.prefixes[2].tokens, j == model::kAllTokens ? 4 : 3);
    const std::vector<TailItem> items{{&base.prefixes[0], f.letters, 2, 0.6}, {&base.prefixes[1], f.letters, 1, 0.4}};
    TailObjective obj(*f.model, f.critical, items, false, j);
    auto omega_tail = separated_pathway(2, f.model->num_experts(), 7).requires_grad_(true);
    auto l_tail = obj(omega_tail, std::nullopt);
    l_tail.backward();

    auto omega_full = omega_tail.detach().clone().requires_grad_(true);
    const auto route = critical_override(f.critical, omega_full, std::nullopt, j);
    model::ForwardOptions fo;
    fo.vocab_rows = f.letters;
    fo.overrides = {route, route};
    const auto logits = f.model->forward({f.prompts[0], f.prompts[1]}, fo).logits;  // [2, 4]
    const auto ce = torch::nn::functional::cross_entropy(
        logits, torch::tensor({2, 1}, torch::kLong),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    const auto l_full = 0.6 * ce[0] + 0.4 * ce[1];
    l_full.backward();
    EXPECT_NEAR(l_tail.item<double>(), l_full.item<double>(), 1e-5) << j;
    EXPECT_TRUE(torch::allclose(omega_tail.grad(), omega_full.grad(), 1e-4, 1e-6)) << j;

    // Re-mixing more tokens is a different objective than re-mixing the last one.
    model::ForwardOptions keep1;
    keep1.keep_prefix_from = f.critical.front();
    const auto base1 = f.model->forward(f.prompts, keep1);
    TailObjective obj1(*f.model, f.critical, {{&base1.prefixes[0], f.letters, 2, 0.6}, {&base1.prefixes[1], f.letters, 1, 0.4}});
    EXPECT_GT(std::abs(objective_value(obj1, omega_tail.detach()) - l_tail.item<double>()), 1e-5) << j;

    const auto grad = omega_tail.grad().clone();
    const double eps = 1e-3;
    for (int64_t l = 0; l < 2; ++l)
      for (int64_t e = 0; e < f.model->num_experts(); e += 3) {
        auto plus = omega_tail.detach().clone(), minus = omega_tail.detach().clone();
        plus[l][e] += eps;
        minus[l][e] -= eps;
        const double fd = (objective_value(obj, plus) - objective_value(obj, minus)) / (2 * eps);
        EXPECT_NEAR(grad[l][e].item<double>(), fd, 2e-3 + 2e-2 * std::abs(fd)) << j << " layer " << l << " expert " << e;
      }
    EXPECT_GT(grad.abs().max().item<double>(), 1e-4);

    // The answer of item 2 (4 tokens: all of them for j = all) under omega.
    const TailItem third{&base.prefixes[2], f.letters, 0, 1.0};
    model::ForwardOptions fa;
    fa.vocab_rows = f.letters;
    fa.overrides = {critical_override(f.critical, omega_tail.detach(), std::nullopt, j)};
    EXPECT_LT((answer_logits(*f.model, f.critical, third, omega_tail, j) - f.model->forward({f.prompts[2]}, fa).logits[0])
                  .abs().max().item<double>(), 1e-5) << j;
  }
}

TEST(RemixSession, TokensReachThePrefixStatesTheCostAndTheSettings) {
  auto& f = fixture();
  const auto tok = tokenizer::Tokenizer::load(kModel);
  data::McItem item;
  item.id = "x";
  item.task = "arc_challenge";
  item.gold = 1;
  item.choices = {"a", "b", "c", "d"};
  double flops_last = 0;
  for (const std::string spec : {"last", "last:3"}) {
    RemixOptions o;
    o.layers = CriticalLayers::parse("last:2");
    o.tokens = RemixTokens::parse(spec);
    o.opt.steps = 2;
    auto session = std::make_shared<RemixSession>(*f.model, tok, nullptr, o, CandidatePools::paper_default(),
                                                  EmbedderChoice::parse("hash"), std::size_t{1} << 20);
    model::ForwardOptions fo;
    session->prepare(fo);
    EXPECT_EQ(fo.prefix_tokens, spec == "last" ? 1 : 3);
    RemixMethod m(session, MethodKind::Oracle);
    EXPECT_EQ(m.settings()["tokens"], spec);
    fo.vocab_rows = f.letters;
    auto res = f.model->forward({f.prompts[1]}, fo);
    EXPECT_EQ(res.prefixes[0].tokens, spec == "last" ? 1 : 3);
    eval::ItemContext ctx;
    ctx.item = &item;
    ctx.ids = f.prompts[1];
    ctx.letter_ids = f.letters;
    ctx.letter_logits = res.logits[0];
    ctx.pathway = res.pathway[0];
    ctx.prefix = &res.prefixes[0];
    const auto out = m.run(ctx);
    EXPECT_EQ(out.letter_probs.size(), 4u);
    if (spec == "last") flops_last = out.flops;
    else EXPECT_GT(out.flops, 2 * flops_last);  // three tokens re-run instead of one
  }
}

TEST(EngineMethods, AlphaOneAndZeroStepsReproduceBase) {
  auto& f = fixture();
  for (int i = 0; i < 3; ++i) {
    const auto base_logits = f.base.logits[i];
    TailObjective nb(*f.model, f.critical, {f.item((i + 1) % 3, 1), f.item((i + 2) % 3, 0)});
    RemixOptions o;
    o.fixed_alpha = 1.0;
    auto paths = torch::stack({f.omega0((i + 1) % 3), f.omega0((i + 2) % 3)});
    auto kr = kernel_regression(f.omega0(i), paths, {0.5, 0.5}, nb, o);
    EXPECT_TRUE(torch::allclose(answer_logits(*f.model, f.critical, f.item(i, 0), kr.omega), base_logits, 1e-5, 1e-5));
    o.opt.steps = 0;
    auto g = ngd(f.omega0(i), nb, o);
    EXPECT_TRUE(torch::allclose(answer_logits(*f.model, f.critical, f.item(i, 0), g.omega), base_logits, 1e-5, 1e-5));
  }
}

TEST(EngineMethods, OracleNeverEndsWithAHigherOwnLoss) {
  auto& f = fixture();
  for (int i = 0; i < 3; ++i)
    for (int gold = 0; gold < 4; ++gold) {
      TailObjective own(*f.model, f.critical, {f.item(i, gold)});
      RemixOptions o;
      o.core_experts = 6;
      o.opt.lr = 0.3;
      auto r = oracle(f.omega0(i), own, o);
      EXPECT_LE(objective_value(own, r.omega), objective_value(own, f.omega0(i)) + 1e-7);
    }
}

TEST(EngineMethods, NgdLowersTheNeighbourhoodLoss) {
  auto& f = fixture();
  TailObjective nb(*f.model, f.critical, {f.item(1, 2, 0.7), f.item(2, 2, 0.3)});
  RemixOptions o;
  o.core_experts = 8;
  o.opt.lr = 0.2;
  o.opt.steps = 15;
  for (auto mode : {TopKMode::Hard, TopKMode::Soft}) {
    o.opt.topk = mode;
    auto r = ngd(f.omega0(0), nb, o);
    EXPECT_LT(r.losses.back(), r.losses.front()) << (mode == TopKMode::Hard ? "hard" : "soft");
  }
}

TEST(TextEmbedder, ChoicesAndTheirIdentities) {
  auto& f = fixture();
  EXPECT_EQ(TextEmbedder(EmbedderChoice::parse("model"), *f.model).identity(), "model:layer=2");  // 4 layers / 2
  EXPECT_EQ(TextEmbedder(EmbedderChoice::parse("model:layer=3"), *f.model).identity(), "model:layer=3");
  EXPECT_THROW(TextEmbedder(EmbedderChoice::parse("model:layer=9"), *f.model), c3po::Error);
  EXPECT_EQ(TextEmbedder(EmbedderChoice::parse("hash:dim=64"), *f.model).identity(), "hash:dim=64");
  EXPECT_THROW(EmbedderChoice::parse("word2vec"), c3po::Error);
  EXPECT_THROW(EmbedderChoice::parse("bert:"), c3po::Error);
  // A sentence-transformers folder: its own encoder, rows normalised for the cosine search.
  const std::string bert = std::string(C3PO_SOURCE_DIR) + "/tests/embed/data/tiny-bert";
  TextEmbedder e(EmbedderChoice::parse("bert:" + bert), *f.model);
  EXPECT_EQ(e.identity().rfind("bert:", 0), 0u);
  auto v = e.embed({"the cat sat on the mat", "a dog ran"});
  EXPECT_EQ(v.size(0), 2);
  EXPECT_TRUE(torch::allclose(v.norm(2, 1), torch::ones({2}), 1e-5, 1e-6));
  EXPECT_THROW(TextEmbedder(EmbedderChoice::parse("bert:/nonexistent"), *f.model), c3po::Error);
}

// Pinned states are not evicted while the pin lives, and the pin ends with its scope, also when an
// exception leaves it: nothing stays pinned for ever.
TEST(PrefixCache, PinsEndWithTheirScopeEvenOnExceptions) {
  auto state = [] {
    model::PrefixState s;
    s.hidden = torch::zeros({1, 4});  // 16 bytes
    return s;
  };
  PrefixCache cache(20);  // room for one state
  try {
    const PrefixCache::Pin keep(cache, {1, 2});
    cache.insert(1, state());
    cache.insert(2, state());
    EXPECT_NE(cache.peek(1), nullptr);  // over budget, but pinned
    EXPECT_NE(cache.peek(2), nullptr);
    throw std::runtime_error("a method failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(cache.pinned().empty());
  cache.insert(3, state());  // now the unpinned 1 and 2 go
  EXPECT_EQ(cache.peek(1), nullptr);
  EXPECT_EQ(cache.peek(2), nullptr);
  EXPECT_NE(cache.peek(3), nullptr);
  {
    const PrefixCache::Pin outer(cache, {3});
    {
      const PrefixCache::Pin inner(cache, {4});
      EXPECT_EQ(cache.pinned(), (std::vector<int64_t>{3, 4}));
    }
    EXPECT_EQ(cache.pinned(), (std::vector<int64_t>{3}));
  }
  EXPECT_TRUE(cache.pinned().empty());
}
