#pragma once
// The in-context-learning baseline (docs/method.md section 6, "Baselines"): the k neighbours that
// NGD would use become solved demonstrations before the test prompt, most similar last; routing is
// untouched. It runs in both protocols, so every C3PO number can be read against it.
#include <memory>

#include "remix/session.h"
#include "remix/trace.h"

namespace c3po::remix {

class IclMethod : public TracedMethod {
 public:
  explicit IclMethod(std::shared_ptr<RemixSession> session) : session_(std::move(session)) {}
  std::string name() const override { return "icl"; }
  void prepare(model::ForwardOptions& base) override { session_->prepare(base); }
  TracedOutcome run_traced(const eval::ItemContext& ctx) override;
  bool handles_loglik() const override { return true; }
  TracedOutcome run_loglik_traced(const eval::LoglikContext& ctx) override;
  nlohmann::json settings() const override;

 private:
  // The demonstrations for an item, most similar last, recorded in the trace.
  std::vector<data::McItem> demonstrations(const eval::ItemContext& ctx, ItemTrace& trace);
  std::shared_ptr<RemixSession> session_;
};

}  // namespace c3po::remix
