#pragma once
// The one point where re-mixing reads and writes routing (method.md section 2). Every MoE block
// routes its rows through one RoutingHook: it asks the hook for an override of each prompt's last
// positions, routes (top-k of the router distribution or of the override, the architecture's
// renormalisation), then tells the hook what it decided. forward(), tail() and the harness all
// speak to this interface; the hooks below are the ones the engine itself uses.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace c3po::model {

// LayerOverride::tokens for every position of a prompt.
inline constexpr int64_t kAllTokens = 0;

// Replaces the router's choice of one MoE layer at the last `tokens` positions of a prompt
// (method.md section 6, "which tokens"): 1 (default) the last position only, J the last J,
// kAllTokens every position; a prompt shorter than J is overridden at every position.
// Hard mode (soft_set undefined): the router distribution of each of those positions becomes
// omega (fp32, may require grad): [E], the same distribution at every overridden position, or
// [n, E], one row per overridden position in prompt order (n must be their number); top-k of it is
// selected, its entries are the mixing weights, then the architecture's own renormalisation
// follows.
// Soft mode (soft_set = int64 [s]): all experts in soft_set are mixed with weights omega[soft_set]
// (renormalised over the set iff the architecture renormalises).
struct LayerOverride {
  int moe_layer = 0;
  torch::Tensor omega;     // [E] or [n, E] float32
  torch::Tensor soft_set;  // undefined (hard) or [s] int64
  int64_t tokens = 1;      // the last `tokens` positions; kAllTokens: all
};

struct RouteOverride {
  std::vector<LayerOverride> layers;
  bool empty() const { return layers.empty(); }
  int min_moe_layer() const;  // -1 when empty
  const LayerOverride* find(int moe_layer) const;
};

// What a MoE block decided for one prompt's rows.
struct RouterEvent {
  int moe_layer = 0;
  int prompt = 0;             // index of the prompt in the batch
  torch::Tensor probs;        // [T, E] float32 router distribution (before any override)
  torch::Tensor topk_idx;     // [T, k] int64 (after any override)
  torch::Tensor topk_weight;  // [T, k] float32 final mixing weights (after renormalisation)
};

struct RoutingHook {
  virtual ~RoutingHook() = default;
  // An override for this prompt's last positions (LayerOverride::tokens of them) in this MoE
  // layer, or nullptr to keep the router's choice.
  virtual const LayerOverride* override_for(int prompt, int moe_layer) { return nullptr; }
  // Called once per MoE layer per prompt, after routing.
  virtual void on_router(const RouterEvent& event) {}
};

// One override per prompt (entries may be empty); prompts past the end have none.
class PromptOverrides : public RoutingHook {
 public:
  explicit PromptOverrides(const std::vector<RouteOverride>& overrides) : overrides_(overrides) {}
  const LayerOverride* override_for(int prompt, int moe_layer) override;

 private:
  const std::vector<RouteOverride>& overrides_;
};

// The same override for every prompt (a tail batch of neighbours under one omega).
class SharedOverride : public RoutingHook {
 public:
  explicit SharedOverride(const RouteOverride& route) : route_(route) {}
  const LayerOverride* override_for(int, int moe_layer) override { return route_.find(moe_layer); }

 private:
  const RouteOverride& route_;
};

// Records the pathway at each prompt's last position: [B, L, E] distribution, [B, L, k] choice.
class PathwayCapture : public RoutingHook {
 public:
  PathwayCapture(int64_t prompts, int64_t moe_layers, int64_t experts, int64_t top_k);
  void on_router(const RouterEvent& event) override;
  torch::Tensor pathway, topk_idx, topk_weight;
};

// Hooks in a stated order: the first that returns an override wins; all see every decision.
class RoutingChain : public RoutingHook {
 public:
  void add(RoutingHook* hook) {
    if (hook) hooks_.push_back(hook);
  }
  const LayerOverride* override_for(int prompt, int moe_layer) override;
  void on_router(const RouterEvent& event) override;

 private:
  std::vector<RoutingHook*> hooks_;
};

}  // namespace c3po::model
