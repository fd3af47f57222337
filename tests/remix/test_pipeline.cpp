// The re-mixing pipeline on the shipped demo model: a reference build interrupted and resumed
// gives the same store, and the oracle's override reaches the answer on held-out items.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/registry.h"
#include "eval/harness.h"
#include "model/engine.h"
#include "model/config.h"
#include "io/error.h"
#include "io/safetensors.h"
#include "remix/build.h"
#include "remix/remixer.h"
#include "report/run_data.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace c3po;

namespace {

const std::string kDemo = std::string(C3PO_SOURCE_DIR) + "/models/demo";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string temp_dir(const std::string& name) {
  const auto d = fs::temp_directory_path() / ("c3po-pipeline-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

}  // namespace

TEST(ReferenceBuild, InterruptedAndResumedEqualsUninterrupted) {
  auto model = model::MoeModel::load(kDemo, model::Dtype::F32);
  auto tok = tokenizer::Tokenizer::load(kDemo);
  const auto dir = temp_dir("resume");
  remix::BuildOptions o;
  o.sources.push_back({"generic", kDemo + "/data/reference.jsonl", ""});
  o.limit = 48;
  o.batch = 8;
  o.progress = nullptr;
  o.out = dir + "/whole.store";
  auto whole = remix::build_reference_store(*model, tok, o);
  ASSERT_TRUE(whole.complete);
  EXPECT_EQ(whole.counts.seen, 48);

  o.out = dir + "/resumed.store";
  o.stop_after_items = 24;
  o.checkpoint_seconds = 0;  // checkpoint after every batch
  auto first = remix::build_reference_store(*model, tok, o);
  ASSERT_FALSE(first.complete);
  EXPECT_FALSE(fs::exists(o.out));  // nothing half-written under the final name
  ASSERT_TRUE(fs::exists(o.out + ".partial"));
  o.stop_after_items = 0;
  auto second = remix::build_reference_store(*model, tok, o);
  ASSERT_TRUE(second.complete);
  EXPECT_EQ(second.resumed, 24u);
  EXPECT_FALSE(fs::exists(o.out + ".partial"));

  // Same rows, same bytes of data; only the recorded output path differs in the metadata.
  auto a = remix::ReferenceStore::open(dir + "/whole.store");
  auto b = remix::ReferenceStore::open(o.out);
  EXPECT_EQ(a.size(), b.size());
  EXPECT_EQ(a.counts().correct, b.counts().correct);
  EXPECT_TRUE(torch::equal(a.embeddings(), b.embeddings()));
  EXPECT_TRUE(torch::equal(a.pathways(), b.pathways()));
  EXPECT_TRUE(torch::equal(a.base_loss(), b.base_loss()));
  EXPECT_EQ(slurp(dir + "/whole.store"), slurp(o.out));
}

// A prompt longer than the model's context (512 tokens for the demo model) is truncated from the
// left wherever a letter prompt is made, as the evaluation harness does: the reference build and
// the neighbours' prefill accept what eval accepts.
TEST(LetterPrompt, OverLongItemsAreTruncatedEverywhere) {
  auto model = model::MoeModel::load(kDemo, model::Dtype::F32);
  auto tok = tokenizer::Tokenizer::load(kDemo);
  const auto dir = temp_dir("long");
  std::string question = "Abacus:";
  for (int i = 0; i < 400; ++i) question += " Is 47 + 28 even or odd?";
  {
    std::ofstream f(dir + "/long.jsonl");
    f << nlohmann::json{{"question", question}, {"choices", {"even", "odd"}}, {"answer", 1}}.dump() << "\n";
    f << nlohmann::json{{"question", "Abacus: Is 3 + 4 even or odd?"}, {"choices", {"even", "odd"}}, {"answer", 1}}.dump()
      << "\n";
  }
  ASSERT_GT(tok.encode(question).size(), 600u);
  remix::BuildOptions o;
  o.sources.push_back({"generic", dir + "/long.jsonl", ""});
  o.progress = nullptr;
  o.keep_incorrect = true;
  o.embedder = remix::EmbedderChoice::parse("hash");
  o.out = dir + "/long.store";
  const auto built = remix::build_reference_store(*model, tok, o);
  ASSERT_TRUE(built.complete);
  EXPECT_EQ(built.counts.seen, 2);
  // The neighbour prefill of the long reference (NGD needs its PrefixState).
  auto store = std::make_shared<remix::ReferenceStore>(remix::ReferenceStore::open(o.out));
  remix::RemixSession session(*model, tok, store, remix::RemixOptions{}, remix::CandidatePools{},
                              remix::EmbedderChoice::parse("hash"), 1 << 20);
  const auto refs = session.references({0, 1}, nullptr);
  ASSERT_NE(refs[0].prefix, nullptr);
  EXPECT_EQ(refs[0].prefix->position + refs[0].prefix->tokens, model->config().max_position_embeddings);
}

// A model that computes NaN stops the reference build with the item named, before anything is
// stored (here: the demo model with a NaN in one router row).
TEST(ReferenceBuild, NonFinitePathwaysAreRefused) {
  const auto config = model::load_config(kDemo);
  io::SafetensorsFile file(kDemo + "/model.safetensors");
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& t : file.tensors()) {
    auto x = torch::empty(t.shape, torch::kFloat32);
    std::memcpy(x.data_ptr(), t.data, t.nbytes);
    tensors[t.name] = x;
  }
  tensors["model.layers.2.mlp.gate.weight"][3][0] = std::nanf("");
  auto model = model::MoeModel::from_tensors(config, tensors, model::Dtype::F32);
  auto tok = tokenizer::Tokenizer::load(kDemo);
  const auto dir = temp_dir("nan");
  remix::BuildOptions o;
  o.sources.push_back({"generic", kDemo + "/data/reference.jsonl", ""});
  o.limit = 4;
  o.progress = nullptr;
  o.embedder = remix::EmbedderChoice::parse("hash");
  o.out = dir + "/nan.store";
  try {
    remix::build_reference_store(*model, tok, o);
    FAIL() << "a store of NaN pathways was built";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reference.jsonl:1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not finite"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(o.out));
}

TEST(Oracle, OverrideReachesTheAnswerOnHeldOutItems) {
  auto model = model::MoeModel::load(kDemo, model::Dtype::F32);
  auto tok = tokenizer::Tokenizer::load(kDemo);
  eval::EvalSettings s;
  s.model = kDemo;
  s.tasks.push_back({"generic", kDemo + "/data/test.jsonl", ""});
  s.limit = 60;
  s.record_timing = false;
  s.dtype = "f32";
  remix::RemixOptions opt;
  opt.opt.lr = 0.5;  // a strong optimiser: the point is reachability, not the paper's default
  opt.opt.steps = 10;
  auto session = std::make_shared<remix::RemixSession>(*model, tok, nullptr, opt, remix::CandidatePools{},
                                                        remix::EmbedderChoice::parse("hash"), 1 << 20);
  std::vector<std::unique_ptr<eval::ItemMethod>> methods;
  methods.push_back(std::make_unique<remix::RemixMethod>(session, remix::MethodKind::Oracle));
  eval::RunControl control;
  control.progress = nullptr;
  auto run = eval::run_eval(s, *model, tok, methods, control);
  ASSERT_TRUE(run.complete);
  int base_right = 0, oracle_right = 0, lost = 0;
  for (const auto& rec : run.records[0]) {
    const int gold = rec["gold"].get<int>();
    const bool b = rec["methods"]["base"]["prediction"].get<int>() == gold;
    const bool o = rec["methods"]["oracle"]["prediction"].get<int>() == gold;
    base_right += b;
    oracle_right += o;
    lost += b && !o;
    // The oracle minimises its own item's letter loss and keeps the best point, so the gold
    // letter's probability never falls (an item can still flip to wrong when another letter rises
    // more: that is allowed, and seen at lr 0.5 on 3 of the 600 test items).
    const double p0 = rec["methods"]["base"]["letter_probs"][gold].get<double>();
    const double p1 = rec["methods"]["oracle"]["letter_probs"][gold].get<double>();
    EXPECT_GE(p1, p0 - 1e-6) << rec["id"];
  }
  EXPECT_GT(oracle_right, base_right + 5) << "base " << base_right << ", oracle " << oracle_right << " of 60";
  EXPECT_LT(lost, oracle_right - base_right);
}

// The typed trace of a re-mixing method reaches items.jsonl in the form the report reads: the
// neighbours (with their dataset), the steps, the experts per critical layer, the re-runs.
TEST(Trace, ItemsJsonlCarryWhatTheReportReads) {
  auto model = model::MoeModel::load(kDemo, model::Dtype::F32);
  auto tok = tokenizer::Tokenizer::load(kDemo);
  const auto dir = temp_dir("trace");
  remix::BuildOptions b;
  b.sources.push_back({"generic", kDemo + "/data/reference.jsonl", ""});
  b.limit = 40;
  b.batch = 8;
  b.progress = nullptr;
  b.embedder = remix::EmbedderChoice::parse("hash");
  b.out = dir + "/ref.store";
  ASSERT_TRUE(remix::build_reference_store(*model, tok, b).complete);
  auto store = std::make_shared<remix::ReferenceStore>(remix::ReferenceStore::open(b.out));

  eval::EvalSettings s;
  s.model = kDemo;
  s.tasks.push_back({"generic", kDemo + "/data/test.jsonl", ""});
  s.limit = 4;
  s.record_timing = false;
  s.dtype = "f32";
  s.out_dir = dir + "/run";
  remix::RemixOptions opt;
  opt.opt.steps = 3;
  opt.neighbours.k = 5;
  auto session = std::make_shared<remix::RemixSession>(*model, tok, store, opt, remix::CandidatePools{},
                                                        remix::EmbedderChoice::parse("hash"), 1 << 24);
  std::vector<std::unique_ptr<eval::ItemMethod>> methods;
  methods.push_back(remix::make_method(session, remix::MethodKind::Ngd));
  eval::RunControl control;
  control.progress = nullptr;
  ASSERT_TRUE(eval::run_eval(s, *model, tok, methods, control).complete);

  const auto run = report::read_run(s.out_dir);
  ASSERT_EQ(run.items.size(), 4u);
  const auto critical = opt.layers.resolve(model->num_moe_layers());
  for (const auto& item : run.items) {
    const auto& ngd = item.methods.at("ngd");
    ASSERT_TRUE(ngd.neighbours.has_value()) << item.id;
    EXPECT_EQ(ngd.neighbours->size(), 5u) << item.id;
    for (const auto& n : *ngd.neighbours) {
      EXPECT_EQ(n.task, "generic") << item.id;
      EXPECT_GE(store->find("generic", n.id), 0) << n.id;
      EXPECT_TRUE(n.weight.has_value());
    }
    // One re-run per neighbour per step, and the answer's own.
    EXPECT_EQ(ngd.tail_reruns, std::optional<long long>(opt.opt.steps * 5 + 1)) << item.id;
    ASSERT_EQ(ngd.experts_before.size(), critical.size());
    ASSERT_EQ(ngd.experts_after.size(), critical.size());
    for (std::size_t c = 0; c < critical.size(); ++c) {
      EXPECT_EQ(ngd.experts_before[c].moe_layer, critical[c]);
      EXPECT_EQ(ngd.experts_before[c].experts.size(), static_cast<std::size_t>(model->top_k()));
    }
    EXPECT_EQ(ngd.losses.size(), static_cast<std::size_t>(opt.opt.steps)) << item.id;
  }
}
