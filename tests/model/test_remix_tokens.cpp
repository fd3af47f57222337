// Which tokens an override re-mixes (method.md section 6, "which tokens"): the last J positions of
// a prompt. J = 1 must stay bit-identical to the engine before the switch existed: its outputs
// were recorded in tests/model/data/<arch>/j1_golden.safetensors by the engine of that time
// (C3PO_WRITE_J1_GOLDEN=1 rewrites them; never at test time).
#include <gtest/gtest.h>

#include <cstdlib>
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

TEST_P(J1Golden, LastTokenOverrideIsBitIdenticalToTheEngineBeforeTheSwitch) {
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
    EXPECT_TRUE(torch::equal(t.detach().to(torch::kFloat32).contiguous(), want))
        << name << ": max difference " << max_abs_diff(t.detach(), want);
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, J1Golden, ::testing::ValuesIn(architectures()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace c3po::model::test
