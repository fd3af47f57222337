// `c3po train-demo --out DIR [--seed S] [--steps N] [--threads N]`: regenerates the shipped demo
// model (tasks, tokenizer, OLMoE weights) from scratch.
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
  cmd->add_option("--steps", options->steps, "optimiser steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--threads", options->threads, "LibTorch threads (the model depends on it)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->callback([&action, options] {
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
