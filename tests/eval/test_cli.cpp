// `c3po eval` as a user runs it: the real binary on the tiny model and real ARC items.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "fixture.h"

namespace c3po::eval {
namespace {

struct Result {
  int code = -1;
  std::string out, err;
};

Result run_c3po(const std::string& args) {
  const std::string dir = test::make_temp_dir("cli");
  const std::string cmd =
      std::string(C3PO_BINARY) + " " + args + " >" + dir + "/out.txt 2>" + dir + "/err.txt";
  const int status = std::system(cmd.c_str());
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = test::read_text(dir + "/out.txt");
  r.err = test::read_text(dir + "/err.txt");
  std::filesystem::remove_all(dir);
  return r;
}

std::string model_and_arc() { return test::letter_model_dir() + " --task arc_challenge --data " + test::arc_dev(); }

TEST(EvalCli, WritesResultsItemsAndMarkdownTable) {
  const std::string out = test::make_temp_dir("out") + "/run";
  const auto r = run_c3po("eval " + model_and_arc() + " --task boolq --data " + test::shared_data("boolq/val.jsonl") +
                          " --limit 5 --batch 3 --dtype f32 --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| task | method | n | acc |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| arc_challenge | base | 5 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| boolq | base | 5 |"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("10/10 items"), std::string::npos) << r.err;

  const auto results = nlohmann::json::parse(test::read_text(out + "/results.json"));
  ASSERT_EQ(results["tasks"].size(), 2u);
  EXPECT_EQ(results["tasks"][0]["n"], 5);
  EXPECT_EQ(results["tasks"][1]["task"], "boolq");
  EXPECT_EQ(results["settings"]["protocol"], "letter");
  EXPECT_EQ(results["settings"]["dtype"], "f32");
  EXPECT_TRUE(results["c3po_version"].is_string());
  EXPECT_TRUE(results["model"]["fingerprint"].is_string());
  EXPECT_TRUE(results["tasks"][0]["methods"][0]["seconds_per_item"].is_number());
  const auto items = test::read_text(out + "/items.jsonl");
  EXPECT_EQ(std::count(items.begin(), items.end(), '\n'), 10);
  const auto first = nlohmann::json::parse(items.substr(0, items.find('\n')));
  EXPECT_TRUE(first["methods"]["base"]["letter_probs"].is_array());
  EXPECT_TRUE(first["gold"].is_number_integer());

  // Same folder, other settings: refused with the reason.
  const auto again = run_c3po("eval " + model_and_arc() + " --limit 6 --dtype f32 --out " + out);
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.err.find("other settings"), std::string::npos) << again.err;
  std::filesystem::remove_all(std::filesystem::path(out).parent_path());
}

TEST(EvalCli, DumpPromptsPrintsThemAndStops) {
  const auto r = run_c3po("eval " + model_and_arc() + " --dump-prompts 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("=== arc_challenge #0 id=Mercury_SC_407695", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("=== arc_challenge #1 id=Mercury_7103565"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("#2 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Question: Juan and LaKeisha roll a few objects down a ramp."), std::string::npos);
  EXPECT_NE(r.out.find("\nAnswer:\n--- "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("| task |"), std::string::npos);

  const auto ll = run_c3po("eval " + model_and_arc() + " --protocol loglik --dump-prompts 1");
  ASSERT_EQ(ll.code, 0) << ll.err;
  EXPECT_NE(ll.out.find("--- request 0: context \"Question: Juan"), std::string::npos) << ll.out;
  EXPECT_NE(ll.out.find("continuation \" Put the objects in groups.\""), std::string::npos) << ll.out;
}

TEST(EvalCli, TokensSwitchIsRecordedAndSweeps) {
  // The oracle needs no reference store: re-mix the last 3 tokens, then every token, of 2 items.
  const std::string out = test::make_temp_dir("out") + "/run";
  const auto r = run_c3po("eval " + model_and_arc() + " --limit 2 --dtype f32 --method base,oracle --steps 2" +
                          " --sweep tokens=last:3,all --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const std::string v : {"last:3", "all"}) {
    const auto results = nlohmann::json::parse(test::read_text(out + "/tokens=" + v + "/results.json"));
    EXPECT_EQ(results["settings"]["method_config"]["oracle"]["tokens"], v) << results["settings"].dump();
    EXPECT_EQ(results["tasks"][0]["n"], 2);
  }
  std::filesystem::remove_all(std::filesystem::path(out).parent_path());
  const auto bad = run_c3po("eval " + model_and_arc() + " --limit 1 --dtype f32 --method oracle --tokens last:0");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("--tokens"), std::string::npos) << bad.err;
}

TEST(EvalCli, BadOptionsAreClearErrors) {
  auto r = run_c3po("eval " + model_and_arc() + " --task boolq");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("one --data per --task"), std::string::npos) << r.err;
  r = run_c3po("eval " + model_and_arc() + " --protocol words");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--protocol"), std::string::npos) << r.err;
  r = run_c3po("eval " + model_and_arc() + " --shuffle-seed x1");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--shuffle-seed"), std::string::npos) << r.err;
  // The untouched tiny tokenizer splits " A": the letter protocol says so and names loglik.
  r = run_c3po("eval " + std::string(C3PO_SOURCE_DIR) + "/tests/model/data/olmoe --task arc_challenge --data " +
               test::arc_dev() + " --limit 2");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--protocol loglik"), std::string::npos) << r.err;
}

}  // namespace
// Non-finite or out-of-range re-mixing values are refused, naming the flag, before anything runs.
TEST(EvalCli, NonFiniteRemixFlagsAreRefused) {
  for (const std::string flag : {"--lr nan", "--lr inf", "--lr-min nan", "--alpha nan", "--leakage-guard nan",
                                 "--epsilon nan", "--mode-alpha nan", "--steps 1000000000", "--mode-iterations 99999999",
                                 "--k 1000000000"}) {
    const auto r = run_c3po("eval " + model_and_arc() + " --limit 1 --dtype f32 --method ngd --reference /nonexistent.store " + flag);
    EXPECT_NE(r.code, 0) << flag;
    EXPECT_NE(r.err.find(flag.substr(0, flag.find(' '))), std::string::npos) << flag << ": " << r.err;
  }
}

// A negative count is refused, not read as 2^64 - 1 ("run everything").
TEST(EvalCli, NegativeCountsAreRefused) {
  for (const std::string& args : {"eval " + model_and_arc() + " --limit -1", "eval " + model_and_arc() + " --batch -2",
                                 std::string("demo --limit -1"), std::string("demo --reference-limit -5")}) {
    const auto r = run_c3po(args);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_NE(r.err.find("expected a whole number >= 0"), std::string::npos) << args << ": " << r.err;
  }
}

// icl is the one method that runs in the log-likelihood protocol, from the command line too; the
// re-mixing methods are refused there by name.
TEST(EvalCli, IclRunsInTheLoglikProtocol) {
  const std::string demo = std::string(C3PO_SOURCE_DIR) + "/models/demo";
  const std::string store = test::make_temp_dir("icl") + "/ref.store";
  auto r = run_c3po("reference build " + demo + " --data generic=" + demo + "/data/reference.jsonl --limit 40 --dtype f32 "
                    "--embedder hash --out " + store);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string eval = "eval " + demo + " --task generic --data " + demo + "/data/test.jsonl --limit 3 --dtype f32 "
                           "--protocol loglik --embedder hash --reference " + store;
  r = run_c3po(eval + " --method icl");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| generic | icl | 3 |"), std::string::npos) << r.out;
  r = run_c3po(eval + " --method ngd");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("method ngd"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("letter protocol"), std::string::npos) << r.err;
}

// The thread count of train-demo: its own --threads, else the global one, else 1.
TEST(TrainDemoCli, GlobalThreadsReachTheTraining) {
  const std::string out = test::make_temp_dir("train-demo");
  auto threads_of = [&](const std::string& args) {
    const auto r = run_c3po(args + " --out " + out + " --data-only");
    EXPECT_EQ(r.code, 0) << r.err;
    const auto at = r.out.find("threads: ");
    return at == std::string::npos ? -1 : std::stoi(r.out.substr(at + 9));
  };
  EXPECT_EQ(threads_of("train-demo"), 1);
  EXPECT_EQ(threads_of("--threads 2 train-demo"), 2);
  EXPECT_EQ(threads_of("train-demo --threads 3"), 3);
}

// `c3po demo`: both conditions in the table, and the reference store reused only when it was built
// with the same settings (a store built from 60 references is not taken for the full one).
TEST(DemoCli, RunsBothConditionsAndReusesOnlyAnEqualStore) {
  const std::string out = test::make_temp_dir("demo") + "/demo";
  const std::string common = "demo --limit 3 --method base,ngd --steps 1 --out " + out;
  auto r = run_c3po(common + " --reference-limit 60");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("building the reference store"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("## in-distribution"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("## shifted"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Accuracy after each NGD step"), std::string::npos) << r.out;
  r = run_c3po(common + " --reference-limit 60");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("reusing"), std::string::npos) << r.err;
  r = run_c3po(common + " --reference-limit 80");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("building the reference store"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("reusing"), std::string::npos) << r.err;
}

}  // namespace c3po::eval
