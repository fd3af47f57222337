// Shared-prefix log-likelihood scoring (MoeModel::score_continuations) against scoring each
// sequence alone from the full all-position logits, on every tiny checkpoint (fp32).
#include <gtest/gtest.h>

#include "model/engine.h"
#include "model/impl.h"
#include "test_util.h"

namespace c3po::model::test {
namespace {

// Deterministic pseudo-random token ids in [1, vocab).
std::vector<int64_t> tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int64_t> out;
  uint64_t x = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    out.push_back(1 + static_cast<int64_t>((x >> 33) % static_cast<uint64_t>(vocab - 1)));
  }
  return out;
}

std::vector<int64_t> concat(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// An lm-eval request: the model reads (context + continuation)[:-1], scored on the continuation.
ScoreRequest request(const std::vector<int64_t>& context, const std::vector<int64_t>& continuation) {
  auto whole = concat(context, continuation);
  whole.pop_back();
  return {whole, continuation};
}

// The same score from one forward of the sequence alone with every position's logits.
SequenceScore alone(const MoeModel& m, const ScoreRequest& q) {
  ForwardOptions o;
  o.all_positions = true;
  const auto logits = m.forward({q.input}, o).logits[0].to(torch::kFloat64);
  const int64_t len = static_cast<int64_t>(q.input.size()), n = static_cast<int64_t>(q.targets.size());
  const auto rows = logits.narrow(0, len - n, n);
  const auto target = torch::tensor(q.targets, torch::kInt64);
  SequenceScore s;
  s.loglik = torch::log_softmax(rows, -1).gather(1, target.unsqueeze(1)).sum().item<double>();
  s.is_greedy = torch::equal(rows.argmax(-1), target);
  return s;
}

class Scoring : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { model = MoeModel::load(model_dir(GetParam()), Dtype::F32); }

  // Groups that exercise every split between shared prefix and suffixes.
  std::vector<std::vector<ScoreRequest>> groups() const {
    const int64_t V = model->config().vocab_size;
    const auto ctx = tokens(13, V, 1);
    const auto a = tokens(3, V, 2), b = tokens(1, V, 3), c = tokens(4, V, 4);
    std::vector<std::vector<ScoreRequest>> g;
    // Choices of one item: a shared context and continuations of 3 and 4 tokens that all begin
    // with the same token (so the shared prefix reaches into the continuations and two scored
    // positions of each lie inside it), two of them differing only in their second token.
    auto a3 = a, c2 = c;
    a3[0] = c[0];
    a3[1] = (c[1] % (V - 2)) + 2;  // differs from c[1] ...
    c2[1] = (c[1] + a3[1]) % V;    // ... and c2[1] from both
    if (c2[1] == c[1] || c2[1] == a3[1]) c2[1] = (c2[1] + 1) % V;
    g.push_back({request(ctx, a3), request(ctx, c), request(ctx, c2)});
    // WinoGrande partial scoring: different contexts up to a point, the same continuation.
    auto ctx2 = ctx;
    ctx2[9] = (ctx[9] % (V - 1)) + 1;
    ctx2.push_back(7);
    g.push_back({request(ctx, a), request(ctx2, a)});
    // An empty common prefix: the first tokens differ.
    auto other = tokens(13, V, 5);
    other[0] = (ctx[0] % (V - 1)) + 1;
    g.push_back({request(ctx, a), request(other, b)});
    // A common prefix covering all but the last token of every input.
    auto last1 = ctx, last2 = ctx;
    last2.back() = (ctx.back() % (V - 1)) + 1;
    g.push_back({ScoreRequest{last1, {5, 6, 7}}, ScoreRequest{last2, {8, 9}}});
    // One input is the beginning of another; one scores every position (first one included).
    const std::vector<int64_t> short_in(ctx.begin(), ctx.begin() + 6);
    g.push_back({ScoreRequest{short_in, tokens(6, V, 6)}, ScoreRequest{ctx, tokens(2, V, 7)}});
    // A single sequence.
    g.push_back({request(other, c)});
    return g;
  }
  std::unique_ptr<MoeModel> model;
};

TEST_P(Scoring, SharedPrefixGroupsExerciseEverySplit) {
  const auto g = groups();
  ASSERT_EQ(g.size(), 6u);
  EXPECT_EQ(shared_prefix_length(g[0]), 14);  // context + the shared first continuation token
  EXPECT_NE(g[0][0].input[14], g[0][1].input[14]);
  EXPECT_NE(g[0][1].input[14], g[0][2].input[14]);
  EXPECT_EQ(shared_prefix_length(g[1]), 9);   // up to the first difference
  EXPECT_EQ(shared_prefix_length(g[2]), 0);
  EXPECT_EQ(shared_prefix_length(g[3]), 12);  // all but one token
  EXPECT_EQ(shared_prefix_length(g[4]), 5);   // capped at all but the last token of the shorter
  EXPECT_EQ(shared_prefix_length(g[5]), 0);
}

TEST_P(Scoring, SharedPrefixScoresEqualScoringEachSequenceAlone) {
  const auto g = groups();
  // All groups in one call, and each group by itself.
  const auto together = model->score_continuations(g);
  ASSERT_EQ(together.size(), g.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    const auto single = model->score_continuations(g[i]);
    ASSERT_EQ(together[i].size(), g[i].size());
    ASSERT_EQ(single.size(), g[i].size());
    for (std::size_t r = 0; r < g[i].size(); ++r) {
      const SequenceScore want = alone(*model, g[i][r]);
      EXPECT_NEAR(together[i][r].loglik, want.loglik, 1e-4) << "group " << i << " request " << r;
      EXPECT_NEAR(single[r].loglik, want.loglik, 1e-4) << "group " << i << " request " << r;
      EXPECT_EQ(together[i][r].is_greedy, want.is_greedy) << "group " << i << " request " << r;
      EXPECT_EQ(single[r].is_greedy, want.is_greedy);
      EXPECT_LT(want.loglik, 0.0);
    }
  }
}

TEST_P(Scoring, GreedyContinuationsAreRecognised) {
  // The greedy continuation of a context is greedy; changing its last token makes it not.
  const auto ctx = tokens(9, model->config().vocab_size, 11);
  const auto greedy = model->generate(ctx, 3);
  ASSERT_EQ(greedy.size(), 3u);
  auto changed = greedy;
  changed.back() = (greedy.back() + 1) % model->config().vocab_size;
  const auto s = model->score_continuations({request(ctx, greedy), request(ctx, changed)});
  EXPECT_TRUE(s[0].is_greedy);
  EXPECT_FALSE(s[1].is_greedy);
  EXPECT_GT(s[0].loglik, s[1].loglik);
}

TEST_P(Scoring, BadRequestsAreErrors) {
  const int64_t V = model->config().vocab_size;
  auto expect_field = [&](const std::vector<ScoreRequest>& g, const std::string& field) {
    try {
      model->score_continuations(g);
      FAIL() << "accepted a bad request (" << field << ")";
    } catch (const Error& e) {
      EXPECT_EQ(e.field(), field) << e.what();
    }
  };
  expect_field({ScoreRequest{{1, 2, 3}, {}}}, "targets");
  expect_field({ScoreRequest{{1, 2, 3}, {4, 5, 6, 7}}}, "targets");
  expect_field({ScoreRequest{{1, 2, 3}, {4}}, ScoreRequest{{1, 2}, {V}}}, "targets");
  expect_field({ScoreRequest{{}, {4}}}, "input_ids");
  expect_field({ScoreRequest{{1, -2}, {4}}}, "input_ids");
  EXPECT_TRUE(model->score_continuations(std::vector<std::vector<ScoreRequest>>{}).empty());
}

// A continuation segment takes its positions after its parent's and refuses a parent that is not
// an earlier segment starting its own sequence.
TEST_P(Scoring, ContinuationSegmentsFollowTheirParent) {
  PackedBatch b(model->config());
  const std::vector<int64_t> prompt{1, 2, 3}, more{4, 5};
  b.add_tokens(prompt, 0, "prompt");
  const Segment& s = b.add_continuation(more.data(), 2, 0, "suffix");
  EXPECT_EQ(s.parent, 0);
  EXPECT_EQ(s.past, 3);
  EXPECT_EQ(s.offset, 3);
  EXPECT_EQ(b.positions, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  auto expect_parent_error = [&](int parent) {
    try {
      b.add_continuation(more.data(), 2, parent, "bad");
      FAIL() << "accepted parent " << parent;
    } catch (const Error& e) {
      EXPECT_EQ(e.field(), "parent") << e.what();
    }
  };
  expect_parent_error(-1);
  expect_parent_error(2);
  expect_parent_error(1);  // itself a continuation
  EXPECT_EQ(b.segments.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, Scoring, ::testing::ValuesIn(architectures()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace c3po::model::test
