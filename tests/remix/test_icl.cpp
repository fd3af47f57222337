// The icl baseline (docs/method.md section 6): the neighbours NGD would use, rendered as solved
// demonstrations before the test prompt, most similar last, in both protocols. Each record is
// re-built here from its recorded demonstrations and scored by a plain forward.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>

#include "data/prompt.h"
#include "data/registry.h"
#include "eval/harness.h"
#include "io/error.h"
#include "model/engine.h"
#include "remix/build.h"
#include "remix/icl.h"
#include "remix/remixer.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace c3po;

namespace {

const std::string kDemo = std::string(C3PO_SOURCE_DIR) + "/models/demo";

struct World {
  std::unique_ptr<model::MoeModel> model = model::MoeModel::load(kDemo, model::Dtype::F32);
  tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(kDemo);
  std::string store_path;
  std::map<std::string, data::McItem> references;  // by id

  World() {
    const auto dir = fs::temp_directory_path() / ("c3po-icl-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    store_path = (dir / "ref.store").string();
    remix::BuildOptions o;
    o.sources.push_back({"generic", kDemo + "/data/reference.jsonl", ""});
    o.limit = 80;
    o.progress = nullptr;
    o.embedder = remix::EmbedderChoice::parse("hash");
    o.out = store_path;
    fs::remove(store_path);
    remix::build_reference_store(*model, tok, o);
    auto store = remix::ReferenceStore::open(store_path);
    for (int64_t i = 0; i < store.size(); ++i) references[store.item(i).id] = store.item(i);
  }
  std::vector<std::unique_ptr<eval::ItemMethod>> icl() const {
    remix::RemixOptions opt;
    opt.neighbours.k = 3;
    auto store = std::make_shared<remix::ReferenceStore>(remix::ReferenceStore::open(store_path));
    auto session = std::make_shared<remix::RemixSession>(*model, tok, store, opt, remix::CandidatePools{},
                                                          remix::EmbedderChoice::parse("hash"), 1 << 20);
    std::vector<std::unique_ptr<eval::ItemMethod>> m;
    m.push_back(remix::make_method(session, remix::MethodKind::Icl));
    return m;
  }
  eval::EvalRun run(eval::Protocol protocol, bool with_icl) const {
    eval::EvalSettings s;
    s.model = kDemo;
    s.tasks.push_back({"generic", kDemo + "/data/test.jsonl", ""});
    s.limit = 12;
    s.record_timing = false;
    s.dtype = "f32";
    s.protocol = protocol;
    eval::RunControl control;
    control.progress = nullptr;
    auto methods = with_icl ? icl() : std::vector<std::unique_ptr<eval::ItemMethod>>{};
    return eval::run_eval(s, *model, tok, methods, control);
  }
  // The demonstrations of a record, in the order the method put them, checked most similar last.
  std::vector<data::McItem> demonstrations(const nlohmann::json& rec) const {
    std::vector<data::McItem> out;
    double last = -2;
    for (const auto& d : rec["methods"]["icl"]["details"]["demonstrations"]) {
      EXPECT_GE(d["similarity"].get<double>(), last) << "most similar last";
      last = d["similarity"].get<double>();
      out.push_back(references.at(d["id"].get<std::string>()));
    }
    EXPECT_EQ(out.size(), 3u);
    return out;
  }
};

World& world() {
  static World w;
  return w;
}

data::McItem test_item(const nlohmann::json& rec) {
  static const auto r = data::read_task("generic", kDemo + "/data/test.jsonl");
  return r.items.at(rec["index"].get<std::size_t>());
}

}  // namespace

TEST(Icl, LetterDemonstrationIsThePromptAndItsGoldLetter) {
  data::McItem m;
  m.task = "generic";
  m.question = "Is 3 odd?";
  m.choices = {"yes", "no"};
  m.gold = 1;
  EXPECT_EQ(data::render_letter_demonstration(m), "Question: Is 3 odd?\nA. yes\nB. no\nAnswer: B");
  m.gold = -1;
  EXPECT_THROW(data::render_letter_demonstration(m), Error);
}

TEST(Icl, LetterProtocolAnswersFromTheDemonstrationsAndThePrompt) {
  auto& w = world();
  const auto run = w.run(eval::Protocol::Letter, true);
  ASSERT_TRUE(run.complete);
  int differs = 0;
  for (const auto& rec : run.records[0]) {
    std::string preamble;
    for (const auto& d : w.demonstrations(rec)) preamble += data::render_letter_demonstration(d) + "\n\n";
    const auto item = test_item(rec);
    ASSERT_EQ(item.id, rec["id"].get<std::string>());
    const auto prompt = preamble + data::render_letter_prompt(item);
    const auto ids32 = w.tok.encode(prompt);
    std::vector<int64_t> ids(ids32.begin(), ids32.end());
    std::vector<int64_t> letters;
    for (const auto& l : data::answer_letters(item.choices.size())) letters.push_back(w.tok.encode(prompt + l, false).back());
    model::ForwardOptions fo;
    fo.vocab_rows = letters;
    const auto probs = torch::softmax(w.model->forward({ids}, fo).logits[0].to(torch::kDouble), 0);
    const auto& got = rec["methods"]["icl"]["letter_probs"];
    for (std::size_t j = 0; j < letters.size(); ++j)
      EXPECT_NEAR(got[j].get<double>(), probs[static_cast<int64_t>(j)].item<double>(), 1e-6);
    differs += rec["methods"]["icl"]["letter_probs"] != rec["methods"]["base"]["letter_probs"];
    EXPECT_GT(rec["methods"]["icl"]["flops"].get<double>(), rec["methods"]["base"]["flops"].get<double>());
  }
  EXPECT_GT(differs, 0);
}

TEST(Icl, LoglikProtocolScoresEveryChoiceAfterTheDemonstrations) {
  auto& w = world();
  const auto plain = w.run(eval::Protocol::Loglik, false);
  const auto run = w.run(eval::Protocol::Loglik, true);
  ASSERT_TRUE(run.complete);
  const auto& cfg = w.model->config();
  const auto prefix = eval::prefix_token_id(w.tok, cfg.bos_token_id, cfg.eos_token_ids);
  for (std::size_t i = 0; i < run.records[0].size(); ++i) {
    const auto& rec = run.records[0][i];
    // The base scores do not depend on whether icl runs.
    EXPECT_EQ(rec["methods"]["base"]["loglik"], plain.records[0][i]["methods"]["base"]["loglik"]);
    const auto reqs = eval::encode_loglik_item(w.tok, test_item(rec), prefix, w.demonstrations(rec));
    ASSERT_NE(reqs.item.requests[0].context.find("\n\n"), std::string::npos);
    const auto scores = eval::score_continuations(*w.model, reqs.requests, 8, cfg.max_position_embeddings);
    const auto& got = rec["methods"]["icl"]["loglik"];
    ASSERT_EQ(got.size(), scores.size());
    for (std::size_t j = 0; j < scores.size(); ++j) EXPECT_NEAR(got[j].get<double>(), scores[j].loglik, 1e-4);
  }
  ASSERT_TRUE(run.results["tasks"][0]["methods"][1]["method"] == "icl");
}

TEST(Icl, RemixMethodsAreStillRefusedInTheLoglikProtocol) {
  auto& w = world();
  eval::EvalSettings s;
  s.model = kDemo;
  s.tasks.push_back({"generic", kDemo + "/data/test.jsonl", ""});
  s.limit = 2;
  s.dtype = "f32";
  s.protocol = eval::Protocol::Loglik;
  auto store = std::make_shared<remix::ReferenceStore>(remix::ReferenceStore::open(w.store_path));
  auto session = std::make_shared<remix::RemixSession>(*w.model, w.tok, store, remix::RemixOptions{},
                                                        remix::CandidatePools{}, remix::EmbedderChoice::parse("hash"),
                                                        1 << 20);
  std::vector<std::unique_ptr<eval::ItemMethod>> m;
  m.push_back(remix::make_method(session, remix::MethodKind::Ngd));
  eval::RunControl control;
  control.progress = nullptr;
  EXPECT_THROW(eval::run_eval(s, *w.model, w.tok, m, control), Error);
}
