#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>
#include <string>
#include <fmt/core.h>

#include <algorithm>
#include <new>
#include <thread>
#include <set>

#include <unistd.h>
#include <typeinfo>

#include "cli/commands.h"
#include "io/error.h"
#include "io/mpi.h"
#include "model/threads.h"

namespace {

// Library errors name a setting ("layers", "dtype"); where the command line has that setting as
// a flag, the message says the flag, so the user sees what to change.
std::string message(const CLI::App& app, const c3po::Error& e) {
  if (!e.file().empty() || e.field().empty() || e.field().rfind("--", 0) == 0) return e.what();
  const std::string flag = "--" + e.field();
  for (const CLI::App* a = &app; a;) {
    if (a->get_option_no_throw(flag)) return flag + ": " + e.problem();
    const auto subs = a->get_subcommands();
    a = subs.empty() ? nullptr : subs.front();
  }
  return e.what();
}

// OpenMP threads that wait for each other spin (libgomp: 300000 rounds) before they sleep. On a
// core shared with another busy process, a spinning thread steals the time its partner needs and
// every parallel region stalls: with one competing process on 2 cores, prefill and decoding ran
// about 10x slower than on a quiet machine. 10000 rounds keep that within 3x and cost little on a
// quiet machine (measurements in docs/decisions.md). libgomp reads its settings when it is
// loaded, before main, so commands that compute start themselves again with the shorter spin,
// unless the user chose a wait policy.
void shorten_openmp_spin(const CLI::App& app, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv("C3PO_NO_REEXEC")) return;
  static const std::set<std::string> computing = {"logits", "route",     "generate",   "eval",  "remix",
                                                  "demo",   "reference", "train-demo", "bench"};
  const auto subs = app.get_subcommands();
  if (subs.empty() || !computing.count(subs.front()->get_name())) return;
  setenv("GOMP_SPINCOUNT", "10000", 1);  // libgomp (Debian's LibTorch)
  if (!std::getenv("KMP_BLOCKTIME")) setenv("KMP_BLOCKTIME", "1", 1);  // Intel OpenMP (official LibTorch)
  setenv("C3PO_NO_REEXEC", "1", 1);
  // The binary's real path, not /proc/self/exe: the process would be named "exe" in ps and top.
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return;
  self[n] = '\0';
  ::execv(self, argv);  // returns only on failure: then run as we are
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"c3po: test-time expert re-mixing for Mixture-of-Experts language models"};
  app.set_version_flag("--version", std::string("c3po ") + C3PO_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options such as --threads may follow the subcommand
  c3po::cli::Action action;
  int threads = 0;
  app.add_option("--threads", threads, "Compute threads (default: OMP_NUM_THREADS, else every core, or one for models with hidden size < 1024)")
      ->check(CLI::Range(0, 1024));
  c3po::cli::add_io_commands(app, action);
  c3po::cli::add_tokenize_commands(app, action);
  c3po::cli::add_model_commands(app, action);
  c3po::cli::add_demo_commands(app, action);
  c3po::cli::add_eval_commands(app, action);
  c3po::cli::add_remix_commands(app, action);
  c3po::cli::add_demo_run_commands(app, action);
  c3po::cli::add_bench_commands(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  shorten_openmp_spin(app, argv);
  try {
    // The environment carries an explicit choice to every later decision (see model/threads.h).
    // Ranks of an MPI job that share a node share its cores, unless the user said otherwise.
    if (threads == 0 && !std::getenv("OMP_NUM_THREADS") && c3po::io::launched_by_mpi())
      if (const int local = c3po::io::local_ranks_from_environment(); local > 0)
        threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local);
    if (threads > 0) setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 1);
    c3po::model::set_compute_threads(threads);
    return action ? action() : 0;
  } catch (const c3po::Error& e) {
    fmt::print(stderr, "c3po: error: {}\n", message(app, e));
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "c3po: error: out of memory (a size in the input, or the model, is larger than this machine "
                       "can hold)\n");
    return 1;
  } catch (const std::exception& e) {
    // A library's own exception type: say what failed, never only its type's name.
    fmt::print(stderr, "c3po: error: {} (an unexpected {} failure; please report it)\n", e.what(),
               typeid(e).name());
    return 1;
  }
}
