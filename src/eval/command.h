#pragma once
// The `c3po eval` command, as a reusable piece: src/cli/cmd_eval.cpp creates the subcommand with
// add_eval_subcommand and runs it with run_eval_command. No torch here.
//
// Adding re-mixing methods (the lead's src/remix/, above eval) without touching the harness:
// in src/cli/cmd_eval.cpp, after add_eval_subcommand, add options to the returned CLI::App
// (e.g. `--reference STORE`, `--method base,kernel,ngd,oracle`), and set
// options->method_factory to a function that builds the ItemMethods (eval/method.h) from them:
//
//   auto options = std::make_shared<eval::EvalCommandOptions>();
//   CLI::App* cmd = eval::add_eval_subcommand(app, *options);
//   auto store = std::make_shared<std::string>();
//   cmd->add_option("--reference", *store, "reference store");
//   options->method_factory = [store](const eval::MethodContext& ctx) {
//     std::vector<std::unique_ptr<eval::ItemMethod>> methods;  // ... built from *store, ctx.model
//     return methods;
//   };
//   cmd->callback([&action, options, store] {
//     action = [options, store] {
//       // What changes the answers: recorded in run.json / results.json, compared on resume.
//       options->settings.method_settings = {{"reference", *store}};
//       return eval::run_eval_command(*options);
//     };
//   });
// Each ItemMethod's settings() is recorded too (results.json "settings"."method_config").
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "eval/settings.h"
#include "io/mpi.h"

namespace c3po::model {
class MoeModel;
}
namespace c3po::tokenizer {
class Tokenizer;
}

namespace c3po::eval {

// A CLI11 check for counts (--limit, --batch, ...): a whole number >= 0, in words a user reads
// (CLI11's own range checks print DBL_MAX in full, and a size_t option takes -1 as 2^64 - 1).
inline CLI::Validator count_check() {
  return CLI::Validator(
      [](std::string& v) {
        const bool digits = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
        return digits ? std::string() : "expected a whole number >= 0, got " + v;
      },
      "COUNT");
}

class ItemMethod;

// What a method factory may use: the loaded model and tokenizer, and the run's settings.
struct MethodContext {
  const model::MoeModel& model;
  const tokenizer::Tokenizer& tokenizer;
  const EvalSettings& settings;
};
using MethodFactory = std::function<std::vector<std::unique_ptr<ItemMethod>>(const MethodContext&)>;

struct EvalCommandOptions {
  EvalSettings settings;               // filled from the options by run_eval_command
  std::vector<std::string> task_names;  // --task, paired in order with --data
  std::vector<std::string> data_paths;  // --data
  std::vector<std::string> splits;      // --split: none, one for all, or one per task
  std::string protocol = "letter";
  std::string shuffle_seed;             // "" = no shuffling
  std::size_t dump_prompts = 0;         // print the first N prompts / requests and stop
  MethodFactory method_factory;         // unset: base only
  std::string shard;                    // --shard I/N ("" = all items)
  // Set when c3po runs under an MPI launcher: each rank evaluates one shard into
  // OUT/shards/R-of-N and rank 0 merges them into OUT.
  const io::MpiWorld* mpi = nullptr;
};

// Adds the "eval" subcommand with its options bound to `options` (which must outlive parsing).
CLI::App* add_eval_subcommand(CLI::App& app, EvalCommandOptions& options);

// Fills options.settings from the parsed options (pairing tasks with data); c3po::Error if the
// pairing or a value is wrong.
void finish_settings(EvalCommandOptions& options);

// Runs the command: loads model and tokenizer, builds the methods, evaluates, prints the Markdown
// table on stdout and progress on stderr. SIGINT stops after the current batch (exit code 130,
// with a message on how to resume). Returns the exit code.
int run_eval_command(EvalCommandOptions& options);

}  // namespace c3po::eval
