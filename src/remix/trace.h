#pragma once
// What a re-mixing or icl method did for one item, typed: the neighbours it used, the answer after
// each step, the experts before and after. Written to items.jsonl as the method's "details" by
// to_json() (the only place that spells the keys); `c3po remix` prints it field by field.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/method.h"

namespace c3po::remix {

struct NeighbourRecord {
  std::string id, task;  // the reference's id and the dataset (task) it came from
  double similarity = 0;
  std::optional<double> weight;  // kernel weight (re-mixing methods; icl has none)
};

struct ExpertWeight {
  int64_t expert = 0;
  double weight = 0;
};

struct LayerExperts {
  int moe_layer = 0;
  std::vector<ExpertWeight> experts;  // the top-k of that layer's pathway, heaviest first
};

struct ItemTrace {
  bool upper_bound = false;                     // the oracle: it used the true answer
  std::vector<NeighbourRecord> neighbours;      // mode, kernel, ngd: most similar first
  std::vector<NeighbourRecord> demonstrations;  // icl: in prompt order, most similar last
  std::optional<int64_t> prompt_tokens;         // icl (letter protocol): tokens of the prompt
  bool truncated = false;                       // icl: the prompt was cut to the context length
  std::vector<int> step_predictions;            // the answer before any step, then after each
  std::optional<double> alpha;                  // kernel regression's chosen alpha
  std::vector<double> losses;                   // NGD: loss per step; kernel: objective per alpha
  std::optional<int64_t> tail_reruns;           // tail re-runs spent (re-mixing methods)
  std::vector<LayerExperts> experts_before, experts_after;  // per critical layer

  nlohmann::json to_json() const;
};

struct TracedOutcome {
  eval::MethodOutcome outcome;
  ItemTrace trace;
};

// A method whose per-item record is an ItemTrace: run() and run_loglik() store it as the details.
class TracedMethod : public eval::ItemMethod {
 public:
  virtual TracedOutcome run_traced(const eval::ItemContext& ctx) = 0;
  // Only for methods whose handles_loglik() is true.
  virtual TracedOutcome run_loglik_traced(const eval::LoglikContext& ctx);

  eval::MethodOutcome run(const eval::ItemContext& ctx) final;
  eval::MethodOutcome run_loglik(const eval::LoglikContext& ctx) final;
};

}  // namespace c3po::remix
