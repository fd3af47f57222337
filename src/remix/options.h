#pragma once
// Every setting of test-time re-mixing (method.md, section 6), with the paper's defaults.
// No torch here: the command line and the result files use these too.
#include <optional>
#include <string>
#include <vector>

namespace c3po::remix {

// Which MoE layers are re-mixed: "last:M" (default last:5), "first:M", "middle:M", "all" or "3,7,9".
struct CriticalLayers {
  enum class Rule { Last, First, Middle, All, List };
  Rule rule = Rule::Last;
  int count = 5;
  std::vector<int> list;
  // A spec the user wrote (parse()) must fit the model: last:99 on a 16-layer model is an error,
  // as 99 is. The default (last 5) takes every MoE layer of a model with fewer.
  bool strict = false;

  static CriticalLayers parse(const std::string& spec);  // throws c3po::Error on a bad spec
  std::string to_string() const;
  // Sorted MoE-layer indices for a model with num_moe_layers; c3po::Error when a strict count or a
  // listed layer does not fit.
  std::vector<int> resolve(int num_moe_layers) const;
};

// Which positions of a prompt are re-mixed (method.md section 6, "which tokens"): "last" (the
// paper's, default), "last:J" (the last J tokens) or "all" (every token of the prompt; a prompt
// shorter than J is re-mixed at every token). Every re-mixed position uses the same omega.
struct RemixTokens {
  int count = 1;  // J; 0 = all (the engine's model::kAllTokens)

  static RemixTokens parse(const std::string& spec);  // throws c3po::Error on a bad spec
  std::string to_string() const;                      // "last", "last:J" or "all"
  bool all() const { return count == 0; }
};

enum class KernelKind { Gaussian, Linear, Polynomial, Matern32 };

// Kernels on the Euclidean distance d between unit embeddings (cos = 1 - d^2/2).
struct KernelSpec {
  KernelKind kind = KernelKind::Gaussian;
  double bandwidth = 0.5;  // sigma of the Gaussian, length scale of Matern
  double degree = 2;       // polynomial: (cos + offset)^degree
  double offset = 1;

  static KernelSpec parse(const std::string& spec);  // "gaussian", "gaussian:0.3", "linear", "poly:3", "matern"
  std::string to_string() const;
  double weight(double cosine) const;
};

enum class TopKMode { Hard, Soft };
// What the optimiser moves (method.md section 6): the core weights themselves, clamped at >= 0
// (direct, the paper's update), or their logs under a softmax that keeps the core mass (log).
enum class Parameterisation { Direct, Log };
enum class OptimizerKind { Adam, Sgd };
enum class Schedule { Cosine, Constant };

struct OptimiserOptions {
  int steps = 10;
  double lr = 1e-2;
  double lr_min = 1e-5;
  Schedule schedule = Schedule::Cosine;
  OptimizerKind optimizer = OptimizerKind::Adam;
  TopKMode topk = TopKMode::Soft;
  Parameterisation param = Parameterisation::Direct;

  double lr_at(int step) const;  // learning rate of step 0..steps-1
};

struct NeighbourOptions {
  int k = 3;                       // kNN size (ignored when epsilon is set)
  std::optional<double> epsilon;   // epsilon-ball on distance 1 - cos
  double leakage_guard = 0.95;     // references more similar than this are excluded
  int max_neighbours = 0;          // cap on how many are used (0: no cap beyond k)
};

struct RemixOptions {
  CriticalLayers layers;
  RemixTokens tokens;              // which prompt positions the override applies to
  int core_experts = 20;           // n, clamped to the number of experts
  OptimiserOptions opt;
  NeighbourOptions neighbours;
  KernelSpec kernel;
  std::optional<double> fixed_alpha;   // kernel regression: fixed alpha instead of the grid search
  int mode_iterations = 10;            // mean-shift steps
  double mode_alpha = 0.5;             // mean-shift step mixing
  bool full_vocab_loss = false;        // loss over the full vocabulary instead of the option letters
  // Record the answer after every NGD / oracle step (analysis only: those re-runs are not counted
  // in the method's cost).
  bool trace_steps = false;
};

}  // namespace c3po::remix
