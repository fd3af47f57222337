// Model-free parts of the harness: aggregation (hand-computed), Wilson interval (hand-computed),
// the run folder (resume bookkeeping, refusal of other settings), shuffling, FLOPs.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "eval/flops.h"
#include "eval/report.h"
#include "eval/requests.h"
#include "eval/run_dir.h"
#include "eval/settings.h"
#include "fixture.h"
#include "io/error.h"

namespace c3po::eval {
namespace {

using nlohmann::json;

// Ten items, gold = 0 everywhere. base right on 0..7 (8/10), "remix" right on 0..5 and 8,9
// (8/10, flips +2/-2), "oracle" right on all ten.
std::vector<std::vector<json>> ten_records() {
  std::vector<json> recs;
  for (int i = 0; i < 10; ++i) {
    json r = {{"task_index", 0}, {"index", i}, {"id", "q" + std::to_string(i)}, {"gold", 0}};
    r["methods"]["base"] = {{"prediction", i < 8 ? 0 : 1}, {"seconds", 0.5}, {"flops", 100.0}};
    r["methods"]["remix"] = {{"prediction", (i < 6 || i >= 8) ? 0 : 2}, {"seconds", 1.5}, {"flops", 300.0}};
    r["methods"]["oracle"] = {{"prediction", 0}, {"seconds", 2.0}, {"flops", 1000.0}};
    recs.push_back(r);
  }
  return {recs};
}

EvalTask ten_task() {
  EvalTask t;
  t.request = {"arc_challenge", "file.jsonl", ""};
  t.items.resize(10);
  t.available = 10;
  return t;
}

TEST(EvalReport, AggregatesHandComputedCase) {
  const ReportInput in{"9.9.9", {{"fingerprint", "abc"}}, {{"protocol", "letter"}}, {"base", "remix", "oracle"}};
  const json res = build_results(in, {ten_task()}, ten_records());
  ASSERT_EQ(res["tasks"].size(), 1u);
  const auto& ms = res["tasks"][0]["methods"];
  ASSERT_EQ(ms.size(), 3u);
  EXPECT_EQ(ms[0]["method"], "base");
  EXPECT_DOUBLE_EQ(ms[0]["acc"].get<double>(), 0.8);
  // Wilson 95% for 8/10, by hand: centre (0.8 + z^2/20) / (1 + z^2/10), half-width
  // z sqrt(0.8*0.2/10 + z^2/400) / (1 + z^2/10), z = 1.959964 -> [0.490162, 0.943318].
  EXPECT_NEAR(ms[0]["acc_interval"][0].get<double>(), 0.490162, 2e-6);
  EXPECT_NEAR(ms[0]["acc_interval"][1].get<double>(), 0.943318, 2e-6);
  EXPECT_EQ(ms[1]["flips"]["wrong_to_right"], 2);
  EXPECT_EQ(ms[1]["flips"]["right_to_wrong"], 2);
  EXPECT_DOUBLE_EQ(ms[1]["change_vs_base"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(ms[1]["gap_closed"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(ms[2]["gap_closed"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(ms[2]["acc"].get<double>(), 1.0);
  EXPECT_EQ(ms[2]["flips"]["wrong_to_right"], 2);
  EXPECT_DOUBLE_EQ(ms[1]["seconds_per_item"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(ms[2]["flops_per_item"].get<double>(), 1000.0);
  EXPECT_FALSE(ms[0].contains("acc_norm"));

  const std::string md = markdown_table(res);
  EXPECT_NE(md.find("| arc_challenge | base | 10 | 80.00 | 49.02-94.33 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| arc_challenge | remix | 10 | 80.00 |"), std::string::npos) << md;
  EXPECT_EQ(std::count(md.begin(), md.end(), '\n'), 2 + 3);
}

TEST(EvalReport, GapClosedIsNullWithoutGapAndAbsentWithoutOracle) {
  auto recs = ten_records();
  for (auto& r : recs[0]) r["methods"]["oracle"]["prediction"] = r["methods"]["base"]["prediction"];
  const ReportInput in{"v", json::object(), json::object(), {"base", "remix", "oracle"}};
  const json res = build_results(in, {ten_task()}, recs);
  EXPECT_TRUE(res["tasks"][0]["methods"][1]["gap_closed"].is_null());
  const ReportInput no_oracle{"v", json::object(), json::object(), {"base", "remix"}};
  EXPECT_FALSE(build_results(no_oracle, {ten_task()}, ten_records())["tasks"][0]["methods"][1].contains("gap_closed"));
}

TEST(EvalReport, AccNormOnlyWhenEveryRecordHasIt) {
  auto recs = ten_records();
  for (auto& r : recs[0]) r["methods"]["base"]["prediction_norm"] = r["index"].get<int>() < 3 ? 0 : 1;
  const ReportInput in{"v", json::object(), json::object(), {"base"}};
  const json res = build_results(in, {ten_task()}, recs);
  EXPECT_DOUBLE_EQ(res["tasks"][0]["methods"][0]["acc_norm"].get<double>(), 0.3);
  // Wilson 3/10 by hand: [0.107791, 0.603222].
  EXPECT_NEAR(res["tasks"][0]["methods"][0]["acc_norm_interval"][0].get<double>(), 0.107791, 2e-6);
  EXPECT_NEAR(res["tasks"][0]["methods"][0]["acc_norm_interval"][1].get<double>(), 0.603222, 2e-6);
}

TEST(EvalReport, MissingMethodRecordIsAnError) {
  auto recs = ten_records();
  recs[0][4]["methods"].erase("remix");
  const ReportInput in{"v", json::object(), json::object(), {"base", "remix"}};
  EXPECT_THROW(build_results(in, {ten_task()}, recs), Error);
}

TEST(EvalRunDirectory, ResumesRecordsCutsTornLineAndRefusesOtherSettings) {
  const std::string dir = test::make_temp_dir("rundir");
  const json settings = {{"limit", 5}, {"tasks", {"arc"}}};
  {
    auto rd = RunDirectory::open(dir, settings, {{"note", 1}});
    EXPECT_TRUE(rd.done().empty());
    rd.append({{{"task_index", 0}, {"index", 3}, {"id", "x"}}, {{"task_index", 0}, {"index", 1}, {"id", "y"}}});
  }
  {
    std::ofstream(dir + "/items.jsonl", std::ios::app) << "{\"task_index\":0,\"ind";  // a crash mid-write
  }
  {
    auto rd = RunDirectory::open(dir, settings, {{"note", 2}});
    ASSERT_EQ(rd.done().size(), 2u);
    EXPECT_EQ(rd.done().at({0, 3})["id"], "x");
    EXPECT_EQ(rd.done().at({0, 1})["id"], "y");
    rd.append({{{"task_index", 0}, {"index", 0}, {"id", "z"}}});
  }
  EXPECT_EQ(test::read_text(dir + "/items.jsonl"),
            "{\"id\":\"x\",\"index\":3,\"task_index\":0}\n{\"id\":\"y\",\"index\":1,\"task_index\":0}\n"
            "{\"id\":\"z\",\"index\":0,\"task_index\":0}\n");
  try {
    RunDirectory::open(dir, {{"limit", 6}, {"tasks", {"arc"}}}, json::object());
    FAIL() << "other settings accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("limit: stored 5, now 6"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("run.json"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(EvalRunDirectory, BadLineInTheMiddleIsAnErrorNamingTheLine) {
  const std::string dir = test::make_temp_dir("badline");
  { RunDirectory::open(dir, json::object(), json::object()); }
  std::ofstream(dir + "/items.jsonl") << "{\"task_index\":0,\"index\":0}\nnot json\n{\"task_index\":0,\"index\":1}\n";
  try {
    RunDirectory::open(dir, json::object(), json::object());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("items.jsonl:2"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(EvalSettings, SeededPermutationIsAFixedPermutation) {
  const auto p = seeded_permutation(50, 7);
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_EQ(p, seeded_permutation(50, 7));
  EXPECT_NE(p, seeded_permutation(50, 8));
  EXPECT_NE(p, sorted);
}

TEST(EvalSettings, LoadTasksShufflesThenLimits) {
  EvalSettings s;
  s.tasks = {{"arc_challenge", test::arc_dev(), ""}};
  const auto all = load_tasks(s);
  s.limit = 7;
  s.shuffle_seed = 3;
  const auto some = load_tasks(s);
  ASSERT_EQ(some[0].items.size(), 7u);
  EXPECT_EQ(some[0].available, all[0].items.size());
  const auto p = seeded_permutation(all[0].items.size(), 3);
  for (std::size_t i = 0; i < 7; ++i) EXPECT_EQ(some[0].items[i].id, all[0].items[p[i]].id);
  s.tasks = {{"no_such_task", test::arc_dev(), ""}};
  EXPECT_THROW(load_tasks(s), Error);
}

TEST(EvalFlops, HandComputedSmallModel) {
  model::ModelConfig c;
  c.vocab_size = 10;
  c.hidden_size = 4;
  c.num_layers = 2;
  c.num_heads = 2;
  c.head_dim = 2;
  c.tie_word_embeddings = false;
  const FlopsModel m = flops_model(c, 1000);  // body = 1000 - 2*40 = 920
  EXPECT_EQ(m.body_params, 920);
  // 3 tokens: body 2*920*3; attention keys 1+2+3 = 6 -> 4*4*2*6; head 2*4*10 for one position.
  EXPECT_DOUBLE_EQ(forward_flops(m, 3), 2.0 * 920 * 3 + 4.0 * 4 * 2 * 6 + 2.0 * 4 * 10);
  // After 5 cached tokens, 2 new ones attend to 6 and 7 keys; 3 head rows at both positions.
  EXPECT_DOUBLE_EQ(forward_flops(m, 2, 5, 2, 3), 2.0 * 920 * 2 + 4.0 * 4 * 2 * 13 + 2.0 * 4 * 3 * 2);
  c.tie_word_embeddings = true;
  EXPECT_EQ(flops_model(c, 1000).body_params, 960);
  EXPECT_THROW(flops_model(c, 30), Error);
}

}  // namespace
}  // namespace c3po::eval

// Letters of several prompts share one set of LM-head rows; each prompt finds its letters' columns.
TEST(EvalLetterColumns, HandComputedCase) {
  const std::vector<int64_t> a{330, 347, 356}, b{356, 330}, c{401, 347, 330, 356};
  const auto cols = c3po::eval::letter_columns({&a, &b, &c});
  EXPECT_EQ(cols.vocab_rows, (std::vector<int64_t>{330, 347, 356, 401}));
  ASSERT_EQ(cols.columns.size(), 3u);
  EXPECT_EQ(cols.columns[0], (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(cols.columns[1], (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(cols.columns[2], (std::vector<int64_t>{3, 1, 0, 2}));
  EXPECT_TRUE(c3po::eval::letter_columns({}).vocab_rows.empty());
}
