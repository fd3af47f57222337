// The model commands of the c3po binary on the tiny checkpoints, checked against the reference.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "test_util.h"

namespace c3po::model::test {
namespace {

struct Run {
  int status = -1;
  std::string out;
};

Run run(const std::string& args) {
  Run r;
  const std::string cmd = std::string(C3PO_BINARY) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  r.status = WEXITSTATUS(::pclose(p));
  return r;
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

TEST(Cli, InfoCountsParameters) {
  const std::string dir = model_dir("deepseek");
  auto r = run("info " + dir + " --dtype f32");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("deepseek"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MoE layers        3 (decoder layers 1,2,3)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("10 routed, top-3, width 20"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("one MLP of width 40, ungated"), std::string::npos) << r.out;
  // Independent count from the checkpoint: all tensors; active = all minus the unselected experts.
  io::SafetensorsFile f(dir + "/model.safetensors");
  int64_t total = 0, experts = 0;
  for (const auto& t : f.tensors()) {
    total += t.numel();
    if (t.name.find(".mlp.experts.") != std::string::npos) experts += t.numel();
  }
  const int64_t active = total - experts / 10 * (10 - 3);
  EXPECT_NE(r.out.find("(" + std::to_string(total) + ")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(" + std::to_string(active) + ")"), std::string::npos) << r.out;
}

TEST(Cli, LogitsFromIdsAndTextMatchReference) {
  Expected ex("olmoe");
  TempDir tmp;
  const std::string out = (tmp.path / "logits.json").string();
  auto r = run("logits " + model_dir("olmoe") + " --ids " + join(ex.ids(0)) + " --dtype f32 --all-positions --out " + out);
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = io::read_json_file(out);
  auto want = ex.get(0, "logits_f32");
  ASSERT_EQ(j["logits"].size(), static_cast<std::size_t>(want.size(0)));
  auto got = torch::tensor(j["logits"].back().get<std::vector<float>>());
  EXPECT_LT(max_abs_diff(got, want[-1]), 1e-4);
  // --text goes through the model's tokenizer: "The river." is case 0.
  auto t = run("logits " + model_dir("olmoe") + " --text 'The river.' --dtype f32");
  ASSERT_EQ(t.status, 0) << t.out;
  auto jt = nlohmann::json::parse(t.out);
  EXPECT_EQ(jt["input_ids"].get<std::vector<int64_t>>(), ex.ids(0));
  EXPECT_LT(max_abs_diff(torch::tensor(jt["logits"][0].get<std::vector<float>>()), want[-1]), 1e-4);
}

TEST(Cli, RouteListsReferenceExperts) {
  Expected ex("qwen2_moe");
  auto r = run("route " + model_dir("qwen2_moe") + " --ids " + join(ex.ids(2)) + " --dtype f32 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  auto want = ex.get(2, "topk_idx");
  ASSERT_EQ(j["layers"].size(), static_cast<std::size_t>(want.size(0)));
  for (int m = 0; m < want.size(0); ++m) {
    EXPECT_EQ(j["layers"][m]["decoder_layer"].get<int>(), m == 0 ? 0 : m + 1);
    for (int i = 0; i < want.size(1); ++i) {
      EXPECT_EQ(j["layers"][m]["experts"][i]["expert"].get<int64_t>(), want[m][i].item<int64_t>());
      EXPECT_TRUE(j["layers"][m]["experts"][i]["selected"].get<bool>());
    }
  }
  auto text = run("route " + model_dir("qwen2_moe") + " --text 'The river runs past.' --top 4");
  ASSERT_EQ(text.status, 0) << text.out;
  EXPECT_NE(text.out.find("moe  2 (layer  3)"), std::string::npos) << text.out;
}

TEST(Cli, GenerateStreamsReferenceGreedyTokens) {
  for (const auto& arch : architectures()) {
    Expected ex(arch);
    auto want = Expected::to_vector(ex.get(0, "greedy_ids"));
    if (want.empty()) continue;
    auto r = run("generate " + model_dir(arch) + " --ids " + join(ex.ids(0)) + " --dtype f32 --max-tokens " +
                 std::to_string(want.size()));
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.out, join(want) + "\n") << arch;
  }
  auto text = run("generate " + model_dir("mixtral") + " --prompt 'The river' --max-tokens 4");
  EXPECT_EQ(text.status, 0) << text.out;
}

TEST(Cli, ErrorsExitWithMessage) {
  auto r = run("info /nonexistent/model");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("c3po: error:"), std::string::npos) << r.out;
  auto ids = run("logits " + model_dir("olmoe") + " --ids 1,x");
  EXPECT_EQ(ids.status, 1);
  EXPECT_NE(ids.out.find("--ids"), std::string::npos) << ids.out;
  auto range = run("logits " + model_dir("olmoe") + " --ids 1,100000");
  EXPECT_EQ(range.status, 1);
  EXPECT_NE(range.out.find("100000"), std::string::npos) << range.out;
}

// Weights that make the logits NaN: `c3po logits` stops naming the position, never prints null.
TEST(Cli, NonFiniteLogitsAreAnError) {
  TempDir tmp;
  std::filesystem::copy_file(model_dir("olmoe") + "/config.json", tmp.path / "config.json");
  io::SafetensorsFile src(model_dir("olmoe") + "/model.safetensors");
  std::vector<io::TensorData> tensors;
  std::vector<float> nan_norm;
  for (const auto& t : src.tensors()) {
    tensors.push_back({t.name, t.dtype, t.shape, t.data, t.nbytes});
    if (t.name == "model.norm.weight") {
      ASSERT_EQ(t.dtype, io::DType::F32);
      nan_norm.assign(static_cast<std::size_t>(t.shape[0]), std::nanf(""));
      tensors.back().data = nan_norm.data();
    }
  }
  ASSERT_FALSE(nan_norm.empty());
  io::write_safetensors((tmp.path / "model.safetensors").string(), tensors);
  auto r = run("logits " + tmp.path.string() + " --ids 1,2,3 --dtype f32");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("not finite"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("position 2"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("null"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace c3po::model::test
