#include "cli/remix_flags.h"

#include <cmath>
#include <sstream>

#include "io/error.h"
#include "remix/store.h"

namespace c3po::cli {

namespace {
std::vector<std::string> split_list(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, sep))
    if (!part.empty()) out.push_back(part);
  return out;
}
}  // namespace

void add_remix_flags(CLI::App* cmd, RemixFlags& f, bool with_methods) {
  if (with_methods)
    cmd->add_option("--method", f.methods,
                    "comma-separated: base, icl (the neighbours as few-shot demonstrations), mode, kernel, ngd, oracle "
                    "(oracle = upper bound with the true label)")
        ->capture_default_str();
  cmd->add_option("--layers", f.layers,
                  "critical MoE layers: last:M, first:M, middle:M, all, or a list 11,13,15 (default: last:5, "
                  "or every MoE layer of a model with fewer)")
      ->capture_default_str();
  cmd->add_option("--tokens", f.tokens,
                  "prompt positions re-mixed: last (the last token), last:J (the last J tokens) or all (every token)")
      ->capture_default_str();
  cmd->add_option("--core-experts", f.core_experts, "core experts re-weighted per critical layer")->capture_default_str();
  cmd->add_option("--steps", f.steps, "NGD / oracle optimisation steps")->capture_default_str();
  cmd->add_option("--lr", f.lr, "initial learning rate")->capture_default_str();
  cmd->add_option("--lr-min", f.lr_min, "final learning rate of the cosine schedule")->capture_default_str();
  cmd->add_option("--schedule", f.schedule, "cosine or constant")->capture_default_str();
  cmd->add_option("--optimizer", f.optimizer, "adam or sgd")->capture_default_str();
  cmd->add_option("--topk", f.topk,
                  "while optimising: soft (every core expert mixed with its weight) or hard (the top-k only)")
      ->capture_default_str();
  cmd->add_option("--param", f.param,
                  "what NGD / oracle optimise: direct (the core weights, clamped at >= 0) or log (log-weights "
                  "under a softmax keeping the core mass)")
      ->capture_default_str();
  cmd->add_option("--k", f.k, "neighbours (kNN)")->capture_default_str();
  cmd->add_option("--epsilon", f.epsilon, "epsilon-ball on 1 - cos instead of kNN (negative: off)")->capture_default_str();
  cmd->add_option("--leakage-guard", f.leakage_guard, "exclude references more similar than this")->capture_default_str();
  cmd->add_option("--max-neighbours", f.max_neighbours, "cap on neighbours used (0: none)")->capture_default_str();
  cmd->add_option("--kernel", f.kernel, "gaussian[:sigma], linear, poly[:degree], matern[:length]")->capture_default_str();
  cmd->add_option("--alpha", f.alpha, "kernel regression alpha: grid (search 0..1) or a fixed value")->capture_default_str();
  cmd->add_option("--mode-iterations", f.mode_iterations, "mean-shift steps of mode finding")->capture_default_str();
  cmd->add_option("--mode-alpha", f.mode_alpha, "mean-shift mixing of mode finding")->capture_default_str();
  cmd->add_option("--loss", f.loss, "letters (softmax over the option letters) or full (full vocabulary)")
      ->capture_default_str();
  cmd->add_option("--embedder", f.embedder, "model, model:layer=N, hash, hash:dim=N or bert:FOLDER (a sentence-transformers folder; must match the store)")
      ->capture_default_str();
  cmd->add_option("--pools", f.pools,
                  "candidate reference datasets per task, e.g. arc_challenge=openbookqa,sciq;piqa=commonsense_qa "
                  "(default: the paper's mapping; tasks without an entry use every reference)");
  cmd->add_flag("--trace-steps", f.trace_steps,
                "record the answer after every NGD / oracle step in items.jsonl (analysis; not counted in the cost)");
  cmd->add_option("--cache-mb", f.cache_mb, "memory budget of the neighbour prefix-state cache")->capture_default_str();
}

remix::RemixOptions RemixFlags::options() const {
  remix::RemixOptions o;
  if (!layers.empty()) o.layers = remix::CriticalLayers::parse(layers);
  o.tokens = remix::RemixTokens::parse(tokens);
  if (core_experts < 1) throw Error("", "--core-experts", "must be at least 1");
  o.core_experts = core_experts;
  // Bounds far above any useful value, so a typo cannot start a run that never ends.
  if (steps < 0 || steps > 10000) throw Error("", "--steps", "must be between 0 and 10000");
  o.opt.steps = steps;
  if (!(lr >= 0) || !std::isfinite(lr)) throw Error("", "--lr", "must be a finite number >= 0");
  if (!(lr_min >= 0) || !std::isfinite(lr_min)) throw Error("", "--lr-min", "must be a finite number >= 0");
  o.opt.lr = lr;
  o.opt.lr_min = lr_min;
  if (schedule == "cosine") o.opt.schedule = remix::Schedule::Cosine;
  else if (schedule == "constant") o.opt.schedule = remix::Schedule::Constant;
  else throw Error("", "--schedule", "expected cosine or constant, got \"" + schedule + "\"");
  if (optimizer == "adam") o.opt.optimizer = remix::OptimizerKind::Adam;
  else if (optimizer == "sgd") o.opt.optimizer = remix::OptimizerKind::Sgd;
  else throw Error("", "--optimizer", "expected adam or sgd, got \"" + optimizer + "\"");
  if (topk == "hard") o.opt.topk = remix::TopKMode::Hard;
  else if (topk == "soft") o.opt.topk = remix::TopKMode::Soft;
  else throw Error("", "--topk", "expected hard or soft, got \"" + topk + "\"");
  if (param == "direct") o.opt.param = remix::Parameterisation::Direct;
  else if (param == "log") o.opt.param = remix::Parameterisation::Log;
  else throw Error("", "--param", "expected direct or log, got \"" + param + "\"");
  if (k < 1 || k > 100000) throw Error("", "--k", "must be between 1 and 100000");
  o.neighbours.k = k;
  if (!std::isfinite(epsilon)) throw Error("", "--epsilon", "must be a finite number (negative: off)");
  if (epsilon >= 0) o.neighbours.epsilon = epsilon;
  if (!std::isfinite(leakage_guard))
    throw Error("", "--leakage-guard", "must be a finite similarity (above 1: no guard)");
  o.neighbours.leakage_guard = leakage_guard;
  o.neighbours.max_neighbours = max_neighbours;
  o.kernel = remix::KernelSpec::parse(kernel);
  if (alpha != "grid") {
    try {
      std::size_t used = 0;
      double a = std::stod(alpha, &used);
      if (used != alpha.size() || !(a >= 0 && a <= 1)) throw std::invalid_argument(alpha);
      o.fixed_alpha = a;
    } catch (const std::exception&) {
      throw Error("", "--alpha", "expected grid or a number in [0, 1], got \"" + alpha + "\"");
    }
  }
  if (mode_iterations < 0 || mode_iterations > 10000) throw Error("", "--mode-iterations", "must be between 0 and 10000");
  o.mode_iterations = mode_iterations;
  if (!(mode_alpha >= 0 && mode_alpha <= 1)) throw Error("", "--mode-alpha", "must be in [0, 1]");
  o.mode_alpha = mode_alpha;
  if (loss == "letters") o.full_vocab_loss = false;
  else if (loss == "full") o.full_vocab_loss = true;
  else throw Error("", "--loss", "expected letters or full, got \"" + loss + "\"");
  o.trace_steps = trace_steps;
  return o;
}

std::vector<remix::MethodKind> RemixFlags::method_kinds() const {
  std::vector<remix::MethodKind> out;
  for (const auto& m : split_list(methods)) {
    if (m == "base") continue;
    const auto kind = remix::parse_method(m);
    if (std::find(out.begin(), out.end(), kind) == out.end()) out.push_back(kind);
  }
  return out;
}

remix::CandidatePools RemixFlags::candidate_pools() const {
  auto p = remix::CandidatePools::paper_default();
  if (!pools.empty()) p.parse(pools);
  return p;
}

std::vector<std::unique_ptr<eval::ItemMethod>> make_remix_methods(const RemixFlags& flags, const std::string& store_path,
                                                                  const model::MoeModel& model,
                                                                  const tokenizer::Tokenizer& tok) {
  std::vector<std::unique_ptr<eval::ItemMethod>> methods;
  const auto kinds = flags.method_kinds();
  if (kinds.empty()) return methods;
  const auto options = flags.options();  // bad values are reported before anything is loaded
  if (store_path.empty()) {
    // The oracle alone needs no neighbours; every other method does.
    for (auto k : kinds)
      if (k != remix::MethodKind::Oracle)
        throw Error("", "--reference", std::string("method ") + remix::method_name(k) + " needs a reference store");
  }
  std::shared_ptr<const remix::ReferenceStore> store;
  if (!store_path.empty()) store = std::make_shared<remix::ReferenceStore>(remix::ReferenceStore::open(store_path));
  auto session = std::make_shared<remix::RemixSession>(model, tok, store, options, flags.candidate_pools(),
                                                        flags.embedder_choice(),
                                                        static_cast<std::size_t>(flags.cache_mb * 1048576.0));
  for (auto k : kinds) methods.push_back(remix::make_method(session, k));
  return methods;
}

nlohmann::json remix_settings(const RemixFlags& f, const std::string& store_path) {
  return {{"methods", f.methods},         {"reference", store_path},   {"layers", f.layers},
          {"tokens", f.tokens},           {"core_experts", f.core_experts}, {"steps", f.steps},        {"lr", f.lr},
          {"lr_min", f.lr_min},           {"schedule", f.schedule},    {"optimizer", f.optimizer},
          {"topk", f.topk},               {"param", f.param},          {"k", f.k},                  {"epsilon", f.epsilon},
          {"leakage_guard", f.leakage_guard}, {"max_neighbours", f.max_neighbours}, {"kernel", f.kernel},
          {"alpha", f.alpha},             {"mode_iterations", f.mode_iterations}, {"mode_alpha", f.mode_alpha},
          {"loss", f.loss},               {"embedder", f.embedder},    {"pools", f.pools},
          {"trace_steps", f.trace_steps}};
}

void set_remix_flag(RemixFlags& f, const std::string& name, const std::string& value) {
  auto num = [&](auto& target) {
    std::istringstream in(value);
    if (!(in >> target) || !in.eof()) throw Error("", "--sweep", "value \"" + value + "\" of " + name + " is not a number");
  };
  if (name == "layers") f.layers = value;
  else if (name == "tokens") f.tokens = value;
  else if (name == "core-experts") num(f.core_experts);
  else if (name == "steps") num(f.steps);
  else if (name == "lr") num(f.lr);
  else if (name == "lr-min") num(f.lr_min);
  else if (name == "schedule") f.schedule = value;
  else if (name == "optimizer") f.optimizer = value;
  else if (name == "topk") f.topk = value;
  else if (name == "param") f.param = value;
  else if (name == "k") num(f.k);
  else if (name == "epsilon") num(f.epsilon);
  else if (name == "leakage-guard") num(f.leakage_guard);
  else if (name == "max-neighbours") num(f.max_neighbours);
  else if (name == "kernel") f.kernel = value;
  else if (name == "alpha") f.alpha = value;
  else if (name == "mode-iterations") num(f.mode_iterations);
  else if (name == "mode-alpha") num(f.mode_alpha);
  else if (name == "loss") f.loss = value;
  else throw Error("", "--sweep", "cannot sweep \"" + name + "\" (a re-mixing flag without the leading --, e.g. layers)");
}

}  // namespace c3po::cli
