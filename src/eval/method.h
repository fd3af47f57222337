#pragma once
// The extension point for test-time re-mixing methods (src/remix/ sits above eval and implements
// ItemMethod; eval never includes remix headers).
//
// How a method gets into `c3po eval`: write a class deriving from ItemMethod, and produce it from
// the MethodFactory of EvalCommandOptions (eval/command.h). The harness then, for every item of
// the letter protocol:
//   1. calls prepare() of every method once, before the first base pass, so a method can ask the
//      batched base forward for what it needs (capture, embed_layer, keep_prefix_from);
//   2. runs the base pass batched, and builds one ItemContext per item from it;
//   3. calls run() of every method on that context, in the order the factory returned them,
//      and records the MethodOutcome in items.jsonl and results.json under name().
// In the log-likelihood protocol the harness has no base forward to share: a method that
// handles_loglik() gets run_loglik() per item after the base scores (others are refused there).
// "base" (the argmax of the base letter logits) is always reported first and needs no method.
// A method named "oracle" is used for the share of the base-to-oracle gap the others close.
#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/item.h"
#include "model/engine.h"

namespace c3po::eval {

// What the base pass produced for one item (letter protocol).
struct ItemContext {
  const data::McItem* item = nullptr;
  std::string prompt;                // the rendered letter prompt
  std::vector<int64_t> ids;          // its token ids (tokenizer default special tokens)
  std::vector<int64_t> letter_ids;   // token id of " A", " B", ... per choice
  torch::Tensor letter_logits;       // [n_choices] f32, base
  torch::Tensor pathway;             // [L_moe, E] f32 router distribution at the last position
  torch::Tensor embedding;           // [H] f32 (if requested) else undefined
  model::PrefixState* prefix = nullptr;  // if requested (keep_prefix_from), else nullptr
};

// What the log-likelihood protocol gives a method for one item.
struct LoglikContext {
  const data::McItem* item = nullptr;
  std::vector<double> base_loglik;   // base log-likelihood per choice
};

struct MethodOutcome {
  int prediction = -1;               // index into the item's choices
  int prediction_norm = -1;          // loglik protocol, tasks with acc_norm: the length-normalised choice
  std::vector<double> loglik;        // loglik protocol: log-likelihood per choice
  std::vector<double> letter_probs;  // softmax over the option letters, one per choice
  double seconds = 0;                // wall time the method spent on the item
  double flops = 0;                  // forward FLOPs it spent (see eval/flops.h)
  nlohmann::json details;            // anything per item worth keeping (neighbours, alpha, ...)
};

class ItemMethod {
 public:
  virtual ~ItemMethod() = default;
  // Unique, not "base"; used as the key in items.jsonl and results.json.
  virtual std::string name() const = 0;
  // Ask the base pass for prefix states / embeddings / capture. The harness always sets
  // capture = true when any method runs; vocab_rows and all_positions are the harness's.
  virtual void prepare(model::ForwardOptions& base_options) {}
  virtual MethodOutcome run(const ItemContext& ctx) = 0;
  virtual bool handles_loglik() const { return false; }
  virtual MethodOutcome run_loglik(const LoglikContext& ctx);
  // Settings that change what run() answers (recorded in run.json, compared on resume).
  virtual nlohmann::json settings() const { return nlohmann::json::object(); }
};

}  // namespace c3po::eval
