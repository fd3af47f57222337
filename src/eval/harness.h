#pragma once
// The evaluation harness: items -> batched base forwards -> extra ItemMethods per item ->
// items.jsonl (resumable) -> results.json + Markdown table.
#include <atomic>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/flops.h"
#include "eval/method.h"
#include "eval/requests.h"
#include "eval/settings.h"
#include "model/engine.h"
#include "tokenizer/tokenizer.h"

namespace c3po::eval {

const char* c3po_version();

struct RunControl {
  // Polled after every batch (SIGINT sets it): the batch in flight finishes and is written, then
  // run_eval returns with complete = false.
  const std::atomic<bool>* stop = nullptr;
  // Stop the same way once this many items have been finished by this call (0 = never);
  // tests use it to simulate an interruption.
  std::size_t stop_after_items = 0;
  std::FILE* progress = stderr;  // nullptr: silent
};

struct EvalRun {
  bool complete = false;      // false: stopped early; results/markdown are empty
  std::size_t total = 0;      // items of all tasks
  std::size_t done = 0;       // finished items (including those of earlier runs)
  std::size_t resumed = 0;    // of which found in items.jsonl
  double seconds = 0;         // wall time of this call's forwards and methods
  nlohmann::json results;     // what results.json holds
  std::string markdown;       // one row per (task, method)
  std::vector<std::vector<nlohmann::json>> records;  // per task, per item: the items.jsonl record
};

// Runs every task of `settings` on `model` (loaded with settings.dtype). methods: the extra
// methods (letter protocol only), run per item in this order after the base pass. With
// settings.out_dir, finished items of an earlier run with equal settings are reused, new ones
// appended to items.jsonl, and results.json is written when every item is done.
EvalRun run_eval(const EvalSettings& settings, const model::MoeModel& model, const tokenizer::Tokenizer& tok,
                 const std::vector<std::unique_ptr<ItemMethod>>& methods, const RunControl& control = {});

// What the model reads for one lm-eval request, (context + continuation)[-(max_length+1):][:-1],
// with the continuation as the scored tokens; c3po::Error if the continuation is empty or longer
// than max_length.
model::ScoreRequest loglik_input(const LoglikTokens& request, int64_t max_length, const std::string& where = "");

// Log-likelihood of each continuation given its context, lm-eval style: the model reads
// (context + continuation)[-(max_length+1):][:-1]; the sum of log_softmax over the continuation
// tokens, and whether each of them is the argmax. One group per item (its choices): the engine
// runs a group's shared prefix once (MoeModel::score_continuations). A forward holds at most
// `batch` sequences, and at most `max_logit_floats` floats of scored-position logits, but the
// requests of one group always go together. Returns one score per request of each group.
using ContinuationScore = model::SequenceScore;
std::vector<std::vector<ContinuationScore>> score_continuation_groups(
    const model::MoeModel& model, const std::vector<std::vector<LoglikTokens>>& groups, std::size_t batch,
    int64_t max_length, int64_t max_logit_floats = int64_t{1} << 27);
// Each request by itself (no shared prefix).
std::vector<ContinuationScore> score_continuations(const model::MoeModel& model,
                                                   const std::vector<LoglikTokens>& requests, std::size_t batch,
                                                   int64_t max_length, int64_t max_logit_floats = int64_t{1} << 27);

// FLOPs of scoring one group as score_continuation_groups does: its shared prefix once, then each
// suffix after the cached prefix, the LM head on the scored positions only.
double loglik_group_flops(const FlopsModel& fm, const std::vector<model::ScoreRequest>& group);

// The letter logits [n] of every prompt (batched, vocab_rows = the union of the batch's letters).
std::vector<torch::Tensor> letter_logits(const model::MoeModel& model, const std::vector<LetterRequest>& requests,
                                         std::size_t batch);

// Softmax (in double) of letter logits.
std::vector<double> softmax(const std::vector<double>& logits);

}  // namespace c3po::eval
