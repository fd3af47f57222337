#pragma once
// The MoE inference engine: exact forward of Hugging Face MoE checkpoints with router capture,
// test-time routing overrides (routing.h), prefix states and cheap tail re-runs (method.md
// section 7), shared-prefix scoring and KV-cached greedy decoding. The parts live in
// load.cpp (weights, fingerprint), batch.cpp (packing and validation), layers.cpp (the layer
// loop and its blocks), forward.cpp (forward and tail), score.cpp and decode.cpp.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/routing.h"

namespace c3po::model {

enum class Dtype { F32, BF16 };
Dtype parse_dtype(const std::string& name);  // "f32" | "bf16"; anything else: c3po::Error
const char* dtype_name(Dtype d);

// From one forward of a prompt: what is needed to re-run ONLY its last `tokens` tokens from MoE
// layer `moe_layer` onwards (method.md section 7): the keys/values of the positions before them in
// decoder layers >= that MoE layer's decoder layer, and their hidden states entering that decoder
// layer.
struct PrefixState {
  int moe_layer = 0;
  int decoder_layer = 0;
  int64_t position = 0;            // index of the first re-run token (= number of cached positions)
  int64_t tokens = 1;              // re-run tokens; the prompt has position + tokens
  torch::Tensor hidden;            // [tokens, H], compute dtype
  std::vector<torch::Tensor> keys;    // per decoder layer from decoder_layer: [kv_heads, position, d]
  std::vector<torch::Tensor> values;  // idem
  std::string fingerprint;         // the model it came from
  std::size_t bytes() const;
};

struct ForwardOptions {
  bool all_positions = false;          // logits of every position instead of the last only
  std::vector<int64_t> vocab_rows;     // only these LM-head rows; empty = full vocabulary
  bool capture = false;                // fill pathway / topk_idx / topk_weight
  // Mean over the prompt of hidden state i (0 = token embeddings, i = output of decoder layer i-1,
  // before the final norm) -> embedding [B, H]; -1 = none.
  int embed_layer = -1;
  bool hidden_states = false;          // all hidden states per prompt [layers+1, T, H] (f32)
  int keep_prefix_from = -1;           // MoE layer c: return one PrefixState per prompt; -1 none
  int64_t prefix_tokens = 1;           // tokens a PrefixState re-runs: the last J (kAllTokens: all;
                                       // a prompt shorter than J: all of it)
  // Routing goes through one RoutingChain, in this order: `overrides` (empty, or one per prompt;
  // entries may be empty), then `hook`. The first to return an override for a (prompt, MoE layer)
  // wins; `hook` and the capture see every decision.
  std::vector<RouteOverride> overrides;
  RoutingHook* hook = nullptr;
};

struct ForwardResult {
  // all_positions: [B, Tmax, V'] (rows past a prompt's length are zero); else [B, V'].
  // float32; differentiable w.r.t. override tensors that require grad.
  torch::Tensor logits;
  std::vector<int64_t> lengths;
  torch::Tensor pathway;      // [B, L_moe, E] float32 router distribution at the last position
  torch::Tensor topk_idx;     // [B, L_moe, k] int64 selected experts at the last position
  torch::Tensor topk_weight;  // [B, L_moe, k] float32 final mixing weights
  torch::Tensor embedding;    // [B, H] float32 (embed_layer >= 0)
  std::vector<torch::Tensor> hidden_states;  // per prompt [layers+1, T, H] float32
  std::vector<PrefixState> prefixes;
};

// One sequence to score (lm-evaluation-harness log-likelihood): the model reads `input`, and
// targets[j] is the token that position input.size() - targets.size() + j must predict
// (1 <= targets.size() <= input.size()).
struct ScoreRequest {
  std::vector<int64_t> input;
  std::vector<int64_t> targets;
};

struct SequenceScore {
  double loglik = 0;      // sum over the targets of log_softmax (float64, full vocabulary)
  bool is_greedy = true;  // every target is the argmax of its position
};

// Tokens of a group's inputs that score_continuations() runs once for the whole group: their
// longest common prefix, at most all but the last token of the shortest input (every sequence
// keeps a suffix of its own); 0 for a group of fewer than two.
int64_t shared_prefix_length(const std::vector<ScoreRequest>& group);

// Incremental decoding state of one sequence. Keys and values are written in place into buffers
// that grow by doubling, so a decoding step copies only its own token's keys and values.
struct KvCache {
  std::vector<torch::Tensor> keys, values;  // per decoder layer [kv_heads, capacity, d]
  int64_t length = 0;                       // positions held (the first `length` of the capacity)
};

class ModelImpl;

class MoeModel {
 public:
  // Loads a Hugging Face folder (config.json + safetensors, single or sharded). Weights in the
  // compute dtype are memory-mapped views, not copies.
  static std::unique_ptr<MoeModel> load(const std::string& folder, Dtype dtype = Dtype::BF16);
  // Builds a model from tensors in memory (HF names); for benchmarks and tests.
  static std::unique_ptr<MoeModel> from_tensors(const ModelConfig& config,
                                                std::map<std::string, torch::Tensor> tensors,
                                                Dtype dtype = Dtype::BF16);
  // A model of this config with random weights (seeded), for speed and memory measurements
  // (`c3po bench --random`): nothing is read from disk.
  static std::unique_ptr<MoeModel> random(const ModelConfig& config, Dtype dtype = Dtype::BF16, uint64_t seed = 0);
  ~MoeModel();
  MoeModel(const MoeModel&) = delete;
  MoeModel& operator=(const MoeModel&) = delete;

  const ModelConfig& config() const;
  Dtype dtype() const;
  int num_moe_layers() const;
  int num_experts() const;
  int top_k() const;
  // Stable hash of config + tensor names/shapes/dtypes + weight bytes (whole tensors up to 1 MiB,
  // 64 evenly spread windows of larger ones).
  std::string fingerprint() const;
  std::size_t weight_bytes() const;      // bytes of the weights as used for compute
  int64_t parameter_count() const;       // all parameters
  int64_t active_parameter_count() const;  // parameters used by one token

  ForwardResult forward(const std::vector<std::vector<int64_t>>& prompts,
                        const ForwardOptions& options = {}) const;

  // Re-runs the last state.tokens tokens of a prompt from its prefix state (causal among
  // themselves, attending to the cached positions) under `route`, whose layers must be >=
  // state.moe_layer and whose overridden positions must be among the re-run ones, and returns the
  // logits [V'] (float32) of vocab_rows (empty = all) at the prompt's last position.
  // Equals forward() of the same prompt with the same override; differentiable w.r.t. omega.
  torch::Tensor tail(const PrefixState& state, const RouteOverride& route,
                     const std::vector<int64_t>& vocab_rows) const;
  // Same for several prefix states (any lengths, any re-run counts) under one override: [N, V'].
  torch::Tensor tail(const std::vector<const PrefixState*>& states, const RouteOverride& route,
                     const std::vector<int64_t>& vocab_rows) const;

  // Log-likelihood scoring of groups of sequences that share their beginning (the choices of one
  // multiple-choice item). Per group, the shared prefix (shared_prefix_length) runs once and keeps
  // its keys/values; then the suffixes of every sequence of every group run in one batched forward
  // on top of their group's cache. Only the scored positions go through the LM head; a scored
  // position inside the shared prefix (the first target is usually predicted by the prefix's
  // last token) takes its logits from the prefix pass. Equals scoring each sequence alone up to
  // float rounding. Returns, per group, one score per request in order. No gradient.
  std::vector<std::vector<SequenceScore>> score_continuations(
      const std::vector<std::vector<ScoreRequest>>& groups) const;
  std::vector<SequenceScore> score_continuations(const std::vector<ScoreRequest>& group) const;

  // Appends tokens to the cache and returns the logits [V] (float32) of the last one.
  torch::Tensor decode(KvCache& cache, const std::vector<int64_t>& tokens) const;
  // Greedy decoding; on_token is called per generated token and may return false to stop.
  // Stops at an eos token of the config or after max_tokens.
  std::vector<int64_t> generate(const std::vector<int64_t>& prompt, int max_tokens,
                                const std::function<bool(int64_t)>& on_token = {}) const;

 private:
  explicit MoeModel(std::unique_ptr<ModelImpl> impl);
  std::unique_ptr<ModelImpl> impl_;
};

}  // namespace c3po::model
