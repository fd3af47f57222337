#include "cli/remix_flags.h"

#include <cmath>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <variant>

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


// Every re-mixing flag, once: its name, help, type (through the member it sets), the key under
// which run.json records it, and whether --sweep may vary it. Defaults are RemixFlags' own.
struct FlagRow {
  const char* name;  // without the leading --
  const char* key;   // in run.json / results.json settings
  std::variant<std::string RemixFlags::*, int RemixFlags::*, double RemixFlags::*, bool RemixFlags::*> member;
  bool sweepable;
  const char* help;
};

const std::vector<FlagRow>& flag_table() {
  static const std::vector<FlagRow> rows = {
      {"method", "methods", &RemixFlags::methods, false,
       "comma-separated: base, icl (the neighbours as few-shot demonstrations), mode, kernel, ngd, oracle "
       "(oracle = upper bound with the true label)"},
      {"layers", "layers", &RemixFlags::layers, true,
       "critical MoE layers: last:M, first:M, middle:M, all, or a list 11,13,15 (default: last:5, or every MoE "
       "layer of a model with fewer)"},
      {"tokens", "tokens", &RemixFlags::tokens, true,
       "prompt positions re-mixed: last (the last token), last:J (the last J tokens) or all (every token)"},
      {"core-experts", "core_experts", &RemixFlags::core_experts, true, "core experts re-weighted per critical layer"},
      {"steps", "steps", &RemixFlags::steps, true, "NGD / oracle optimisation steps"},
      {"lr", "lr", &RemixFlags::lr, true, "initial learning rate"},
      {"lr-min", "lr_min", &RemixFlags::lr_min, true, "final learning rate of the cosine schedule"},
      {"schedule", "schedule", &RemixFlags::schedule, true, "cosine or constant"},
      {"optimizer", "optimizer", &RemixFlags::optimizer, true, "adam or sgd"},
      {"topk", "topk", &RemixFlags::topk, true,
       "while optimising: soft (every core expert mixed with its weight) or hard (the top-k only)"},
      {"param", "param", &RemixFlags::param, true,
       "what NGD / oracle optimise: direct (the core weights, clamped at >= 0) or log (log-weights under a "
       "softmax keeping the core mass)"},
      {"k", "k", &RemixFlags::k, true, "neighbours (kNN)"},
      {"epsilon", "epsilon", &RemixFlags::epsilon, true, "epsilon-ball on 1 - cos instead of kNN (negative: off)"},
      {"leakage-guard", "leakage_guard", &RemixFlags::leakage_guard, true, "exclude references more similar than this"},
      {"max-neighbours", "max_neighbours", &RemixFlags::max_neighbours, true, "cap on neighbours used (0: none)"},
      {"kernel", "kernel", &RemixFlags::kernel, true, "gaussian[:sigma], linear, poly[:degree], matern[:length]"},
      {"alpha", "alpha", &RemixFlags::alpha, true, "kernel regression alpha: grid (search 0..1) or a fixed value"},
      {"mode-iterations", "mode_iterations", &RemixFlags::mode_iterations, true, "mean-shift steps of mode finding"},
      {"mode-alpha", "mode_alpha", &RemixFlags::mode_alpha, true, "mean-shift mixing of mode finding"},
      {"loss", "loss", &RemixFlags::loss, true,
       "letters (softmax over the option letters) or full (full vocabulary)"},
      {"embedder", "embedder", &RemixFlags::embedder, false,
       "model, model:layer=N, hash, hash:dim=N or bert:FOLDER (a sentence-transformers folder; must match the "
       "store)"},
      {"pools", "pools", &RemixFlags::pools, false,
       "candidate reference datasets per task, e.g. arc_challenge=openbookqa,sciq;piqa=commonsense_qa (default: "
       "the paper's mapping; tasks without an entry use every reference)"},
      {"trace-steps", "trace_steps", &RemixFlags::trace_steps, false,
       "record the answer after every NGD / oracle step in items.jsonl (analysis; not counted in the cost)"},
      {"cache-mb", "", &RemixFlags::cache_mb, false, "memory budget of the neighbour prefix-state cache"},
  };
  return rows;
}

}  // namespace

void add_remix_flags(CLI::App* cmd, RemixFlags& f, bool with_methods) {
  for (const FlagRow& row : flag_table()) {
    if (!with_methods && std::string_view(row.name) == "method") continue;
    const std::string flag = std::string("--") + row.name;
    std::visit(
        [&](auto member) {
          auto& target = f.*member;
          if constexpr (std::is_same_v<std::decay_t<decltype(target)>, bool>) {
            cmd->add_flag(flag, target, row.help);
          } else {
            auto* opt = cmd->add_option(flag, target, row.help);
            // An empty default (--layers, --pools) is described in the help instead.
            if constexpr (std::is_same_v<std::decay_t<decltype(target)>, std::string>) {
              if (!target.empty()) opt->capture_default_str();
            } else {
              opt->capture_default_str();
            }
          }
        },
        row.member);
  }
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
  nlohmann::json out = {{"reference", store_path}};
  for (const FlagRow& row : flag_table())
    if (*row.key) std::visit([&](auto member) { out[row.key] = f.*member; }, row.member);
  return out;
}

void set_remix_flag(RemixFlags& f, const std::string& name, const std::string& value) {
  for (const FlagRow& row : flag_table()) {
    if (name != row.name || !row.sweepable) continue;
    std::visit(
        [&](auto member) {
          auto& target = f.*member;
          using T = std::decay_t<decltype(target)>;
          if constexpr (std::is_same_v<T, std::string>) {
            target = value;
          } else {
            std::istringstream in(value);
            T v{};
            if (!(in >> v) || !in.eof())
              throw Error("", "--sweep", "value \"" + value + "\" of " + name + " is not a number");
            target = v;
          }
        },
        row.member);
    return;
  }
  std::string sweepable;
  for (const FlagRow& row : flag_table())
    if (row.sweepable) sweepable += std::string(sweepable.empty() ? "" : ", ") + row.name;
  throw Error("", "--sweep", "cannot sweep \"" + name + "\" (one of " + sweepable + ", without the leading --)");
}

}  // namespace c3po::cli
