#pragma once
// One registration function per command group; each lives in its own cmd_*.cpp.
#include <CLI/CLI.hpp>
#include <functional>

namespace c3po::cli {

// Runs the chosen subcommand's action after parsing; returns the process exit code.
using Action = std::function<int()>;

void add_io_commands(CLI::App& app, Action& action);
void add_tokenize_commands(CLI::App& app, Action& action);
void add_model_commands(CLI::App& app, Action& action);
void add_demo_commands(CLI::App& app, Action& action);
void add_eval_commands(CLI::App& app, Action& action);
void add_remix_commands(CLI::App& app, Action& action);
void add_demo_run_commands(CLI::App& app, Action& action);
void add_bench_commands(CLI::App& app, Action& action);

}  // namespace c3po::cli
