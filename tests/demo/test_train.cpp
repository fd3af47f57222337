// The training-time OLMoE: its forward against a naive per-token reference written from the
// architecture description, a tiny training run, and the saved Hugging Face folder.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "demo/olmoe_train_model.h"
#include "demo/train_demo.h"
#include "io/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "tokenizer/tokenizer.h"

namespace c3po::demo {
namespace {

OlmoeConfig tiny_config() {
  OlmoeConfig c;
  c.vocab_size = 300;
  c.hidden_size = 32;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.num_experts = 10;  // two per family: the training's routing supervision needs them
  c.num_experts_per_tok = 2;
  return c;
}

using Vec = std::vector<double>;

Vec matvec(const torch::Tensor& w, const Vec& x) {  // w [out, in]
  auto a = w.to(torch::kFloat64).contiguous();
  auto acc = a.accessor<double, 2>();
  Vec y(static_cast<std::size_t>(a.size(0)), 0.0);
  for (int64_t o = 0; o < a.size(0); ++o)
    for (int64_t i = 0; i < a.size(1); ++i) y[o] += acc[o][i] * x[i];
  return y;
}

Vec rms(const Vec& x, const torch::Tensor& w, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v;
  ms /= static_cast<double>(x.size());
  auto wd = w.to(torch::kFloat64).contiguous();
  Vec y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = wd[i].item<double>() * x[i] / std::sqrt(ms + eps);
  return y;
}

// One sequence, token by token, in double precision: the OLMoE forward as documented (q/k norm
// over the whole projection, RoPE pairing i with i + d/2, softmax router over all experts, top-k
// weights not renormalised, SwiGLU experts).
std::vector<Vec> naive_logits(const OlmoeTrainModel& m, const std::vector<int64_t>& tokens) {
  const auto& c = m.config();
  const int H = c.hidden_size, nh = c.num_attention_heads, hd = c.head_dim();
  const std::size_t T = tokens.size();
  std::vector<Vec> x(T);
  auto emb = m.param("model.embed_tokens.weight").to(torch::kFloat64);
  for (std::size_t t = 0; t < T; ++t)
    for (int i = 0; i < H; ++i) x[t].push_back(emb[tokens[t]][i].item<double>());
  auto rope = [&](Vec& v, std::size_t pos) {
    for (int h = 0; h < nh; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        const double angle = static_cast<double>(pos) * std::pow(c.rope_theta, -2.0 * i / hd);
        double& a = v[h * hd + i];
        double& b = v[h * hd + i + hd / 2];
        const double a0 = a, b0 = b;
        a = a0 * std::cos(angle) - b0 * std::sin(angle);
        b = b0 * std::cos(angle) + a0 * std::sin(angle);
      }
  };
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    std::vector<Vec> q(T), k(T), v(T);
    for (std::size_t t = 0; t < T; ++t) {
      auto h = rms(x[t], m.param(p + "input_layernorm.weight"), c.rms_norm_eps);
      q[t] = rms(matvec(m.param(p + "self_attn.q_proj.weight"), h), m.param(p + "self_attn.q_norm.weight"), c.rms_norm_eps);
      k[t] = rms(matvec(m.param(p + "self_attn.k_proj.weight"), h), m.param(p + "self_attn.k_norm.weight"), c.rms_norm_eps);
      v[t] = matvec(m.param(p + "self_attn.v_proj.weight"), h);
      rope(q[t], t);
      rope(k[t], t);
    }
    for (std::size_t t = 0; t < T; ++t) {
      Vec attn(H, 0.0);
      for (int h = 0; h < nh; ++h) {
        Vec s;
        double mx = -1e300;
        for (std::size_t u = 0; u <= t; ++u) {
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[t][h * hd + i] * k[u][h * hd + i];
          s.push_back(d / std::sqrt(static_cast<double>(hd)));
          mx = std::max(mx, s.back());
        }
        double z = 0;
        for (auto& e : s) z += (e = std::exp(e - mx));
        for (std::size_t u = 0; u <= t; ++u)
          for (int i = 0; i < hd; ++i) attn[h * hd + i] += s[u] / z * v[u][h * hd + i];
      }
      auto o = matvec(m.param(p + "self_attn.o_proj.weight"), attn);
      for (int i = 0; i < H; ++i) x[t][i] += o[i];
    }
    for (std::size_t t = 0; t < T; ++t) {
      auto h = rms(x[t], m.param(p + "post_attention_layernorm.weight"), c.rms_norm_eps);
      auto logits = matvec(m.param(p + "mlp.gate.weight"), h);
      const double mx = *std::max_element(logits.begin(), logits.end());
      double z = 0;
      for (double g : logits) z += std::exp(g - mx);
      std::vector<std::pair<double, int>> probs;
      for (int e = 0; e < c.num_experts; ++e) probs.push_back({std::exp(logits[e] - mx) / z, e});
      std::sort(probs.begin(), probs.end(), [](auto a, auto b) { return a.first > b.first; });
      for (int j = 0; j < c.num_experts_per_tok; ++j) {
        const auto [w, e] = probs[j];
        const std::string ep = p + "mlp.experts." + std::to_string(e) + ".";
        auto g = matvec(m.param(ep + "gate_proj.weight"), h);
        auto u = matvec(m.param(ep + "up_proj.weight"), h);
        for (std::size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
        auto y = matvec(m.param(ep + "down_proj.weight"), g);
        for (int i = 0; i < H; ++i) x[t][i] += w * y[i];
      }
    }
  }
  std::vector<Vec> out;
  for (std::size_t t = 0; t < T; ++t)
    out.push_back(matvec(m.param("lm_head.weight"), rms(x[t], m.param("model.norm.weight"), c.rms_norm_eps)));
  return out;
}

// Random weights large enough that routing and attention are far from uniform.
OlmoeTrainModel random_model(uint64_t seed) {
  OlmoeTrainModel m(tiny_config(), seed);
  torch::NoGradGuard no_grad;
  torch::manual_seed(static_cast<int64_t>(seed));
  for (auto& [name, t] : m.named_parameters()) {
    if (t.dim() == 1)
      t.uniform_(0.5, 1.5);
    else
      t.normal_(0.0, 0.3);
  }
  return m;
}

TEST(DemoOlmoe, ForwardMatchesNaivePerTokenReference) {
  torch::set_num_threads(1);
  const auto m = random_model(5);
  std::vector<int64_t> a = {5, 17, 250, 3, 3, 99, 42, 7, 0, 123, 64};
  std::vector<int64_t> b = {8, 1, 2};  // shorter: right-padded in the batch
  auto tokens = torch::zeros({2, static_cast<int64_t>(a.size())}, torch::kInt64);
  for (std::size_t t = 0; t < a.size(); ++t) tokens[0][t] = a[t];
  for (std::size_t t = 0; t < b.size(); ++t) tokens[1][t] = b[t];
  auto lengths = torch::tensor({static_cast<int64_t>(a.size()), static_cast<int64_t>(b.size())});
  torch::NoGradGuard no_grad;
  auto logits = m.forward(tokens, lengths).logits;
  for (int row = 0; row < 2; ++row) {
    const auto& seq = row == 0 ? a : b;
    const auto want = naive_logits(m, seq);
    for (std::size_t t = 0; t < seq.size(); ++t)
      for (int v = 0; v < tiny_config().vocab_size; ++v)
        ASSERT_NEAR(logits[row][t][v].item<double>(), want[t][v], 1e-4 * (1 + std::abs(want[t][v])))
            << "row " << row << " position " << t << " vocab " << v;
  }
}

TEST(DemoOlmoe, AuxLossIsOlmoesLoadBalancingLoss) {
  const auto m = random_model(9);
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(0, 300, {3, 7}, torch::kInt64);
  auto lengths = torch::tensor({7, 4, 1}, torch::kInt64);
  const double aux = m.forward(tokens, lengths).aux_loss.item<double>();
  // E * sum over slots and experts of f * P: f (per slot) and P are distributions over experts,
  // so the loss lies in [0, E * k].
  const auto& c = m.config();
  EXPECT_GE(aux, 0.0);
  EXPECT_LE(aux, c.num_experts * c.num_experts_per_tok + 1e-6);
  // Padding is excluded: changing padded tokens leaves the loss unchanged.
  auto other = tokens.clone();
  other[1][5] = 11;
  other[2][3] = 12;
  EXPECT_NEAR(m.forward(other, lengths).aux_loss.item<double>(), aux, 1e-6);
  auto changed = tokens.clone();
  changed[1][2] = (changed[1][2].item<int64_t>() + 1) % 300;
  EXPECT_NE(m.forward(changed, lengths).aux_loss.item<double>(), aux);
}

TrainDemoOptions tiny_options(const std::string& dir) {
  TrainDemoOptions o;
  o.out_dir = dir;
  o.seed = 3;
  o.steps = 40;
  o.threads = 1;
  o.batch_size = 8;
  o.warmup_steps = 5;
  o.learning_rate = 3e-3;
  o.sizes = SplitSizes{400, 50, 50};
  o.model = tiny_config();
  o.model.vocab_size = 320;
  return o;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class DemoTraining : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string((std::filesystem::temp_directory_path() /
                            ("c3po_demo_train_" + std::to_string(::getpid()))).string());
    result_ = new TrainDemoResult(train_demo(tiny_options(*dir_)));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
    delete result_;
  }
  static std::string* dir_;
  static TrainDemoResult* result_;
};
std::string* DemoTraining::dir_ = nullptr;
TrainDemoResult* DemoTraining::result_ = nullptr;

TEST_F(DemoTraining, LossGoesDown) {
  const auto& l = result_->step_losses;
  ASSERT_EQ(l.size(), 40u);
  const double first = (l[0] + l[1] + l[2]) / 3, last = (l[37] + l[38] + l[39]) / 3;
  EXPECT_LT(last, first - 1.0) << "first " << first << " last " << last;
  // Untrained: text and answer cross-entropies start near ln(vocab), the aux loss near k = 2, the
  // routing term near L * KL(target || uniform router).
  const auto o = tiny_options("");
  const double m = o.routing_target_mass, E = o.model.num_experts;
  const double kl = m * std::log(m / 2 * E) + (1 - m) * std::log((1 - m) / (E - 2) * E);
  const double routing = o.routing_loss_weight * o.model.num_hidden_layers * kl;
  EXPECT_NEAR(l[0], (1 + o.answer_loss_weight) * std::log(320.0) + 0.01 * 2 + routing, 0.6 * (1 + o.answer_loss_weight));
}

TEST_F(DemoTraining, FolderHasTheHuggingFaceNamesAndShapes) {
  const auto config = io::read_json_file(*dir_ + "/config.json");
  EXPECT_EQ(config["model_type"], "olmoe");
  EXPECT_EQ(config["norm_topk_prob"], false);
  EXPECT_EQ(config["torch_dtype"], "float32");
  EXPECT_EQ(config["architectures"][0], "OlmoeForCausalLM");
  const int64_t V = config["vocab_size"], H = config["hidden_size"], F = config["intermediate_size"];
  const int64_t L = config["num_hidden_layers"], E = config["num_experts"];
  const int64_t kv = H / config["num_attention_heads"].get<int64_t>() * config["num_key_value_heads"].get<int64_t>();
  std::map<std::string, std::vector<int64_t>> want = {
      {"model.embed_tokens.weight", {V, H}}, {"model.norm.weight", {H}}, {"lm_head.weight", {V, H}}};
  for (int64_t i = 0; i < L; ++i) {
    const auto p = "model.layers." + std::to_string(i) + ".";
    want[p + "self_attn.q_proj.weight"] = {H, H};
    want[p + "self_attn.k_proj.weight"] = {kv, H};
    want[p + "self_attn.v_proj.weight"] = {kv, H};
    want[p + "self_attn.o_proj.weight"] = {H, H};
    want[p + "self_attn.q_norm.weight"] = {H};
    want[p + "self_attn.k_norm.weight"] = {kv};
    want[p + "input_layernorm.weight"] = {H};
    want[p + "post_attention_layernorm.weight"] = {H};
    want[p + "mlp.gate.weight"] = {E, H};
    for (int64_t e = 0; e < E; ++e) {
      const auto x = p + "mlp.experts." + std::to_string(e) + ".";
      want[x + "gate_proj.weight"] = {F, H};
      want[x + "up_proj.weight"] = {F, H};
      want[x + "down_proj.weight"] = {H, F};
    }
  }
  auto ck = io::Checkpoint::open(*dir_);
  ASSERT_EQ(ck.names().size(), want.size());
  for (const auto& [name, shape] : want) {
    ASSERT_TRUE(ck.has(name)) << name;
    EXPECT_EQ(ck.get(name).shape, shape) << name;
    EXPECT_EQ(ck.get(name).dtype, io::DType::F32) << name;
  }
  const auto tokenizer = io::read_json_file(*dir_ + "/tokenizer.json");
  EXPECT_EQ(tokenizer["model"]["vocab"].size(), static_cast<std::size_t>(V));
  for (const char* split : {"train", "reference", "test"})
    EXPECT_TRUE(std::filesystem::exists(*dir_ + "/data/" + split + ".jsonl")) << split;
}

TEST_F(DemoTraining, ReloadedFolderScoresLikeTheTrainedModel) {
  const auto items = read_jsonl(*dir_ + "/data/test.jsonl");
  const auto ev = evaluate_folder(*dir_, items, {}, 1);
  EXPECT_EQ(ev.overall.total, result_->test.overall.total);
  EXPECT_EQ(ev.overall.correct, result_->test.overall.correct);
}

// The routing supervision of the shipped demo model works: at the answer position of its last MoE
// layer the router gives the two experts of the cue's family most of its mass, and it follows the
// cue when the cue is another family's (the shifted condition).
TEST(ShippedDemoModel, RouterAtTheAnswerFollowsTheCue) {
  const std::string dir = std::string(C3PO_SOURCE_DIR) + "/models/demo";
  auto model = OlmoeTrainModel::load(dir);
  auto tok = tokenizer::Tokenizer::load(dir + "/tokenizer.json");
  const auto& families = task_families();
  const int64_t E = model.config().num_experts;
  for (const char* split : {"test", "test-shifted"}) {
    const auto items = read_jsonl(dir + "/data/" + split + ".jsonl");
    double mass = 0;
    for (const auto& it : items) {
      const auto ids32 = tok.encode(render_prompt(it));
      auto tokens = torch::tensor(std::vector<int64_t>(ids32.begin(), ids32.end())).unsqueeze(0);
      torch::NoGradGuard ng;
      const auto out = model.forward(tokens, torch::tensor({tokens.size(1)}));
      const int64_t f = std::find(families.begin(), families.end(), it.cue) - families.begin();
      const auto p = out.router_probs.back()[0][tokens.size(1) - 1];
      mass += (p[2 * f] + p[2 * f + 1]).item<double>();
    }
    mass /= static_cast<double>(items.size());
    EXPECT_GT(mass, 0.5) << split << " (uniform: " << 2.0 / static_cast<double>(E) << ")";
  }
}

TEST_F(DemoTraining, SameSeedSameModel) {
  const auto again = *dir_ + "_again";
  auto o = tiny_options(again);
  o.steps = 40;
  train_demo(o);
  EXPECT_EQ(slurp(again + "/model.safetensors"), slurp(*dir_ + "/model.safetensors"));
  EXPECT_EQ(slurp(again + "/tokenizer.json"), slurp(*dir_ + "/tokenizer.json"));
  EXPECT_EQ(slurp(again + "/data/test.jsonl"), slurp(*dir_ + "/data/test.jsonl"));
  std::filesystem::remove_all(again);
}

TEST(DemoTrainingErrors, BadOptionsAndFoldersNameTheField) {
  auto o = tiny_options("/nonexistent-never/x");
  o.steps = 0;
  try {
    train_demo(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "steps");
  }
  const auto dir = std::filesystem::temp_directory_path() / ("c3po_demo_bad_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  io::write_json_file((dir / "config.json").string(), {{"model_type", "olmoe"}, {"hidden_size", 32}});
  try {
    OlmoeTrainModel::load(dir.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "vocab_size");
    EXPECT_NE(e.file().find("config.json"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace c3po::demo
