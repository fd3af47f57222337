// `c3po train-demo --out DIR [--seed S] [--steps N] [--threads N] [--lr X] ...`: regenerates the shipped demo
// model (tasks, tokenizer, OLMoE weights) from scratch.
#include <cstdlib>
#include <fmt/core.h>

#include "cli/commands.h"
#include "demo/train_demo.h"

namespace c3po::cli {

void add_demo_commands(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("train-demo",
                                 "Generate the synthetic tasks, train the tokenizer and the small OLMoE demo model");
  auto options = std::make_shared<demo::TrainDemoOptions>();
  cmd->add_option("--out", options->out_dir, "output folder (HF layout: config.json, model.safetensors, ...)")
      ->required();
  cmd->add_option("--seed", options->seed, "seed for tasks, initialisation and batch order")->capture_default_str();
  cmd->add_option("--steps", options->steps, "optimiser steps")->capture_default_str()->check(CLI::Range(1, 100000000));
  auto* own_threads = cmd->add_option("--threads", options->threads,
                                      "LibTorch threads (the model depends on it; c3po --threads N train-demo works too)");
  own_threads->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--lr", options->learning_rate, "peak learning rate (cosine decay after warm-up)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) {
            // CLI::PositiveNumber prints its range with DBL_MAX in full.
            return std::strtod(v.c_str(), nullptr) > 0 ? std::string() : "expected a number above 0, got " + v;
          },
          "POSITIVE"));
  cmd->add_option("--batch-size", options->batch_size, "sequences per step")->capture_default_str()->check(CLI::Range(1, 65536));
  cmd->add_option("--answer-weight", options->answer_loss_weight, "weight of the answer letter's cross-entropy")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1000.0));
  cmd->add_option("--routing-weight", options->routing_loss_weight,
                  "weight of the routing supervision at the answer position (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1000.0));
  cmd->add_flag("--data-only", options->data_only,
                "only write data/*.jsonl (train, reference, dev, dev-shifted, test, test-shifted) and stop");
  cmd->add_option("--eval-every", options->eval_every, "test accuracy in the log every N steps (0: only at the end)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000000));
  cmd->callback([&action, options, cmd, own_threads] {
    // The global --threads (given before or after the subcommand name) counts when train-demo's own
    // was not given.
    const auto* global = cmd->get_parent() ? cmd->get_parent()->get_option_no_throw("--threads") : nullptr;
    if (own_threads->count() == 0 && global && global->count() > 0) options->threads = global->as<int>();
    action = [options] {
      options->log = [](const std::string& line) {
        fmt::print("{}\n", line);
        std::fflush(stdout);
      };
      demo::train_demo(*options);
      return 0;
    };
  });
}

}  // namespace c3po::cli
