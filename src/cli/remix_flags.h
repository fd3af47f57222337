#pragma once
// The re-mixing options shared by `c3po eval`, `c3po remix` and `c3po demo` (method.md section 6).
#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/method.h"
#include "remix/neighbours.h"
#include "remix/options.h"
#include "remix/remixer.h"

namespace c3po::cli {

struct RemixFlags {
  std::string methods = "base";
  std::string layers;  // empty: the default, last 5 (every MoE layer of a model with fewer)
  std::string tokens = "last";
  int core_experts = 20;
  int steps = 10;
  double lr = 1e-2, lr_min = 1e-5;
  std::string schedule = "cosine", optimizer = "adam", topk = "soft", param = "direct";
  int k = 3;
  double epsilon = -1;
  double leakage_guard = 0.95;
  int max_neighbours = 0;
  std::string kernel = "gaussian:0.5";
  std::string alpha = "grid";
  int mode_iterations = 10;
  double mode_alpha = 0.5;
  std::string loss = "letters";
  std::string embedder = "model";
  std::string pools;
  double cache_mb = 1024;
  bool trace_steps = false;

  remix::RemixOptions options() const;            // c3po::Error on a bad value
  std::vector<remix::MethodKind> method_kinds() const;  // "base" is dropped (always reported)
  remix::CandidatePools candidate_pools() const;
  remix::EmbedderChoice embedder_choice() const { return remix::EmbedderChoice::parse(embedder); }
};

// The ItemMethods of --method for an evaluation with the reference store at store_path.
std::vector<std::unique_ptr<eval::ItemMethod>> make_remix_methods(const RemixFlags& flags, const std::string& store_path,
                                                                  const model::MoeModel& model,
                                                                  const tokenizer::Tokenizer& tok);
// What changes the answers, for run.json / results.json.
nlohmann::json remix_settings(const RemixFlags& flags, const std::string& store_path);

// Adds every flag to cmd; with_methods adds --method too.
void add_remix_flags(CLI::App* cmd, RemixFlags& flags, bool with_methods = true);

// Sets one flag by its long name (for --sweep FLAG=V1,V2,...); c3po::Error if unknown.
void set_remix_flag(RemixFlags& flags, const std::string& name, const std::string& value);

}  // namespace c3po::cli
