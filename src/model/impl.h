#pragma once
// The engine's inside, shared by its parts (load, batch, layers, forward, score, decode). Not
// installed for other modules: they talk to engine.h and routing.h.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/arch/arch.h"
#include "model/blocks.h"
#include "model/engine.h"

namespace c3po::model {

inline torch::ScalarType scalar_type(Dtype d) { return d == Dtype::F32 ? torch::kFloat32 : torch::kBFloat16; }

struct LayerWeights {
  torch::Tensor attn_norm, mlp_norm;
  torch::Tensor wq, wk, wv, wo, bq, bk, bv, bo, q_norm, k_norm;
  int moe_index = -1;  // -1: dense layer
  torch::Tensor router;
  std::vector<SwiGlu> experts;
  SwiGlu shared;
  torch::Tensor shared_gate;
  SwiGlu dense;
};

// Rows of a packed batch that belong to one sequence, and the keys/values cached before them.
struct Segment {
  int64_t offset = 0, length = 0, past = 0;
  const std::vector<torch::Tensor>* past_keys = nullptr;  // indexed by layer - past_base
  const std::vector<torch::Tensor>* past_values = nullptr;
  int past_base = 0;
  KvCache* cache = nullptr;  // instead of past_keys: the keys/values before it, extended in place
  // Instead of past_keys: an earlier segment of the same batch that this one continues (its
  // `past` positions), so a shared prompt and its continuations run in one forward.
  int parent = -1;
  int prompt = 0;            // index of the segment in its batch; what routing hooks call the prompt
};

// Sequences packed as the rows of one batch. Every way into the layer loop (forward, tail,
// scoring, decode) builds one, so token ids and the context length are checked in one place.
class PackedBatch {
 public:
  explicit PackedBatch(const ModelConfig& config) : cfg_(config) {}
  // The n tokens of one sequence that continue `past` cached positions; `where` names it in errors.
  Segment& add_tokens(const int64_t* tokens, int64_t n, int64_t past, const std::string& where);
  Segment& add_tokens(const std::vector<int64_t>& tokens, int64_t past, const std::string& where) {
    return add_tokens(tokens.data(), static_cast<int64_t>(tokens.size()), past, where);
  }
  // The n tokens of one sequence that continue segment `parent` of this batch.
  Segment& add_continuation(const int64_t* tokens, int64_t n, int parent, const std::string& where);
  // n rows that arrive as hidden states (a prefix state's re-run tokens).
  Segment& add_rows(int64_t n, int64_t past, const std::string& where);

  int64_t rows() const { return static_cast<int64_t>(positions.size()); }
  torch::Tensor position_tensor() const { return torch::tensor(positions, torch::kInt64); }
  torch::Tensor embed(const torch::Tensor& table) const {
    return table.index_select(0, torch::tensor(ids, torch::kInt64));
  }

  std::vector<Segment> segments;
  std::vector<int64_t> ids;        // token ids of the rows (add_tokens only)
  std::vector<int64_t> positions;  // position of each row in its sequence

 private:
  Segment& add_segment(int64_t n, int64_t past, const std::string& where);
  const ModelConfig& cfg_;
};

using KvSink = std::function<void(int layer, int segment, const torch::Tensor& k, const torch::Tensor& v)>;
using LayerObserver = std::function<void(int layer, const torch::Tensor& x)>;

// What one MoE block decided for its rows (routing.cpp): the mixing assignments to run.
struct RoutingDecision {
  torch::Tensor topk_idx, topk_weight;  // [N, k]
  Assignments assignments;
};
// Asks the hook for overrides, routes every row, tells the hook what was decided.
RoutingDecision route_rows(const ModelConfig& cfg, const torch::Tensor& probs, const std::vector<Segment>& segs,
                           int moe_layer, RoutingHook& hook);

class WeightLoader;

class ModelImpl {
 public:
  void load(WeightLoader& w);  // load.cpp
  ModelConfig cfg;
  TensorNames names;
  Dtype dtype = Dtype::BF16;
  torch::ScalarType st = torch::kBFloat16;
  std::unique_ptr<io::Checkpoint> checkpoint;  // keeps the mapped views alive
  torch::Tensor embed, final_norm, lm_head;
  std::vector<LayerWeights> layers;
  Rope rope;
  double attn_scale = 1.0;
  std::string fingerprint;
  std::size_t weight_bytes = 0;
  int64_t params = 0, active_params = 0;

  // Decoder layers first_layer.. over the packed rows x (load.cpp builds, layers.cpp runs).
  torch::Tensor run(torch::Tensor x, const torch::Tensor& positions, int first_layer,
                    const std::vector<Segment>& segs, RoutingHook& hook, const KvSink& on_kv,
                    const LayerObserver& on_input) const;
  torch::Tensor attention(const LayerWeights& w, int layer, const torch::Tensor& h, const torch::Tensor& cos,
                          const torch::Tensor& sin, const std::vector<Segment>& segs, const KvSink& on_kv) const;
  torch::Tensor moe(const LayerWeights& w, const torch::Tensor& h, const std::vector<Segment>& segs,
                    RoutingHook& hook, ExpertScratch& scratch) const;
  // Final norm and LM head, only the given vocabulary rows (empty: all); float32.
  torch::Tensor head(const torch::Tensor& x, const std::vector<int64_t>& vocab_rows) const;
  void check_route(const RouteOverride& r, const std::string& where) const;
};

bool needs_grad(const RouteOverride& r);

}  // namespace c3po::model
