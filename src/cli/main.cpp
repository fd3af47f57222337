#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>
#include <string>
#include <fmt/core.h>

#include <new>
#include <typeinfo>

#include "cli/commands.h"
#include "io/error.h"
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    // The environment carries an explicit choice to every later decision (see model/threads.h).
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
