#include "remix/remix_method.h"

#include <chrono>

#include "eval/flops.h"
#include "io/error.h"
#include "remix/icl.h"
#include "remix/methods.h"
#include "remix/tail_objective.h"

namespace c3po::remix {

MethodKind parse_method(const std::string& name) {
  if (name == "mode") return MethodKind::Mode;
  if (name == "kernel") return MethodKind::Kernel;
  if (name == "ngd") return MethodKind::Ngd;
  if (name == "oracle") return MethodKind::Oracle;
  if (name == "icl") return MethodKind::Icl;
  throw Error("", "method", "unknown method \"" + name + "\" (expected base, icl, mode, kernel, ngd or oracle)");
}

const char* method_name(MethodKind m) {
  switch (m) {
    case MethodKind::Mode: return "mode";
    case MethodKind::Kernel: return "kernel";
    case MethodKind::Ngd: return "ngd";
    case MethodKind::Oracle: return "oracle";
    case MethodKind::Icl: return "icl";
  }
  return "?";
}

namespace {

std::vector<LayerExperts> top_experts(const torch::Tensor& omega, const std::vector<int>& critical, int k) {
  std::vector<LayerExperts> out;
  for (std::size_t c = 0; c < critical.size(); ++c) {
    auto [v, i] = omega[static_cast<int64_t>(c)].topk(std::min<int64_t>(k, omega.size(1)));
    LayerExperts layer{critical[c], {}};
    for (int64_t j = 0; j < v.size(0); ++j) layer.experts.push_back({i[j].item<int64_t>(), v[j].item<double>()});
    out.push_back(std::move(layer));
  }
  return out;
}

}  // namespace

std::unique_ptr<TracedMethod> make_method(std::shared_ptr<RemixSession> session, MethodKind kind) {
  if (kind == MethodKind::Icl) return std::make_unique<IclMethod>(std::move(session));
  return std::make_unique<RemixMethod>(std::move(session), kind);
}

double tail_flops(const model::MoeModel& model, const model::PrefixState& item, int64_t letters, int64_t evaluations,
                  bool with_backward) {
  const auto fm = eval::flops_model(model.config(), model.active_parameter_count());
  const double share = static_cast<double>(model.config().num_layers - item.decoder_layer) /
                       static_cast<double>(model.config().num_layers);
  const double one = share * eval::forward_flops(fm, item.tokens, item.position, 1, letters);
  return (static_cast<double>(evaluations) * (with_backward ? 3.0 : 1.0) + 1) * one;
}

TracedOutcome RemixMethod::run_traced(const eval::ItemContext& ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  RemixSession& S = *session_;
  const auto& opt = S.options();
  const auto& critical = S.critical_layers();
  if (!ctx.prefix) throw Error("", "prefix", "the base pass kept no prefix state for " + ctx.item->id);
  const auto index = torch::tensor(std::vector<int64_t>(critical.begin(), critical.end()), torch::kLong);
  const auto omega0 = ctx.pathway.to(torch::kFloat).index_select(0, index);
  const TailItem self{ctx.prefix, ctx.letter_ids, ctx.item->gold, 1.0};

  TracedOutcome result;
  eval::MethodOutcome& out = result.outcome;
  ItemTrace& trace = result.trace;
  RemixResult r;
  double flops = 0;
  if (kind_ == MethodKind::Oracle) {
    TailObjective own(S.model(), critical, {self}, opt.full_vocab_loss, opt.tokens.count);
    r = oracle(omega0, own, opt);
    trace.upper_bound = true;
  } else {
    const auto& nb = S.neighbours(ctx);
    std::vector<int64_t> indices;
    for (const auto& m : nb.members) {
      indices.push_back(m.index);
      trace.neighbours.push_back({S.store().item(m.index).id, S.store().task(m.index), m.similarity, m.weight});
    }
    if (kind_ == MethodKind::Mode) {
      // Mean shift looks at pathways only: the nearest references in pathway space among the
      // task's candidates, labels unused.
      const auto candidates = S.pool_mask(ctx.item->task).nonzero().reshape({-1});
      const auto paths = S.store().pathways().index_select(0, candidates).index_select(1, index).to(torch::kFloat);
      r = mode_finding(omega0, paths, opt);
    } else {
      const PrefixCache::Pin keep(S.cache(), indices);
      std::vector<TailItem> items;
      std::vector<double> weights;
      // Every neighbour missing from the cache is prefilled in one batched forward.
      const auto refs = S.references(indices, &flops);
      for (std::size_t j = 0; j < refs.size(); ++j) {
        const auto& m = nb.members[j];
        items.push_back({refs[j].prefix, refs[j].letter_ids, refs[j].gold, m.weight});
        weights.push_back(m.weight);
      }
      TailObjective neighbourhood(S.model(), critical, items, opt.full_vocab_loss, opt.tokens.count);
      if (kind_ == MethodKind::Kernel) {
        const auto paths = S.store().pathways().index_select(0, torch::tensor(indices, torch::kLong))
                               .index_select(1, index).to(torch::kFloat);
        r = kernel_regression(omega0, paths, weights, neighbourhood, opt);
      } else {
        r = ngd(omega0, neighbourhood, opt);
      }
    }
  }
  const auto logits = answer_logits(S.model(), critical, self, r.omega, opt.tokens.count).to(torch::kDouble);
  out.prediction = static_cast<int>(logits.argmax().item<int64_t>());
  const auto probs = torch::softmax(logits, 0);
  for (int64_t j = 0; j < probs.size(0); ++j) out.letter_probs.push_back(probs[j].item<double>());
  flops += tail_flops(S.model(), *ctx.prefix, static_cast<int64_t>(ctx.letter_ids.size()), r.evaluations,
                      kind_ == MethodKind::Ngd || kind_ == MethodKind::Oracle);

  // The answer after each step (step 0: before any), for the accuracy-per-step curve.
  for (const auto& omega : r.iterates)
    trace.step_predictions.push_back(static_cast<int>(
        answer_logits(S.model(), critical, self, omega, opt.tokens.count).argmax().item<int64_t>()));
  trace.alpha = r.alpha;
  trace.losses = r.losses;
  trace.tail_reruns = r.evaluations + 1;
  trace.experts_before = top_experts(omega0, critical, S.model().top_k());
  trace.experts_after = top_experts(r.omega, critical, S.model().top_k());
  out.flops = flops;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

nlohmann::json RemixMethod::settings() const {
  const auto& o = session_->options();
  return {{"method", name()},
          {"layers", o.layers.to_string()},
          {"tokens", o.tokens.to_string()},
          {"core_experts", o.core_experts},
          {"steps", o.opt.steps},
          {"lr", o.opt.lr},
          {"lr_min", o.opt.lr_min},
          {"schedule", o.opt.schedule == Schedule::Cosine ? "cosine" : "constant"},
          {"optimizer", o.opt.optimizer == OptimizerKind::Adam ? "adam" : "sgd"},
          {"topk", o.opt.topk == TopKMode::Hard ? "hard" : "soft"},
          {"param", o.opt.param == Parameterisation::Direct ? "direct" : "log"},
          {"k", o.neighbours.k},
          {"epsilon", o.neighbours.epsilon ? nlohmann::json(*o.neighbours.epsilon) : nlohmann::json()},
          {"leakage_guard", o.neighbours.leakage_guard},
          {"max_neighbours", o.neighbours.max_neighbours},
          {"kernel", o.kernel.to_string()},
          {"alpha", o.fixed_alpha ? nlohmann::json(*o.fixed_alpha) : nlohmann::json("grid")},
          {"mode_iterations", o.mode_iterations},
          {"mode_alpha", o.mode_alpha},
          {"loss", o.full_vocab_loss ? "full_vocab" : "letters"},
          {"embedder", session_->embedder().identity()}};
}

}  // namespace c3po::remix
