#pragma once
// The re-mixing methods as methods of the evaluation harness: for each test item, mode finding,
// kernel regression, NGD or the oracle on the critical layers' core experts (method.md sections
// 3-4), with its cost and an ItemTrace.
#include <memory>
#include <string>

#include "remix/session.h"
#include "remix/trace.h"

namespace c3po::remix {

enum class MethodKind { Mode, Kernel, Ngd, Oracle, Icl };
MethodKind parse_method(const std::string& name);  // mode | kernel | ngd | oracle | icl
const char* method_name(MethodKind m);

// The method of a kind: a RemixMethod, or the icl baseline.
std::unique_ptr<TracedMethod> make_method(std::shared_ptr<RemixSession> session, MethodKind kind);

class RemixMethod : public TracedMethod {
 public:
  RemixMethod(std::shared_ptr<RemixSession> session, MethodKind kind) : session_(std::move(session)), kind_(kind) {}
  std::string name() const override { return method_name(kind_); }
  void prepare(model::ForwardOptions& base) override { session_->prepare(base); }
  TracedOutcome run_traced(const eval::ItemContext& ctx) override;
  nlohmann::json settings() const override;

 private:
  std::shared_ptr<RemixSession> session_;
  MethodKind kind_;
};

// Forward FLOPs of the tail re-runs a method spent on an item: each re-run spans the decoder
// layers from the first critical one and runs the item's re-mixed tokens after its cached ones;
// with a backward pass (NGD, the oracle) a re-run costs about three forwards. The answer's own
// re-run is one more forward.
double tail_flops(const model::MoeModel& model, const model::PrefixState& item, int64_t letters, int64_t evaluations,
                  bool with_backward);

}  // namespace c3po::remix
