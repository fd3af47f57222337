#include "remix/trace.h"

#include "io/error.h"

namespace c3po::remix {
namespace {

nlohmann::json records(const std::vector<NeighbourRecord>& rs) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rs) {
    nlohmann::json j = {{"id", r.id}, {"task", r.task}, {"similarity", r.similarity}};
    if (r.weight) j["weight"] = *r.weight;
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json experts(const std::vector<LayerExperts>& layers) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& l : layers) {
    nlohmann::json e = nlohmann::json::array();
    for (const auto& x : l.experts) e.push_back({{"expert", x.expert}, {"weight", x.weight}});
    out.push_back({{"moe_layer", l.moe_layer}, {"experts", std::move(e)}});
  }
  return out;
}

}  // namespace

nlohmann::json ItemTrace::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  if (upper_bound) j["upper_bound"] = true;
  if (!neighbours.empty()) j["neighbours"] = records(neighbours);
  if (!demonstrations.empty()) j["demonstrations"] = records(demonstrations);
  if (prompt_tokens) j["n_tokens"] = *prompt_tokens;
  if (truncated) j["truncated"] = true;
  if (!step_predictions.empty()) j["step_predictions"] = step_predictions;
  if (alpha) j["alpha"] = *alpha;
  if (!losses.empty()) j["losses"] = losses;
  if (tail_reruns) j["tail_reruns"] = *tail_reruns;
  if (!experts_before.empty()) j["experts_before"] = experts(experts_before);
  if (!experts_after.empty()) j["experts_after"] = experts(experts_after);
  return j;
}

TracedOutcome TracedMethod::run_loglik_traced(const eval::LoglikContext&) {
  throw Error("", name(), "this method needs the letter protocol");
}

eval::MethodOutcome TracedMethod::run(const eval::ItemContext& ctx) {
  TracedOutcome t = run_traced(ctx);
  t.outcome.details = t.trace.to_json();
  return std::move(t.outcome);
}

eval::MethodOutcome TracedMethod::run_loglik(const eval::LoglikContext& ctx) {
  TracedOutcome t = run_loglik_traced(ctx);
  t.outcome.details = t.trace.to_json();
  return std::move(t.outcome);
}

}  // namespace c3po::remix
