// Sharded runs as users start them: `--shard I/N` then `c3po merge` (job arrays), and mpirun with
// 2 and 3 ranks, for eval with neighbour methods (ngd, oracle) and for reference build. The joined
// outputs must equal, byte for byte, what one uninterrupted process writes; so must a run resumed
// after a crash that tore the last line of items.jsonl. Real binary, shipped demo model.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "fixture.h"

namespace c3po::eval {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct Result {
  int code = -1;
  std::string out, err;
  double seconds = 0;
};

// Runs `prefix c3po args` (prefix: "" or an mpirun command line).
Result run(const std::string& prefix, const std::string& args) {
  const std::string dir = test::make_temp_dir("shard-cli");
  const std::string cmd = prefix + std::string(C3PO_BINARY) + " " + args + " >" + dir + "/out.txt 2>" + dir + "/err.txt";
  const auto t0 = std::chrono::steady_clock::now();
  const int status = std::system(cmd.c_str());
  Result r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = test::read_text(dir + "/out.txt");
  r.err = test::read_text(dir + "/err.txt");
  fs::remove_all(dir);
  return r;
}
Result run_c3po(const std::string& args) { return run("", args); }

// mpirun of Debian's Open MPI; root (CI containers) must say so; ranks may outnumber the cores.
std::string mpirun(int ranks) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
         "mpirun --oversubscribe -np " + std::to_string(ranks) + " ";
}

const std::string kDemo = std::string(C3PO_SOURCE_DIR) + "/models/demo";

// One reference store for the eval tests, built once (single process).
struct World {
  std::string dir = test::make_temp_dir("sharding");
  std::string store = dir + "/refs.store";
  World() {
    const auto r = run_c3po(build_args(store));
    if (r.code != 0) throw std::runtime_error("reference build failed: " + r.err);
  }
  ~World() { fs::remove_all(dir); }
  static std::string build_args(const std::string& out, const std::string& extra = "") {
    return "reference build " + kDemo + " --data generic=" + kDemo + "/data/reference.jsonl --limit 40 --batch 4 " +
           "--dtype f32 --out " + out + " " + extra;
  }
  std::string eval_args(const std::string& out, const std::string& extra = "") const {
    return "eval " + kDemo + " --task generic --data " + kDemo + "/data/test.jsonl --limit 14 --batch 4 --dtype f32 " +
           "--method ngd,oracle --steps 2 --reference " + store + " --no-timing --out " + out + " " + extra;
  }
};
const World& world() {
  static World w;
  return w;
}

void expect_same_run(const std::string& want, const std::string& got) {
  for (const char* f : {"run.json", "items.jsonl", "results.json"})
    EXPECT_EQ(test::read_text(got + "/" + f), test::read_text(want + "/" + f)) << got << "/" << f;
}

// The uninterrupted single-process run every other way is compared with.
const std::string& single_run() {
  static const std::string dir = [] {
    const std::string d = world().dir + "/single";
    const auto r = run_c3po(world().eval_args(d));
    if (r.code != 0) throw std::runtime_error("eval failed: " + r.err);
    return d;
  }();
  return dir;
}

TEST(Sharding, SingleRunIsNotTrivial) {
  const std::string items = test::read_text(single_run() + "/items.jsonl");
  EXPECT_EQ(std::count(items.begin(), items.end(), '\n'), 14);
  // Every ngd record names its neighbours: the cache of their prefix states was really used.
  std::istringstream in(items);
  std::string line;
  while (std::getline(in, line)) {
    const auto rec = nlohmann::json::parse(line);
    EXPECT_FALSE(rec["methods"]["ngd"]["details"]["neighbours"].empty());
    EXPECT_GT(rec["methods"]["ngd"]["flops"].get<double>(), rec["methods"]["oracle"]["flops"].get<double>());
  }
}

TEST(Sharding, ResumedAfterACrashMidWriteEqualsUninterrupted) {
  const std::string single = single_run();
  const std::string dir = world().dir + "/crash";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(single + "/run.json", dir + "/run.json");
  // Five items written, the sixth torn by the crash: the resumed process starts with a cold cache.
  std::istringstream in(test::read_text(single + "/items.jsonl"));
  std::string line, kept;
  for (int i = 0; i < 5 && std::getline(in, line); ++i) kept += line + "\n";
  std::getline(in, line);
  kept += line.substr(0, line.size() / 2);
  std::ofstream(dir + "/items.jsonl", std::ios::binary) << kept;
  const auto r = run_c3po(world().eval_args(dir));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("items.jsonl:6: dropped a half-written last line"));
  expect_same_run(single, dir);
}

TEST(Sharding, ThreeShardsMergedEqualOneProcess) {
  const std::string base = world().dir + "/shards3";
  std::string dirs;
  for (int i = 0; i < 3; ++i) {
    const std::string d = base + "/s" + std::to_string(i);
    const auto r = run_c3po(world().eval_args(d, "--shard " + std::to_string(i) + "/3"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.err, HasSubstr("shard " + std::to_string(i) + "/3 finished"));
    EXPECT_FALSE(fs::exists(d + "/results.json"));
    dirs += " " + d;
  }
  const auto m = run_c3po("merge --out " + base + "/merged" + dirs);
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_THAT(m.out, HasSubstr("| generic | ngd | 14 |"));
  expect_same_run(single_run(), base + "/merged");
}

TEST(Sharding, MergeRefusesShardsThatDoNotMakeOneRun) {
  const std::string base = world().dir + "/refuse";
  auto shard = [&](int i, int n, const std::string& extra = "") {
    const std::string d = base + "/s" + std::to_string(i) + "of" + std::to_string(n);
    const auto r = run_c3po(world().eval_args(d, "--shard " + std::to_string(i) + "/" + std::to_string(n) + " " + extra));
    EXPECT_EQ(r.code, 0) << r.err;
    return d;
  };
  const std::string s0 = shard(0, 2), s1 = shard(1, 2);
  auto merge_error = [&](const std::string& dirs) {
    const auto r = run_c3po("merge --out " + base + "/out " + dirs);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_FALSE(fs::exists(base + "/out/results.json"));
    return r.err;
  };
  EXPECT_THAT(merge_error(s0), HasSubstr("shard 1/2 is missing"));
  EXPECT_THAT(merge_error(s0 + " " + s0 + " " + s1), HasSubstr("shard 0/2 is given twice"));
  // Other settings: shard 1/2 re-run with another learning rate.
  const std::string other = base + "/steps3";
  ASSERT_EQ(run_c3po(world().eval_args(other, "--shard 1/2 --lr 0.02")).code, 0);
  EXPECT_THAT(merge_error(s0 + " " + other), HasSubstr("this shard belongs to another run"));
  // Another model: the same shard from the model in bf16 has another fingerprint and dtype.
  const std::string bf16 = base + "/bf16";
  const auto r = run_c3po("eval " + kDemo + " --task generic --data " + kDemo + "/data/test.jsonl --limit 14 --batch 4 " +
                          "--method oracle --steps 2 --no-timing --out " + bf16 + " --shard 1/2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(merge_error(s0 + " " + bf16), HasSubstr("dtype: stored \"f32\", now \"bf16\""));
  // Another shard count.
  EXPECT_THAT(merge_error(s0 + " " + shard(2, 3)), HasSubstr("cannot join shards of 2"));
  // An unfinished shard.
  const std::string items = test::read_text(s1 + "/items.jsonl");
  std::ofstream(s1 + "/items.jsonl", std::ios::binary) << items.substr(0, items.find('\n') + 1);
  EXPECT_THAT(merge_error(s0 + " " + s1), HasSubstr("is not finished (1 of"));
  // A run that was not sharded.
  EXPECT_THAT(merge_error(single_run() + " " + s0), HasSubstr("this run was not sharded"));
}

TEST(Sharding, ReferenceBuildShardsMergedEqualOneProcess) {
  const std::string base = world().dir + "/build";
  fs::create_directories(base);
  std::string stores;
  for (int i = 0; i < 3; ++i) {
    const std::string s = base + "/s" + std::to_string(i) + ".store";
    const auto r = run_c3po(World::build_args(s, "--shard " + std::to_string(i) + "/3"));
    ASSERT_EQ(r.code, 0) << r.err;
    stores += " " + s;
  }
  const auto m = run_c3po("reference merge --out " + base + "/merged.store" + stores);
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_THAT(m.out, HasSubstr("40 items run"));
  EXPECT_EQ(test::read_text(base + "/merged.store"), test::read_text(world().store));
  // Refusals: a missing shard, a duplicate, a shard of another build.
  auto error = [&](const std::string& args) {
    const auto r = run_c3po("reference merge --out " + base + "/bad.store " + args);
    EXPECT_EQ(r.code, 1);
    EXPECT_FALSE(fs::exists(base + "/bad.store"));
    return r.err;
  };
  EXPECT_THAT(error(base + "/s0.store " + base + "/s1.store"), HasSubstr("shard 2/3 is missing"));
  EXPECT_THAT(error(stores + " " + base + "/s1.store"), HasSubstr("shard 1/3 is given twice"));
  const std::string other = base + "/other.store";
  ASSERT_EQ(run_c3po(World::build_args(other, "--shard 2/3 --keep-incorrect")).code, 0);
  EXPECT_THAT(error(base + "/s0.store " + base + "/s1.store " + other),
              HasSubstr("keep_incorrect: stored false, now true"));
  EXPECT_THAT(error(world().store), HasSubstr("was not built with --shard"));
}

// The job-array example of docs/cluster.md, run as Slurm would run its two tasks (here one after
// the other), then merged as the script says: equal to one process.
TEST(Sharding, TheJobArrayExampleRunsAndMerges) {
  const std::string examples = std::string(C3PO_SOURCE_DIR) + "/docs/examples/";
  ASSERT_EQ(std::system(("bash -n " + examples + "eval-array.sbatch && bash -n " + examples + "eval-mpi.sbatch").c_str()), 0);
  const std::string out = world().dir + "/array";
  for (int i = 0; i < 2; ++i) {
    const std::string env = "SLURM_ARRAY_TASK_ID=" + std::to_string(i) + " SLURM_ARRAY_TASK_COUNT=2 C3PO=" +
                            std::string(C3PO_BINARY) + " MODEL=" + kDemo + " STORE=" + world().store +
                            " TASK=generic DATA=" + kDemo + "/data/test.jsonl METHODS=ngd,oracle OUT=" + out +
                            " EXTRA='--limit 14 --batch 4 --dtype f32 --steps 2 --no-timing'";
    ASSERT_EQ(std::system((env + " bash " + examples + "eval-array.sbatch >/dev/null 2>&1").c_str()), 0);
  }
  const auto m = run_c3po("merge --out " + out + " " + out + "/shard-0 " + out + "/shard-1");
  ASSERT_EQ(m.code, 0) << m.err;
  expect_same_run(single_run(), out);
}

bool have_mpi() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

TEST(Mpi, EvalAndReferenceBuildOverTwoAndThreeRanksEqualOneProcess) {
  ASSERT_TRUE(have_mpi()) << "mpirun not found: scripts/setup.sh installs openmpi-bin";
  for (int ranks : {2, 3}) {
    SCOPED_TRACE(ranks);
    const std::string out = world().dir + "/mpi" + std::to_string(ranks);
    const auto r = run(mpirun(ranks), world().eval_args(out));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.err, HasSubstr(std::to_string(ranks) + " ranks; results in"));
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 5) << "one table, from rank 0 only:\n" << r.out;
    expect_same_run(single_run(), out);
    for (int k = 0; k < ranks; ++k)
      EXPECT_TRUE(fs::exists(out + "/shards/" + std::to_string(k) + "-of-" + std::to_string(ranks) + "/items.jsonl"));

    const std::string store = world().dir + "/mpi" + std::to_string(ranks) + ".store";
    const auto b = run(mpirun(ranks), World::build_args(store));
    ASSERT_EQ(b.code, 0) << b.err;
    EXPECT_EQ(test::read_text(store), test::read_text(world().store));
  }
}

TEST(Mpi, AFailingRankEndsTheRunWithItsError) {
  ASSERT_TRUE(have_mpi());
  // Rank 1 cannot create its shard folder (a file is in the way); rank 0 is fine and would
  // otherwise wait for it at the end.
  const std::string out = world().dir + "/mpifail";
  fs::create_directories(out + "/shards");
  std::ofstream(out + "/shards/1-of-2") << "in the way";
  const auto r = run(mpirun(2), world().eval_args(out));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("c3po: error on rank 1 of 2: " + out + "/shards/1-of-2"));
  EXPECT_LT(r.seconds, 60.0);
  EXPECT_FALSE(fs::exists(out + "/results.json"));
}

}  // namespace
}  // namespace c3po::eval
