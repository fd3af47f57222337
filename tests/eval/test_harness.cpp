// The harness end to end on a tiny checkpoint and the first items of real benchmark files,
// against independent computations from the engine's own full-vocabulary / all-position logits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "data/prompt.h"
#include "data/registry.h"
#include "eval/harness.h"
#include "fixture.h"
#include "io/error.h"

namespace c3po::eval {
namespace {

using nlohmann::json;

const model::MoeModel& tiny_model() {
  static const auto m = model::MoeModel::load(test::letter_model_dir(), model::Dtype::F32);
  return *m;
}
const tokenizer::Tokenizer& tiny_tokenizer() {
  static const auto t = tokenizer::Tokenizer::load(test::letter_model_dir());
  return t;
}

EvalSettings base_settings() {
  EvalSettings s;
  s.model = test::letter_model_dir();
  s.dtype = "f32";
  s.record_timing = false;
  return s;
}

RunControl quiet() {
  RunControl c;
  c.progress = nullptr;
  return c;
}

std::vector<double> doubles(const torch::Tensor& t) {
  auto d = t.to(torch::kFloat64).contiguous();
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

// Letter logits the slow, independent way: full-vocabulary forward of the prompt alone, the
// letter rows looked up by their token strings.
std::vector<double> full_vocab_letter_logits(const data::McItem& item) {
  const auto& tok = tiny_tokenizer();
  const auto ids32 = tok.encode(data::render_letter_prompt(item));
  const std::vector<int64_t> ids(ids32.begin(), ids32.end());
  const auto logits = tiny_model().forward({ids}).logits[0];
  EXPECT_EQ(logits.size(0), tiny_model().config().vocab_size);
  std::vector<double> out;
  for (std::size_t k = 0; k < item.choices.size(); ++k) {
    const auto id = tok.token_to_id(std::string("\xC4\xA0") + static_cast<char>('A' + k));
    EXPECT_TRUE(id.has_value());
    out.push_back(logits[*id].item<double>());
  }
  return out;
}

TEST(EvalHarness, LetterPredictionsEqualFullVocabularyArgmax) {
  auto s = base_settings();
  s.tasks = {{"arc_challenge", test::arc_dev(), ""}};
  s.limit = 8;
  s.batch = 3;
  const auto run = run_eval(s, tiny_model(), tiny_tokenizer(), {}, quiet());
  ASSERT_TRUE(run.complete);
  ASSERT_EQ(run.records[0].size(), 8u);
  const auto tasks = load_tasks(s);
  std::set<int> predictions;
  for (std::size_t i = 0; i < 8; ++i) {
    const auto& rec = run.records[0][i];
    const auto& item = tasks[0].items[i];
    EXPECT_EQ(rec["id"], item.id);
    EXPECT_EQ(rec["gold"], item.gold);
    const auto expected = full_vocab_letter_logits(item);
    const int argmax = static_cast<int>(std::max_element(expected.begin(), expected.end()) - expected.begin());
    EXPECT_EQ(rec["methods"]["base"]["prediction"].get<int>(), argmax) << item.id;
    predictions.insert(argmax);
    const auto probs = rec["methods"]["base"]["letter_probs"].get<std::vector<double>>();
    ASSERT_EQ(probs.size(), expected.size());
    const double mx = *std::max_element(expected.begin(), expected.end());
    double z = 0;
    for (double v : expected) z += std::exp(v - mx);
    for (std::size_t k = 0; k < probs.size(); ++k) EXPECT_NEAR(probs[k], std::exp(expected[k] - mx) / z, 1e-5);
  }
  EXPECT_GT(predictions.size(), 1u) << "a degenerate model would not test the argmax";
  // results: acc from the same records
  std::size_t correct = 0;
  for (const auto& r : run.records[0]) correct += r["methods"]["base"]["prediction"] == r["gold"];
  EXPECT_DOUBLE_EQ(run.results["tasks"][0]["methods"][0]["acc"].get<double>(), correct / 8.0);
  EXPECT_EQ(run.results["tasks"][0]["protocol"], "letter");
  EXPECT_EQ(run.results["model"]["fingerprint"], tiny_model().fingerprint());
}

TEST(EvalHarness, BatchedEqualsBatchSizeOne) {
  for (Protocol protocol : {Protocol::Letter, Protocol::Loglik}) {
    auto s = base_settings();
    s.protocol = protocol;
    s.tasks = {{"arc_challenge", test::arc_dev(), ""}, {"hellaswag", test::shared_data("hellaswag/hellaswag_val_full.txt"), ""}};
    s.limit = 4;
    s.batch = 1;
    const auto one = run_eval(s, tiny_model(), tiny_tokenizer(), {}, quiet());
    s.batch = 7;
    const auto many = run_eval(s, tiny_model(), tiny_tokenizer(), {}, quiet());
    const char* key = protocol == Protocol::Letter ? "letter_probs" : "loglik";
    for (std::size_t t = 0; t < 2; ++t)
      for (std::size_t i = 0; i < 4; ++i) {
        const auto& a = one.records[t][i]["methods"]["base"];
        const auto& b = many.records[t][i]["methods"]["base"];
        EXPECT_EQ(a["prediction"], b["prediction"]);
        const auto va = a[key].get<std::vector<double>>(), vb = b[key].get<std::vector<double>>();
        ASSERT_EQ(va.size(), vb.size());
        for (std::size_t k = 0; k < va.size(); ++k) EXPECT_NEAR(va[k], vb[k], 1e-4 * std::max(1.0, std::abs(va[k])));
      }
    EXPECT_EQ(one.results["tasks"], many.results["tasks"]);
  }
}

// Sum of log-softmax over the continuation, from the engine's full all-position logits of
// whole[:-1], for request k of an item (lm-eval's split, written out here again).
double hand_loglik(const data::LoglikRequest& raw) {
  const auto& tok = tiny_tokenizer();
  const data::LoglikRequest r = data::encode_pair_split(raw);
  const auto whole = tok.encode(r.context + r.continuation);
  const auto ctx = tok.encode(r.context);
  std::vector<int64_t> input(whole.begin(), whole.end() - 1);
  model::ForwardOptions o;
  o.all_positions = true;
  const auto logits = tiny_model().forward({input}, o).logits[0].to(torch::kFloat64);
  double sum = 0;
  for (std::size_t j = ctx.size(); j < whole.size(); ++j) {
    const auto row = torch::log_softmax(logits[static_cast<int64_t>(j - 1)], 0);
    sum += row[whole[j]].item<double>();
  }
  return sum;
}

TEST(EvalHarness, LoglikSumsEqualHandComputation) {
  struct Case {
    std::string task, path;
    std::size_t items;
  };
  const std::vector<Case> cases{{"arc_challenge", test::arc_dev(), 2},
                                {"winogrande", test::shared_data("winogrande/dev.jsonl"), 2},
                                {"hellaswag", test::shared_data("hellaswag/hellaswag_val_full.txt"), 1},
                                {"boolq", test::shared_data("boolq/val.jsonl"), 1}};
  for (const auto& c : cases) {
    auto s = base_settings();
    s.protocol = Protocol::Loglik;
    s.tasks = {{c.task, c.path, ""}};
    s.limit = c.items;
    s.batch = 3;
    const auto run = run_eval(s, tiny_model(), tiny_tokenizer(), {}, quiet());
    ASSERT_TRUE(run.complete) << c.task;
    const auto tasks = load_tasks(s);
    for (std::size_t i = 0; i < c.items; ++i) {
      const auto li = data::render_loglik(tasks[0].items[i]);
      const auto& base = run.records[0][i]["methods"]["base"];
      const auto lls = base["loglik"].get<std::vector<double>>();
      ASSERT_EQ(lls.size(), li.requests.size()) << c.task;
      std::vector<double> hand;
      for (std::size_t k = 0; k < li.requests.size(); ++k) {
        hand.push_back(hand_loglik(li.requests[k]));
        EXPECT_NEAR(lls[k], hand[k], 1e-4 * std::max(1.0, std::abs(hand[k]))) << c.task << " item " << i << " request " << k;
      }
      const int acc = static_cast<int>(std::max_element(hand.begin(), hand.end()) - hand.begin());
      EXPECT_EQ(base["prediction"].get<int>(), acc);
      if (li.reports_acc_norm) {
        std::vector<double> normed;
        for (std::size_t k = 0; k < hand.size(); ++k) normed.push_back(hand[k] / static_cast<double>(li.norm_lengths[k]));
        EXPECT_EQ(base["prediction_norm"].get<int>(),
                  static_cast<int>(std::max_element(normed.begin(), normed.end()) - normed.begin()));
        EXPECT_TRUE(run.results["tasks"][0]["methods"][0].contains("acc_norm"));
      } else {
        EXPECT_FALSE(base.contains("prediction_norm"));
        EXPECT_FALSE(run.results["tasks"][0]["methods"][0].contains("acc_norm"));
      }
    }
  }
}

// Grouped scoring (an item's choices share their prefix, run once by the engine) against each
// request scored by itself, on real items whose choices share a context (ARC, HellaSwag) or only
// the part of the sentence before the blank (WinoGrande partial scoring).
TEST(EvalHarness, GroupedLoglikScoringEqualsEachRequestAlone) {
  const auto& cfg = tiny_model().config();
  const auto prefix = prefix_token_id(tiny_tokenizer(), cfg.bos_token_id, cfg.eos_token_ids);
  const int64_t max_length = cfg.max_position_embeddings;
  std::vector<std::vector<LoglikTokens>> groups;
  for (const auto& [task, path] : std::vector<std::pair<std::string, std::string>>{
           {"arc_challenge", test::arc_dev()},
           {"winogrande", test::shared_data("winogrande/dev.jsonl")},
           {"hellaswag", test::shared_data("hellaswag/hellaswag_val_full.txt")}}) {
    auto s = base_settings();
    s.tasks = {{task, path, ""}};
    s.limit = 3;
    const auto tasks = load_tasks(s);
    for (const auto& item : tasks[0].items) {
      groups.push_back(encode_loglik_item(tiny_tokenizer(), item, prefix).requests);
      std::vector<model::ScoreRequest> inputs;
      for (const auto& r : groups.back()) inputs.push_back(loglik_input(r, max_length));
      // The shared prefix ends where the choices (or, for WinoGrande, the contexts) first differ.
      const int64_t shared = model::shared_prefix_length(inputs);
      EXPECT_GT(shared, 0) << task;
      if (task != "winogrande") {
        EXPECT_GE(shared, static_cast<int64_t>(groups.back()[0].context.size()) - 1) << task;
      }
      const FlopsModel fm = flops_model(cfg, tiny_model().active_parameter_count());
      double alone = 0;
      for (const auto& q : inputs) alone += loglik_group_flops(fm, {q});
      EXPECT_LT(loglik_group_flops(fm, inputs), alone) << task;
    }
  }
  for (std::size_t batch : {1, 3, 64}) {
    const auto grouped = score_continuation_groups(tiny_model(), groups, batch, max_length);
    ASSERT_EQ(grouped.size(), groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const auto each = score_continuations(tiny_model(), groups[g], 1, max_length);
      ASSERT_EQ(grouped[g].size(), each.size());
      for (std::size_t r = 0; r < each.size(); ++r) {
        EXPECT_NEAR(grouped[g][r].loglik, each[r].loglik, 1e-4 * std::max(1.0, std::abs(each[r].loglik)))
            << "group " << g << " request " << r << " batch " << batch;
        EXPECT_EQ(grouped[g][r].is_greedy, each[r].is_greedy);
      }
    }
  }
}

std::size_t count_lines(const std::string& path) {
  const std::string t = test::read_text(path);
  return static_cast<std::size_t>(std::count(t.begin(), t.end(), '\n'));
}

TEST(EvalHarness, InterruptedAndResumedRunWritesIdenticalResults) {
  for (Protocol protocol : {Protocol::Letter, Protocol::Loglik}) {
    auto s = base_settings();
    s.protocol = protocol;
    s.tasks = {{"arc_challenge", test::arc_dev(), ""},
               {"boolq", test::shared_data("boolq/val.jsonl"), ""},
               {"winogrande", test::shared_data("winogrande/dev.jsonl"), ""},
               {"hellaswag", test::shared_data("hellaswag/hellaswag_val_full.txt"), ""}};
    s.limit = 2;
    s.shuffle_seed = 11;
    s.batch = 3;
    const std::string whole_dir = test::make_temp_dir("whole"), parts_dir = test::make_temp_dir("parts");

    s.out_dir = whole_dir;
    const auto whole = run_eval(s, tiny_model(), tiny_tokenizer(), {}, quiet());
    ASSERT_TRUE(whole.complete);

    s.out_dir = parts_dir;
    s.batch = 2;  // the batch size may change between the parts
    RunControl stop_early = quiet();
    stop_early.stop_after_items = 3;
    const auto first = run_eval(s, tiny_model(), tiny_tokenizer(), {}, stop_early);
    EXPECT_FALSE(first.complete);
    EXPECT_EQ(first.done, 4u);  // the batch in flight finishes
    EXPECT_FALSE(std::filesystem::exists(parts_dir + "/results.json"));
    EXPECT_EQ(count_lines(parts_dir + "/items.jsonl"), 4u);

    // A crash in the middle of a write leaves a half line: it is cut off with a notice.
    const std::string whole_lines = test::read_text(parts_dir + "/items.jsonl");
    {
      std::ofstream torn(parts_dir + "/items.jsonl", std::ios::app | std::ios::binary);
      torn << whole_lines.substr(0, whole_lines.find('\n') / 2);
    }
    std::atomic<bool> stop{true};  // as if Ctrl-C came during the first batch
    RunControl interrupted = quiet();
    interrupted.stop = &stop;
    char* notice = nullptr;
    std::size_t notice_size = 0;
    interrupted.progress = open_memstream(&notice, &notice_size);
    const auto second = run_eval(s, tiny_model(), tiny_tokenizer(), {}, interrupted);
    std::fclose(interrupted.progress);
    EXPECT_THAT(std::string(notice, notice_size),
                ::testing::HasSubstr(parts_dir + "/items.jsonl:5: dropped a half-written last line ("));
    std::free(notice);
    EXPECT_EQ(test::read_text(parts_dir + "/items.jsonl"), whole_lines);
    EXPECT_FALSE(second.complete);
    EXPECT_EQ(second.resumed, 4u);

    const auto rest = run_eval(s, tiny_model(), tiny_tokenizer(), {}, quiet());
    ASSERT_TRUE(rest.complete);
    EXPECT_EQ(rest.resumed, 4u);
    EXPECT_EQ(count_lines(parts_dir + "/items.jsonl"), 8u);
    EXPECT_EQ(test::read_text(parts_dir + "/results.json"), test::read_text(whole_dir + "/results.json"));
    EXPECT_EQ(rest.markdown, whole.markdown);

    // Running again finds everything done and writes the same file.
    const auto again = run_eval(s, tiny_model(), tiny_tokenizer(), {}, quiet());
    EXPECT_EQ(again.resumed, 8u);
    EXPECT_EQ(test::read_text(parts_dir + "/results.json"), test::read_text(whole_dir + "/results.json"));

    // Other settings are refused, naming the difference.
    s.shuffle_seed = 12;
    try {
      run_eval(s, tiny_model(), tiny_tokenizer(), {}, quiet());
      ADD_FAILURE() << "other settings accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("shuffle_seed: stored 11, now 12"), std::string::npos) << e.what();
    }
    std::filesystem::remove_all(whole_dir);
    std::filesystem::remove_all(parts_dir);
  }
}

// A method that re-answers every item from its prefix state with the engine's tail re-run
// (no override: must agree with the base pass), and checks what the context carries.
class TailRerun : public ItemMethod {
 public:
  std::string name() const override { return "tail"; }
  void prepare(model::ForwardOptions& o) override {
    o.keep_prefix_from = 1;
    o.embed_layer = 2;
  }
  MethodOutcome run(const ItemContext& ctx) override {
    const auto& m = tiny_model();
    EXPECT_NE(ctx.prefix, nullptr);
    EXPECT_EQ(ctx.pathway.sizes(), (std::vector<int64_t>{m.num_moe_layers(), m.num_experts()}));
    EXPECT_NEAR(ctx.pathway.sum(1).sub(1).abs().max().item<double>(), 0.0, 1e-5);
    EXPECT_EQ(ctx.embedding.sizes(), (std::vector<int64_t>{m.config().hidden_size}));
    EXPECT_EQ(ctx.letter_ids.size(), ctx.item->choices.size());
    EXPECT_EQ(ctx.prompt, data::render_letter_prompt(*ctx.item));
    const auto logits = m.tail(*ctx.prefix, model::RouteOverride{}, ctx.letter_ids);
    EXPECT_LT((logits - ctx.letter_logits).abs().max().item<double>(), 1e-4);
    MethodOutcome o;
    const auto v = doubles(logits);
    o.prediction = static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
    o.letter_probs = softmax(v);
    o.flops = 1.0;
    o.details = {{"prefix_position", ctx.prefix->position}};
    ++calls;
    return o;
  }
  int calls = 0;
};

// The upper bound: answers with the gold letter.
class Oracle : public ItemMethod {
 public:
  std::string name() const override { return "oracle"; }
  MethodOutcome run(const ItemContext& ctx) override {
    MethodOutcome o;
    o.prediction = ctx.item->gold;
    o.letter_probs.assign(ctx.item->choices.size(), 0.0);
    o.letter_probs[static_cast<std::size_t>(ctx.item->gold)] = 1.0;
    return o;
  }
};

class NanMethod : public ItemMethod {
 public:
  std::string name() const override { return "nan"; }
  MethodOutcome run(const ItemContext& ctx) override {
    MethodOutcome o;
    o.prediction = 0;
    o.letter_probs.assign(ctx.item->choices.size(), std::nan(""));
    return o;
  }
};

// A method that answers from NaN probabilities stops the run with the item named; nothing is written
// for that item.
TEST(EvalHarness, NonFiniteAnswersAreRefused) {
  auto s = base_settings();
  s.tasks = {{"arc_challenge", test::arc_dev(), ""}};
  s.limit = 2;
  std::vector<std::unique_ptr<ItemMethod>> methods;
  methods.push_back(std::make_unique<NanMethod>());
  try {
    run_eval(s, tiny_model(), tiny_tokenizer(), methods, quiet());
    FAIL() << "a NaN answer was recorded";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("method nan"), std::string::npos) << m;
    EXPECT_NE(m.find("non-finite"), std::string::npos) << m;
    EXPECT_NE(m.find("ARC-Challenge-Dev.jsonl"), std::string::npos) << m;
  }
}

TEST(EvalHarness, ExtraMethodsRunPerItemAndAreReportedAgainstBase) {
  auto s = base_settings();
  s.tasks = {{"arc_challenge", test::arc_dev(), ""}};
  s.limit = 10;
  s.batch = 4;
  std::vector<std::unique_ptr<ItemMethod>> methods;
  methods.push_back(std::make_unique<TailRerun>());
  methods.push_back(std::make_unique<Oracle>());
  const auto* tail = static_cast<const TailRerun*>(methods[0].get());
  const auto run = run_eval(s, tiny_model(), tiny_tokenizer(), methods, quiet());
  ASSERT_TRUE(run.complete);
  EXPECT_EQ(tail->calls, 10);
  std::size_t base_correct = 0;
  for (const auto& r : run.records[0]) {
    EXPECT_EQ(r["methods"]["tail"]["prediction"], r["methods"]["base"]["prediction"]);
    EXPECT_EQ(r["methods"]["tail"]["details"]["prefix_position"].get<int64_t>() + 1, r["n_tokens"].get<int64_t>());
    EXPECT_EQ(r["methods"]["oracle"]["prediction"], r["gold"]);
    base_correct += r["methods"]["base"]["prediction"] == r["gold"];
  }
  const auto& ms = run.results["tasks"][0]["methods"];
  ASSERT_EQ(ms.size(), 3u);
  EXPECT_EQ(ms[0]["method"], "base");
  EXPECT_EQ(ms[1]["method"], "tail");
  EXPECT_EQ(ms[2]["method"], "oracle");
  EXPECT_DOUBLE_EQ(ms[2]["acc"].get<double>(), 1.0);
  EXPECT_EQ(ms[2]["flips"]["wrong_to_right"].get<std::size_t>(), 10 - base_correct);
  EXPECT_DOUBLE_EQ(ms[1]["flops_per_item"].get<double>(), 1.0);
  ASSERT_LT(base_correct, 10u);
  EXPECT_DOUBLE_EQ(ms[1]["gap_closed"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(ms[2]["gap_closed"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(ms[2]["change_vs_base"].get<double>(), 1.0 - base_correct / 10.0);
  EXPECT_EQ(run.results["settings"]["methods"], json({"base", "tail", "oracle"}));
  EXPECT_NE(run.markdown.find("| arc_challenge | oracle | 10 | 100.00 |"), std::string::npos) << run.markdown;

  // Methods need the letter protocol.
  s.protocol = Protocol::Loglik;
  EXPECT_THROW(run_eval(s, tiny_model(), tiny_tokenizer(), methods, quiet()), Error);
}

TEST(EvalHarness, LetterProtocolRefusesLettersThatAreNotOneToken) {
  // The original tiny tokenizer has no "Ġ A" merge: " A" is two tokens.
  const auto tok = tokenizer::Tokenizer::load(std::string(C3PO_SOURCE_DIR) + "/tests/model/data/olmoe");
  EvalSettings s;
  s.tasks = {{"arc_challenge", test::arc_dev(), ""}};
  s.limit = 1;
  const auto tasks = load_tasks(s);
  try {
    encode_letter_request(tok, tasks[0].items[0], 0);
    FAIL() << "two-token letter accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("answer letter ' A'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ARC-Challenge-Dev.jsonl:1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\xC4\xA0"), std::string::npos) << msg;
  }
  // The letter ids the fixture tokenizer gives are the "ĠA".."ĠD" tokens.
  const auto ids = letter_token_ids(tiny_tokenizer(), "Question: x\nAnswer:", 4, "test");
  for (std::size_t k = 0; k < 4; ++k)
    EXPECT_EQ(ids[k], *tiny_tokenizer().token_to_id(std::string("\xC4\xA0") + static_cast<char>('A' + k)));
}

TEST(EvalHarness, LongInputsLoseTheirBeginningAsInLmEval) {
  EvalSettings s;
  s.tasks = {{"arc_challenge", test::arc_dev(), ""}};
  s.limit = 1;
  const auto item = load_tasks(s)[0].items[0];
  const auto full = encode_letter_request(tiny_tokenizer(), item, 0);
  const auto cut = encode_letter_request(tiny_tokenizer(), item, 50);
  ASSERT_GT(full.ids.size(), 50u);
  EXPECT_FALSE(full.truncated);
  EXPECT_TRUE(cut.truncated);
  EXPECT_EQ(cut.ids, std::vector<int64_t>(full.ids.end() - 50, full.ids.end()));
  EXPECT_EQ(cut.letter_ids, full.letter_ids);

  // loglik: the model reads (context + continuation)[-(max_length + 1):][:-1].
  LoglikTokens req;
  for (int64_t i = 0; i < 40; ++i) req.context.push_back((i * 37) % 300);
  req.continuation = {65, 66, 67, 68, 69};
  const int64_t max_length = 20;
  const auto got = score_continuations(tiny_model(), {req}, 4, max_length);
  std::vector<int64_t> whole = req.context;
  whole.insert(whole.end(), req.continuation.begin(), req.continuation.end());
  const std::vector<int64_t> input(whole.end() - (max_length + 1), whole.end() - 1);
  model::ForwardOptions o;
  o.all_positions = true;
  const auto logits = tiny_model().forward({input}, o).logits[0].to(torch::kFloat64);
  double sum = 0;
  for (int64_t j = 0; j < 5; ++j) sum += torch::log_softmax(logits[max_length - 5 + j], 0)[req.continuation[j]].item<double>();
  EXPECT_NEAR(got[0].loglik, sum, 1e-6 * std::abs(sum));
  req.continuation.assign(21, 65);
  EXPECT_THROW(score_continuations(tiny_model(), {req}, 4, max_length), Error);
}

TEST(EvalHarness, DtypeMismatchAndZeroBatchAreRefused) {
  auto s = base_settings();
  s.tasks = {{"arc_challenge", test::arc_dev(), ""}};
  s.dtype = "bf16";
  EXPECT_THROW(run_eval(s, tiny_model(), tiny_tokenizer(), {}, quiet()), Error);
  s.dtype = "f32";
  s.batch = 0;
  EXPECT_THROW(run_eval(s, tiny_model(), tiny_tokenizer(), {}, quiet()), Error);
}

}  // namespace
}  // namespace c3po::eval
