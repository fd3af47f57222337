#include "remix/icl.h"

#include <chrono>

#include "data/prompt.h"
#include "data/scoring.h"
#include "eval/flops.h"
#include "eval/harness.h"
#include "eval/requests.h"
#include "io/error.h"

namespace c3po::remix {

std::vector<data::McItem> IclMethod::demonstrations(const eval::ItemContext& ctx, ItemTrace& trace) {
  RemixSession& S = *session_;
  const auto& nb = S.neighbours(ctx);
  std::vector<data::McItem> shots;
  // Neighbourhood members come most similar first; the most similar demonstration goes last,
  // next to the question.
  for (auto it = nb.members.rbegin(); it != nb.members.rend(); ++it) {
    shots.push_back(S.store().item(it->index));
    trace.demonstrations.push_back({shots.back().id, shots.back().task, it->similarity, std::nullopt});
  }
  return shots;
}

TracedOutcome IclMethod::run_traced(const eval::ItemContext& ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  RemixSession& S = *session_;
  const auto& model = S.model();
  TracedOutcome result;
  eval::MethodOutcome& out = result.outcome;
  std::string preamble;
  for (const auto& shot : demonstrations(ctx, result.trace)) preamble += data::render_letter_demonstration(shot) + "\n\n";
  const auto req = eval::encode_letter_request(S.tokenizer(), *ctx.item,
                                               eval::context_length(model.config().max_position_embeddings), preamble);
  model::ForwardOptions fo;
  fo.vocab_rows = req.letter_ids;
  const auto logits = model.forward({req.ids}, fo).logits[0].to(torch::kDouble);
  out.prediction = static_cast<int>(logits.argmax().item<int64_t>());
  const auto probs = torch::softmax(logits, 0);
  for (int64_t j = 0; j < probs.size(0); ++j) out.letter_probs.push_back(probs[j].item<double>());
  const auto fm = eval::flops_model(model.config(), model.active_parameter_count());
  out.flops = eval::forward_flops(fm, static_cast<int64_t>(req.ids.size()), 0, 1,
                                  static_cast<int64_t>(req.letter_ids.size()));
  result.trace.prompt_tokens = static_cast<int64_t>(req.ids.size());
  result.trace.truncated = req.truncated;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

TracedOutcome IclMethod::run_loglik_traced(const eval::LoglikContext& lctx) {
  const auto t0 = std::chrono::steady_clock::now();
  RemixSession& S = *session_;
  const auto& model = S.model();
  const auto& cfg = model.config();
  const auto fm = eval::flops_model(cfg, model.active_parameter_count());
  TracedOutcome result;
  eval::MethodOutcome& out = result.outcome;

  // Neighbours are found as in the letter protocol: the store holds letter-prompt embeddings, so
  // the model embedder needs the item's letter prompt run once (counted in the cost).
  eval::ItemContext ctx;
  ctx.item = lctx.item;
  if (S.embedder().from_model()) {
    const auto req =
        eval::encode_letter_request(S.tokenizer(), *lctx.item, eval::context_length(cfg.max_position_embeddings));
    model::ForwardOptions fo;
    fo.embed_layer = S.embedder().model_layer();
    fo.vocab_rows = req.letter_ids;
    ctx.embedding = model.forward({req.ids}, fo).embedding[0];
    out.flops += eval::forward_flops(fm, static_cast<int64_t>(req.ids.size()), 0, 1,
                                     static_cast<int64_t>(req.letter_ids.size()));
  }
  const auto shots = demonstrations(ctx, result.trace);
  const auto prefix = eval::prefix_token_id(S.tokenizer(), cfg.bos_token_id, cfg.eos_token_ids);
  const auto reqs = eval::encode_loglik_item(S.tokenizer(), *lctx.item, prefix, shots);
  const int64_t max_length = eval::loglik_max_length(cfg.max_position_embeddings);
  const auto scores = eval::score_continuation_groups(model, {reqs.requests}, reqs.requests.size(), max_length);
  std::vector<model::ScoreRequest> inputs;
  for (std::size_t j = 0; j < reqs.requests.size(); ++j) {
    out.loglik.push_back(scores.at(0).at(j).loglik);
    inputs.push_back(eval::loglik_input(reqs.requests[j], max_length));
    if (static_cast<int64_t>(reqs.requests[j].context.size() + reqs.requests[j].continuation.size()) > max_length + 1)
      result.trace.truncated = true;
  }
  out.flops += eval::loglik_group_flops(fm, inputs);
  const auto pred = data::predict_loglik(out.loglik, reqs.item.norm_lengths);
  out.prediction = pred.acc;
  out.prediction_norm = pred.acc_norm;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

nlohmann::json IclMethod::settings() const {
  const auto& o = session_->options();
  return {{"method", name()},
          {"k", o.neighbours.k},
          {"epsilon", o.neighbours.epsilon ? nlohmann::json(*o.neighbours.epsilon) : nlohmann::json()},
          {"leakage_guard", o.neighbours.leakage_guard},
          {"max_neighbours", o.neighbours.max_neighbours},
          {"embedder", session_->embedder().identity()}};
}

}  // namespace c3po::remix
