// `c3po eval MODEL --task T --data PATH ...`: the evaluation harness (src/eval/).
// Re-mixing methods plug in here: see the recipe in eval/command.h (add options to `cmd`, set
// options->method_factory) — the harness itself needs no change.
#include <memory>

#include "cli/commands.h"
#include "eval/command.h"

namespace c3po::cli {

void add_eval_commands(CLI::App& app, Action& action) {
  auto options = std::make_shared<eval::EvalCommandOptions>();
  CLI::App* cmd = eval::add_eval_subcommand(app, *options);
  cmd->callback([&action, options] { action = [options] { return eval::run_eval_command(*options); }; });
}

}  // namespace c3po::cli
