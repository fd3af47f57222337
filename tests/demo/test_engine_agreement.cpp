// The inference engine (src/model) and the demo's training-time forward are written
// independently; on the same checkpoint their logits must agree (fp32, 1e-4).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "demo/olmoe_train_model.h"
#include "demo/tasks.h"
#include "demo/train_demo.h"
#include "model/engine.h"
#include "tokenizer/tokenizer.h"

namespace c3po::demo {
namespace {

// Max |engine - training forward| over every position of the first n test prompts of a folder.
double max_logit_difference(const std::string& dir, std::size_t n) {
  const auto items = read_jsonl(dir + "/data/test.jsonl");
  const auto tok = tokenizer::Tokenizer::load(dir + "/tokenizer.json");
  std::vector<std::vector<int64_t>> prompts;
  for (std::size_t i = 0; i < std::min(n, items.size()); ++i) {
    const auto ids = tok.encode(render_prompt(items[i]));
    prompts.emplace_back(ids.begin(), ids.end());
  }
  auto engine = model::MoeModel::load(dir, model::Dtype::F32);
  model::ForwardOptions options;
  options.all_positions = true;
  const auto theirs = engine->forward(prompts, options).logits;

  const auto mine_model = OlmoeTrainModel::load(dir);
  torch::NoGradGuard no_grad;
  double worst = 0;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    const auto T = static_cast<int64_t>(prompts[b].size());
    auto tokens = torch::tensor(prompts[b], torch::kInt64).unsqueeze(0);
    auto mine = mine_model.forward(tokens, torch::tensor({T}, torch::kInt64)).logits[0];
    worst = std::max(worst, (mine - theirs[static_cast<int64_t>(b)].slice(0, 0, T)).abs().max().item<double>());
  }
  return worst;
}

TEST(DemoEngineAgreement, FreshlyTrainedTinyModel) {
  const auto dir = (std::filesystem::temp_directory_path() / ("c3po_demo_engine_" + std::to_string(::getpid()))).string();
  TrainDemoOptions o;
  o.out_dir = dir;
  o.steps = 30;
  o.threads = 1;
  o.batch_size = 8;
  o.warmup_steps = 5;
  o.eval_every = 0;
  o.sizes = SplitSizes{300, 20, 40};
  o.model.vocab_size = 320;
  o.model.hidden_size = 32;
  o.model.intermediate_size = 24;
  o.model.num_hidden_layers = 2;
  o.model.num_experts = 10;
  train_demo(o);
  EXPECT_LT(max_logit_difference(dir, 40), 1e-4);
  std::filesystem::remove_all(dir);
}

TEST(DemoEngineAgreement, ShippedModel) {
  const std::string dir = std::string(C3PO_SOURCE_DIR) + "/models/demo";
  ASSERT_TRUE(std::filesystem::exists(dir + "/model.safetensors")) << dir;
  EXPECT_LT(max_logit_difference(dir, 64), 1e-4);
}

}  // namespace
}  // namespace c3po::demo
