// Which tokens an override re-mixes (method.md section 6, "which tokens"): the last J positions of
// a prompt. J = 1 must stay what the engine gave before the switch existed: its outputs were
// recorded in tests/model/data/<arch>/j1_golden.safetensors by the engine of that time
// (C3PO_WRITE_J1_GOLDEN=1 rewrites them; never at test time). A regression pin, not evidence of
// correctness (the engine wrote it): the reference tests compare with an independent model.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <cstring>
#include <map>

#include "io/safetensors.h"
#include "model/engine.h"
#include "test_util.h"

namespace c3po::model::test {
namespace {

// The stored hard override of a case (Dirichlet distributions of tests/reference/make_expected.py).
RouteOverride stored_override(const Expected& ex, int c) {
  auto layers = Expected::to_vector(ex.get(c, "override_layers"));
  auto omega = ex.get(c, "override_omega");
  RouteOverride r;
  for (std::size_t j = 0; j < layers.size(); ++j) r.layers.push_back({static_cast<int>(layers[j]), omega[j].clone(), {}});
  return r;
}

RouteOverride stored_soft_override(const Expected& ex, int c) {
  auto r = stored_override(ex, c);
  auto sets = ex.get(c, "soft_set");
  for (std::size_t j = 0; j < r.layers.size(); ++j) r.layers[j].soft_set = sets[static_cast<int64_t>(j)].clone();
  return r;
}

// d(logsumexp of the letter logits of a tail re-run)/d omega, one row per overridden layer.
torch::Tensor tail_gradient(const MoeModel& m, const PrefixState& state, RouteOverride route,
                            const std::vector<int64_t>& letters) {
  for (auto& l : route.layers) l.omega.requires_grad_(true);
  m.tail(state, route, letters).logsumexp(0).backward();
  std::vector<torch::Tensor> g;
  for (auto& l : route.layers) g.push_back(l.omega.grad().clone());
  return torch::stack(g);
}

// Everything J = 1 produced, by name.
std::map<std::string, torch::Tensor> j1_outputs(const MoeModel& m, const Expected& ex) {
  std::map<std::string, torch::Tensor> out;
  std::vector<std::vector<int64_t>> prompts;
  for (int c = 0; c < ex.num_cases(); ++c) {
    const std::string p = "case" + std::to_string(c) + ".";
    const auto ids = ex.ids(c);
    prompts.push_back(ids);
    const auto letters = Expected::to_vector(ex.get(c, "letters"));
    const auto hard = stored_override(ex, c), soft = stored_soft_override(ex, c);
    ForwardOptions oh, os;
    oh.overrides = {hard};
    oh.capture = true;
    os.overrides = {soft};
    auto rh = m.forward({ids}, oh);
    out[p + "forward_hard"] = rh.logits[0];
    out[p + "topk_weight_hard"] = rh.topk_weight[0];
    out[p + "forward_soft"] = m.forward({ids}, os).logits[0];
    ForwardOptions keep;
    keep.keep_prefix_from = hard.min_moe_layer();
    auto base = m.forward({ids}, keep);
    const PrefixState& st = base.prefixes.at(0);
    out[p + "prefix_hidden"] = st.hidden.reshape({-1});
    out[p + "prefix_keys_last"] = st.keys.back().reshape({-1});
    {
      torch::NoGradGuard ng;
      out[p + "tail_hard"] = m.tail(st, hard, {});
      out[p + "tail_soft"] = m.tail(st, soft, {});
    }
    out[p + "grad_hard"] = tail_gradient(m, st, hard, letters);
    out[p + "grad_soft"] = tail_gradient(m, st, soft, letters);
  }
  // One batched tail of every case from the last MoE layer under case 0's override of that layer.
  ForwardOptions keep;
  keep.keep_prefix_from = m.num_moe_layers() - 1;
  auto base = m.forward(prompts, keep);
  RouteOverride last;
  for (const auto& l : stored_override(ex, 0).layers)
    if (l.moe_layer == keep.keep_prefix_from) last.layers.push_back(l);
  std::vector<const PrefixState*> states;
  for (const auto& s : base.prefixes) states.push_back(&s);
  torch::NoGradGuard ng;
  out["batched_tail"] = m.tail(states, last, {});
  return out;
}

class J1Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(J1Golden, LastTokenOverrideMatchesTheEngineBeforeTheSwitch) {
  auto m = MoeModel::load(model_dir(GetParam()), Dtype::F32);
  Expected ex(GetParam());
  const auto got = j1_outputs(*m, ex);
  const std::string path = model_dir(GetParam()) + "/j1_golden.safetensors";
  const char* write = std::getenv("C3PO_WRITE_J1_GOLDEN");
  if (write && std::string(write) == "1") {
    std::vector<torch::Tensor> keep;
    std::vector<io::TensorData> data;
    for (const auto& [name, t] : got) {
      keep.push_back(t.detach().to(torch::kFloat32).contiguous());
      data.push_back({name, io::DType::F32, keep.back().sizes().vec(), keep.back().data_ptr(), keep.back().nbytes()});
    }
    io::write_safetensors(path, data);
    GTEST_SKIP() << "wrote " << path;
  }
  io::SafetensorsFile golden(path);
  EXPECT_EQ(golden.tensors().size(), got.size());
  for (const auto& [name, t] : got) {
    const io::TensorView* v = golden.find(name);
    ASSERT_NE(v, nullptr) << name;
    auto want = torch::empty(v->shape, torch::kFloat32);
    ASSERT_EQ(v->nbytes, want.nbytes()) << name;
    std::memcpy(want.data_ptr(), v->data, v->nbytes);
    // Bitwise on the machine that wrote the pin; elsewhere fp32 BLAS kernels round differently
    // (2e-6 on an Intel CPU with AMX against the AMD EPYC that wrote it), hence the tolerance.
    EXPECT_TRUE(torch::allclose(t.detach().to(torch::kFloat32).contiguous(), want, 1e-5, 1e-5))
        << name << ": max difference " << max_abs_diff(t.detach(), want);
  }
}

// Router distributions [T, E] of every MoE layer of one prompt, as the routing hook sees them.
struct ProbsHook : RoutingHook {
  std::map<int, torch::Tensor> probs;
  void on_router(const RouterEvent& e) override { probs[e.moe_layer] = e.probs.detach().clone(); }
};

RouteOverride with_tokens(RouteOverride r, int64_t tokens) {
  for (auto& l : r.layers) l.tokens = tokens;
  return r;
}

std::string j_name(int64_t j) { return j == kAllTokens ? "all" : "last:" + std::to_string(j); }

class RemixTokens : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model = MoeModel::load(model_dir(GetParam()), Dtype::F32);
    ex = std::make_unique<Expected>(GetParam());
    for (int c = 0; c < ex->num_cases(); ++c) prompts.push_back(ex->ids(c));
  }
  std::unique_ptr<MoeModel> model;
  std::unique_ptr<Expected> ex;
  std::vector<std::vector<int64_t>> prompts;  // 5, 11 and 17 tokens
  const std::vector<int64_t> js{1, 3, kAllTokens};
};

TEST_P(RemixTokens, PrefixStateKeepsTheLastJTokens) {
  const int from = model->num_moe_layers() - 1;
  for (int64_t j : {int64_t{1}, int64_t{3}, int64_t{8}, kAllTokens}) {
    ForwardOptions keep;
    keep.keep_prefix_from = from;
    keep.prefix_tokens = j;
    keep.hidden_states = true;
    const auto r = model->forward(prompts, keep);
    for (std::size_t b = 0; b < prompts.size(); ++b) {
      const PrefixState& s = r.prefixes[b];
      const int64_t T = static_cast<int64_t>(prompts[b].size());
      const int64_t want = j == kAllTokens ? T : std::min(j, T);  // 8 on the 5-token prompt: all 5
      EXPECT_EQ(s.tokens, want) << j_name(j);
      EXPECT_EQ(s.position, T - want);
      ASSERT_EQ(s.hidden.dim(), 2);
      EXPECT_EQ(s.hidden.size(0), want);
      EXPECT_EQ(s.keys.front().size(1), T - want);
      // The hidden states entering the first kept decoder layer, of the re-run tokens.
      const auto layer_in = r.hidden_states[b][s.decoder_layer].narrow(0, T - want, want);
      EXPECT_LT(max_abs_diff(s.hidden, layer_in), 1e-6);
    }
  }
}

TEST_P(RemixTokens, TailEqualsFullForwardUnderTheSameOverride) {
  for (int c = 0; c < ex->num_cases(); ++c) {
    const auto hard = stored_override(*ex, c), soft = stored_soft_override(*ex, c);
    torch::Tensor previous;
    for (int64_t j : js) {
      for (const auto& route : {with_tokens(hard, j), with_tokens(soft, j)}) {
        ForwardOptions full;
        full.overrides = {route};
        const auto want = model->forward({prompts[c]}, full).logits[0];
        ForwardOptions keep;
        keep.keep_prefix_from = route.min_moe_layer();
        keep.prefix_tokens = j;
        const auto base = model->forward({prompts[c]}, keep);
        torch::NoGradGuard ng;
        EXPECT_LT(max_abs_diff(model->tail(base.prefixes[0], route, {}), want), 1e-5) << "case " << c << " " << j_name(j);
        // The override changes the answer, and re-mixing more tokens changes it again.
        EXPECT_GT(max_abs_diff(want, base.logits[0]), 1e-3) << j_name(j);
      }
      ForwardOptions full;
      full.overrides = {with_tokens(hard, j)};
      const auto now = model->forward({prompts[c]}, full).logits[0];
      if (previous.defined()) {
        EXPECT_GT(max_abs_diff(now, previous), 1e-4) << "case " << c << " " << j_name(j);
      }
      previous = now;
    }
  }
}

TEST_P(RemixTokens, BatchedTailOfDifferentLengthsEqualsOneByOne) {
  const int from = model->num_moe_layers() - 1;
  RouteOverride route;
  for (const auto& l : stored_override(*ex, 0).layers)
    if (l.moe_layer == from) route.layers.push_back(l);
  ASSERT_FALSE(route.empty());
  for (int64_t j : js) {
    ForwardOptions keep;
    keep.keep_prefix_from = from;
    keep.prefix_tokens = j;
    const auto base = model->forward(prompts, keep);
    std::vector<const PrefixState*> states;
    for (const auto& p : base.prefixes) states.push_back(&p);
    const auto r = with_tokens(route, j);
    torch::NoGradGuard ng;
    const auto batched = model->tail(states, r, {});
    ASSERT_EQ(batched.size(0), static_cast<int64_t>(prompts.size()));
    for (std::size_t b = 0; b < prompts.size(); ++b) {
      ForwardOptions full;
      full.overrides = {r};
      EXPECT_LT(max_abs_diff(batched[b], model->forward({prompts[b]}, full).logits[0]), 1e-5) << b << " " << j_name(j);
    }
  }
}

TEST_P(RemixTokens, OwnDistributionAtEveryRemixedPositionReproducesTheBaseLogits) {
  for (int c = 0; c < ex->num_cases(); ++c) {
    ProbsHook seen;
    ForwardOptions cap;
    cap.hook = &seen;
    cap.capture = true;
    cap.keep_prefix_from = 0;
    cap.prefix_tokens = kAllTokens;
    const auto base = model->forward({prompts[c]}, cap);
    const int64_t T = static_cast<int64_t>(prompts[c].size());
    for (int64_t j : js) {
      const int64_t n = j == kAllTokens ? T : std::min(j, T);
      RouteOverride own;
      for (int m = 0; m < model->num_moe_layers(); ++m)
        own.layers.push_back({m, seen.probs.at(m).narrow(0, T - n, n).clone(), {}, j});
      ForwardOptions o;
      o.overrides = {own};
      o.capture = true;
      const auto r = model->forward({prompts[c]}, o);
      EXPECT_LT(max_abs_diff(r.logits, base.logits), 1e-6) << "case " << c << " " << j_name(j);
      EXPECT_TRUE(torch::equal(r.topk_idx, base.topk_idx));
      // The tail re-run from the first MoE layer (all tokens kept) too.
      torch::NoGradGuard ng;
      EXPECT_LT(max_abs_diff(model->tail(base.prefixes[0], own, {}), base.logits[0]), 1e-5) << j_name(j);
      // Someone else's distribution at those positions changes the answer.
      auto other = own;
      for (auto& l : other.layers) l.omega = l.omega.flip({-1}).contiguous();
      ForwardOptions o2;
      o2.overrides = {other};
      EXPECT_GT(max_abs_diff(model->forward({prompts[c]}, o2).logits, base.logits), 1e-3) << j_name(j);
    }
  }
}

// d loss / d omega of a tail re-run against central finite differences of the full forward
// (fp32; the stored omegas have a top-k gap > 1e-3, larger than the step).
TEST_P(RemixTokens, TailGradientMatchesFiniteDifferences) {
  const int c = 2;
  const auto letters = Expected::to_vector(ex->get(c, "letters"));
  const int64_t gold = ex->get(c, "gold").item<int64_t>();
  for (int64_t j : js) {
    auto loss_of = [&](const RouteOverride& r) {
      ForwardOptions o;
      o.overrides = {r};
      o.vocab_rows = letters;
      return -torch::log_softmax(model->forward({prompts[c]}, o).logits[0], 0)[gold];
    };
    auto route = with_tokens(stored_override(*ex, c), j);
    ForwardOptions keep;
    keep.keep_prefix_from = route.min_moe_layer();
    keep.prefix_tokens = j;
    const auto base = model->forward({prompts[c]}, keep);
    for (auto& l : route.layers) l.omega.requires_grad_(true);
    (-torch::log_softmax(model->tail(base.prefixes[0], route, letters), 0)[gold]).backward();
    const double h = 2e-4;
    int checked = 0;
    for (std::size_t l = 0; l < route.layers.size(); ++l) {
      const auto grad = route.layers[l].omega.grad();
      const auto selected = std::get<1>(route.layers[l].omega.detach().topk(model->top_k()));
      for (int64_t i = 0; i < selected.size(0); ++i) {
        const int64_t e = selected[i].item<int64_t>();
        auto plus = with_tokens(stored_override(*ex, c), j);
        auto minus = with_tokens(stored_override(*ex, c), j);
        plus.layers[l].omega[e] += h;
        minus.layers[l].omega[e] -= h;
        torch::NoGradGuard ng;
        const double fd = (loss_of(plus).item<double>() - loss_of(minus).item<double>()) / (2 * h);
        const double ad = grad[e].item<double>();
        EXPECT_NEAR(ad, fd, 5e-3 + 2e-2 * std::abs(ad)) << j_name(j) << " layer " << l << " expert " << e;
        checked += std::abs(fd) > 1e-3;
      }
    }
    EXPECT_GT(checked, 0) << j_name(j);  // the gradient is not trivially zero
  }
}

TEST_P(RemixTokens, OverridesOutsideTheRerunTokensAreErrors) {
  const auto route = stored_override(*ex, 1);
  ForwardOptions keep;
  keep.keep_prefix_from = route.min_moe_layer();
  keep.prefix_tokens = 3;
  const auto base = model->forward({prompts[1]}, keep);
  auto expect_field = [&](const std::function<void()>& f, const std::string& field) {
    try {
      f();
      ADD_FAILURE() << "accepted (" << field << ")";
    } catch (const Error& e) {
      EXPECT_EQ(e.field(), field) << e.what();
    }
  };
  torch::NoGradGuard ng;
  EXPECT_NO_THROW(model->tail(base.prefixes[0], with_tokens(route, 2), {}));
  expect_field([&] { model->tail(base.prefixes[0], with_tokens(route, 4), {}); }, "override");
  expect_field([&] { model->tail(base.prefixes[0], with_tokens(route, kAllTokens), {}); }, "override");
  expect_field([&] { model->tail(base.prefixes[0], with_tokens(route, -1), {}); }, "tokens");
  auto rows = with_tokens(route, 3);
  rows.layers[0].omega = rows.layers[0].omega.unsqueeze(0).expand({2, -1}).clone();  // 2 rows for 3 positions
  expect_field([&] { model->tail(base.prefixes[0], rows, {}); }, "omega");
  ForwardOptions o;
  o.overrides = {rows};
  expect_field([&] { model->forward({prompts[1]}, o); }, "omega");
  ForwardOptions bad;
  bad.keep_prefix_from = 0;
  bad.prefix_tokens = -2;
  expect_field([&] { model->forward({prompts[1]}, bad); }, "prefix_tokens");
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, RemixTokens, ::testing::ValuesIn(architectures()),
                         [](const auto& info) { return info.param; });

INSTANTIATE_TEST_SUITE_P(AllArchitectures, J1Golden, ::testing::ValuesIn(architectures()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace c3po::model::test
