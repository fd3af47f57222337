#include "eval/harness.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <numeric>
#include <optional>
#include <set>

#include "data/scoring.h"
#include "eval/flops.h"
#include "eval/report.h"
#include "eval/run_dir.h"
#include "io/error.h"
#include "io/json_file.h"
#include "io/progress.h"

namespace c3po::eval {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// One base forward of letter prompts; column b of `letter_columns` maps item b's letters to
// columns of the result's logits.
struct LetterBatch {
  model::ForwardResult result;
  std::vector<std::vector<int64_t>> letter_columns;
};

LetterBatch run_letter_batch(const model::MoeModel& model, const std::vector<const LetterRequest*>& batch,
                             model::ForwardOptions options) {
  std::vector<const std::vector<int64_t>*> letters;
  for (const auto* r : batch) letters.push_back(&r->letter_ids);
  LetterColumns columns = letter_columns(letters);
  options.vocab_rows = std::move(columns.vocab_rows);
  options.all_positions = false;
  std::vector<std::vector<int64_t>> prompts;
  prompts.reserve(batch.size());
  for (const auto* r : batch) prompts.push_back(r->ids);
  LetterBatch out;
  out.result = model.forward(prompts, options);
  out.letter_columns = std::move(columns.columns);
  return out;
}

torch::Tensor letter_row(const LetterBatch& b, std::size_t i) {
  return b.result.logits[static_cast<int64_t>(i)]
      .index_select(0, torch::tensor(b.letter_columns[i], torch::kInt64))
      .to(torch::kFloat32)
      .contiguous();
}

std::vector<double> to_doubles(const torch::Tensor& t) {
  auto d = t.detach().to(torch::kFloat64).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

nlohmann::json item_header(const EvalTask& task, std::size_t t, std::size_t i) {
  const auto& item = task.items[i];
  return {{"task_index", t}, {"index", i}, {"task", item.task}, {"id", item.id}, {"gold", item.gold}};
}

// Runs one method on one item and returns its items.jsonl record: the letter protocol's letter
// probabilities or the log-likelihood protocol's scores, cost, time and details.
nlohmann::json method_record(const ItemMethod& m, const data::McItem& item, std::size_t n_choices, bool with_norm,
                             bool record_timing, const std::function<MethodOutcome()>& run) {
  const auto t0 = Clock::now();
  MethodOutcome o = run();
  const double secs = o.seconds > 0 ? o.seconds : seconds_since(t0);
  const std::string& where = data::origin(item);
  if (o.prediction < 0 || o.prediction >= static_cast<int>(n_choices))
    throw Error(where, "method " + m.name(),
                fmt::format("prediction {} is not a choice index [0, {})", o.prediction, n_choices));
  // An answer computed from NaN or infinity is no answer: stop, naming the item.
  for (const auto* v : {&o.letter_probs, &o.loglik})
    for (double x : *v)
      if (!std::isfinite(x))
        throw Error(where, "method " + m.name(),
                    fmt::format("answered from a non-finite score ({}); nothing is recorded for this item", x));
  nlohmann::json r = {{"prediction", o.prediction}, {"flops", o.flops}};
  if (!o.loglik.empty()) r["loglik"] = o.loglik;
  else r["letter_probs"] = o.letter_probs;
  if (with_norm) r["prediction_norm"] = o.prediction_norm;
  if (record_timing) r["seconds"] = secs;
  if (!o.details.is_null()) r["details"] = std::move(o.details);
  return r;
}

struct Pending {
  std::size_t task = 0, index = 0;
  std::size_t length = 0;  // tokens, for ordering the batches
};

// Batches are cut from the fixed shortest-first order of ALL items, whatever is already done, so
// an item meets the same batch mates (and the same rounding) in an uninterrupted, a resumed and a
// sharded run. Shard `index` of `count` takes every count-th batch.
std::vector<std::pair<std::size_t, std::size_t>> cut_batches(std::size_t n, std::size_t batch, std::size_t index,
                                                              std::size_t count) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  for (std::size_t s = 0, b = 0; s < n; s += batch, ++b)
    if (b % count == index) out.emplace_back(s, std::min(n, s + batch));
  return out;
}

}  // namespace

const char* c3po_version() { return C3PO_VERSION; }

MethodOutcome ItemMethod::run_loglik(const LoglikContext& ctx) {
  throw Error(ctx.item ? ctx.item->id : "", "method " + name(), "does not run in the log-likelihood protocol");
}

std::vector<double> softmax(const std::vector<double>& logits) {
  if (logits.empty()) return {};
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp(logits[i] - mx);
  for (double& v : p) v /= sum;
  return p;
}

std::vector<torch::Tensor> letter_logits(const model::MoeModel& model, const std::vector<LetterRequest>& requests,
                                         std::size_t batch) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out(requests.size());
  std::vector<std::size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return requests[a].ids.size() < requests[b].ids.size(); });
  for (std::size_t s = 0; s < order.size(); s += std::max<std::size_t>(batch, 1)) {
    const std::size_t e = std::min(order.size(), s + std::max<std::size_t>(batch, 1));
    std::vector<const LetterRequest*> b;
    for (std::size_t k = s; k < e; ++k) b.push_back(&requests[order[k]]);
    const LetterBatch lb = run_letter_batch(model, b, {});
    for (std::size_t k = s; k < e; ++k) out[order[k]] = letter_row(lb, k - s);
  }
  return out;
}

model::ScoreRequest loglik_input(const LoglikTokens& req, int64_t max_length, const std::string& where) {
  if (req.continuation.empty()) throw Error("", where, "empty continuation");
  if (static_cast<int64_t>(req.continuation.size()) > max_length)
    throw Error("", where,
                fmt::format("continuation of {} tokens exceeds the model's length {}", req.continuation.size(),
                            max_length));
  std::vector<int64_t> whole = req.context;
  whole.insert(whole.end(), req.continuation.begin(), req.continuation.end());
  const std::size_t keep =
      static_cast<std::size_t>(std::min<int64_t>(static_cast<int64_t>(whole.size()), max_length + 1));
  model::ScoreRequest out;
  out.input.assign(whole.end() - static_cast<std::ptrdiff_t>(keep), whole.end() - 1);
  out.targets = req.continuation;
  return out;
}

std::vector<std::vector<ContinuationScore>> score_continuation_groups(
    const model::MoeModel& model, const std::vector<std::vector<LoglikTokens>>& groups, std::size_t batch,
    int64_t max_length, int64_t max_logit_floats) {
  const int64_t vocab = model.config().vocab_size;
  std::vector<std::vector<model::ScoreRequest>> inputs(groups.size());
  std::size_t r = 0;
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (const auto& req : groups[g]) inputs[g].push_back(loglik_input(req, max_length, fmt::format("request {}", r++)));
  std::vector<std::vector<ContinuationScore>> out(groups.size());
  std::size_t s = 0;
  while (s < inputs.size()) {
    // Whole groups, as many as fit in `batch` sequences and the logits budget (at least one).
    std::size_t e = s, sequences = 0;
    int64_t floats = 0;
    while (e < inputs.size()) {
      int64_t targets = 0;
      for (const auto& q : inputs[e]) targets += static_cast<int64_t>(q.targets.size());
      if (e > s && (sequences + inputs[e].size() > batch || floats + targets * vocab > max_logit_floats)) break;
      sequences += inputs[e].size();
      floats += targets * vocab;
      ++e;
    }
    const std::vector<std::vector<model::ScoreRequest>> chunk(inputs.begin() + static_cast<std::ptrdiff_t>(s),
                                                             inputs.begin() + static_cast<std::ptrdiff_t>(e));
    auto scores = model.score_continuations(chunk);
    for (std::size_t g = s; g < e; ++g) out[g] = std::move(scores[g - s]);
    s = e;
  }
  return out;
}

std::vector<ContinuationScore> score_continuations(const model::MoeModel& model,
                                                   const std::vector<LoglikTokens>& requests, std::size_t batch,
                                                   int64_t max_length, int64_t max_logit_floats) {
  std::vector<std::vector<LoglikTokens>> groups;
  for (const auto& r : requests) groups.push_back({r});
  const auto scores = score_continuation_groups(model, groups, batch, max_length, max_logit_floats);
  std::vector<ContinuationScore> out;
  for (const auto& g : scores) out.push_back(g.at(0));
  return out;
}

double loglik_group_flops(const FlopsModel& fm, const std::vector<model::ScoreRequest>& group) {
  const int64_t shared = model::shared_prefix_length(group);
  int64_t first = shared;
  for (const auto& q : group) first = std::min(first, static_cast<int64_t>(q.input.size() - q.targets.size()));
  double flops = forward_flops(fm, shared, 0, shared - first, -1);
  for (const auto& q : group) {
    const int64_t len = static_cast<int64_t>(q.input.size());
    const int64_t scored = len - std::max(shared, len - static_cast<int64_t>(q.targets.size()));
    flops += forward_flops(fm, len - shared, shared, scored, -1);
  }
  return flops;
}

EvalRun run_eval(const EvalSettings& settings, const model::MoeModel& model, const tokenizer::Tokenizer& tok,
                 const std::vector<std::unique_ptr<ItemMethod>>& methods, const RunControl& control) {
  torch::NoGradGuard no_grad;
  if (settings.batch == 0) throw Error("", "batch", "must be at least 1");
  if (settings.dtype != model::dtype_name(model.dtype()))
    throw Error(settings.model, "dtype",
                fmt::format("the model was loaded as {}, the settings say {}", model::dtype_name(model.dtype()),
                            settings.dtype));
  std::vector<std::string> method_names;
  nlohmann::json method_config = nlohmann::json::object();
  for (const auto& m : methods) {
    const std::string name = m->name();
    if (name == "base" || name.empty() ||
        std::find(method_names.begin(), method_names.end(), name) != method_names.end())
      throw Error("", "methods", "method names must be unique, non-empty and not 'base'; got '" + name + "'");
    method_names.push_back(name);
    method_config[name] = m->settings();
  }
  if (settings.protocol != Protocol::Letter)
    for (const auto& m : methods)
      if (!m->handles_loglik())
        throw Error("", "method " + m->name(),
                    "re-mixes routing at the letter prompt's answer position, so it needs the letter protocol "
                    "(only icl also runs in the log-likelihood protocol)");

  std::vector<EvalTask> tasks = load_tasks(settings);
  nlohmann::json rsettings = result_settings(settings, model.fingerprint(), method_names);
  rsettings["method_config"] = method_config;
  const nlohmann::json model_info = {{"path", settings.model},
                                     {"fingerprint", model.fingerprint()},
                                     {"model_type", model.config().model_type},
                                     {"dtype", model::dtype_name(model.dtype())},
                                     {"parameters", model.parameter_count()},
                                     {"active_parameters", model.active_parameter_count()}};

  EvalRun run;
  run.records.resize(tasks.size());
  std::vector<std::vector<bool>> have(tasks.size());
  std::size_t all_items = 0;
  nlohmann::json task_info = nlohmann::json::array();
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    run.records[t].resize(tasks[t].items.size());
    have[t].assign(tasks[t].items.size(), false);
    all_items += tasks[t].items.size();
    task_info.push_back(to_json(summarize(tasks[t])));
  }
  const Shard shard = settings.shard;
  if (shard.count == 0 || shard.index >= shard.count) throw Error("", "shard", "expected 0 <= index < count");
  for (const auto& [s, e] : cut_batches(all_items, settings.batch, shard.index, shard.count)) run.total += e - s;
  nlohmann::json info = {{"c3po_version", c3po_version()}, {"model", model_info}, {"tasks", task_info}};
  if (!shard.whole()) {
    // Which items a shard holds depends on the batch size, so shards of one run must share it.
    rsettings["shard"] = {{"index", shard.index}, {"count", shard.count}, {"batch", settings.batch}};
    info["shard_items"] = run.total;
  }

  std::optional<RunDirectory> dir;
  if (!settings.out_dir.empty()) {
    dir.emplace(RunDirectory::open(settings.out_dir, rsettings, info));
    if (!dir->torn_line_notice().empty() && control.progress)
      fmt::print(control.progress, "c3po eval: {}\n", dir->torn_line_notice());
    for (const auto& [key, record] : dir->done()) {
      const std::string where = dir->path("items.jsonl");
      if (key.first >= tasks.size() || key.second >= tasks[key.first].items.size() ||
          record.value("id", std::string()) != tasks[key.first].items[key.second].id)
        throw Error(where, fmt::format("item {} of task {}", key.second, key.first),
                    "does not match the data being evaluated (the data files changed?); use another --out folder");
      run.records[key.first][key.second] = record;
      have[key.first][key.second] = true;
      ++run.resumed;
    }
  }
  run.done = run.resumed;

  // All items in one fixed order (by length), cut into this shard's batches whatever is done; items
  // of earlier runs must belong to this shard (a folder holds one shard's items only).
  auto plan_batches = [&](std::vector<Pending>& order) {
    std::stable_sort(order.begin(), order.end(), [](const Pending& a, const Pending& b) { return a.length < b.length; });
    auto batches = cut_batches(order.size(), settings.batch, shard.index, shard.count);
    if (shard.whole()) return batches;
    std::vector<std::vector<bool>> mine(tasks.size());
    for (std::size_t t = 0; t < tasks.size(); ++t) mine[t].assign(tasks[t].items.size(), false);
    for (const auto& [s, e] : batches)
      for (std::size_t k = s; k < e; ++k) mine[order[k].task][order[k].index] = true;
    for (std::size_t t = 0; t < tasks.size(); ++t)
      for (std::size_t i = 0; i < tasks[t].items.size(); ++i)
        if (have[t][i] && !mine[t][i])
          throw Error(dir->path("items.jsonl"), fmt::format("item {} of task {}", i, t),
                      "is not part of shard " + shard.name() + "; use another --out folder");
    return batches;
  };
  auto all_done = [&](const std::vector<Pending>& order, std::size_t s, std::size_t e) {
    for (std::size_t k = s; k < e; ++k)
      if (!have[order[k].task][order[k].index]) return false;
    return true;
  };
  const FlopsModel fm = flops_model(model.config(), model.active_parameter_count());
  std::string label = shard.whole() ? "eval" : "eval shard " + shard.name();
  for (std::size_t t = 0; t < tasks.size(); ++t) label += (t == 0 ? " " : ",") + tasks[t].request.task;
  io::Progress progress(label, run.total, control.progress);
  progress.set_resumed(run.done);
  std::size_t finished_here = 0;
  auto should_stop = [&] {
    if (control.stop && control.stop->load()) return true;
    return control.stop_after_items > 0 && finished_here >= control.stop_after_items;
  };
  auto commit = [&](std::vector<nlohmann::json>& batch_records) {
    if (dir) dir->append(batch_records);
    for (auto& r : batch_records) {
      const ItemKey key = record_key(r, "record");
      run.records[key.first][key.second] = std::move(r);
      have[key.first][key.second] = true;
    }
    run.done += batch_records.size();
    finished_here += batch_records.size();
    progress.update(run.done, /*force=*/run.done == run.total);
  };
  const auto t_run = Clock::now();

  if (settings.protocol == Protocol::Letter) {
    // Tokenise everything first: a letter that is not one token stops the run before any compute.
    const std::size_t max_tokens = context_length(model.config().max_position_embeddings);
    std::vector<std::vector<std::optional<LetterRequest>>> reqs(tasks.size());
    std::vector<Pending> pending;
    for (std::size_t t = 0; t < tasks.size(); ++t) {
      reqs[t].resize(tasks[t].items.size());
      for (std::size_t i = 0; i < tasks[t].items.size(); ++i) {
        reqs[t][i] = encode_letter_request(tok, tasks[t].items[i], max_tokens);
        pending.push_back({t, i, reqs[t][i]->ids.size()});
      }
    }
    const auto batches = plan_batches(pending);
    model::ForwardOptions base_options;
    for (const auto& m : methods) m->prepare(base_options);
    if (!methods.empty()) base_options.capture = true;

    for (const auto& [s, e] : batches) {
      if (should_stop()) break;
      if (all_done(pending, s, e)) continue;
      std::vector<const LetterRequest*> batch;
      for (std::size_t k = s; k < e; ++k) batch.push_back(&*reqs[pending[k].task][pending[k].index]);
      const auto t0 = Clock::now();
      LetterBatch lb = run_letter_batch(model, batch, base_options);
      const double base_seconds = seconds_since(t0) / static_cast<double>(batch.size());

      std::vector<nlohmann::json> records;
      for (std::size_t k = s; k < e; ++k) {
        const std::size_t b = k - s;
        const auto& p = pending[k];
        if (have[p.task][p.index]) continue;  // a batch torn by a crash: its written items stay
        const auto& req = *batch[b];
        const auto& item = tasks[p.task].items[p.index];
        ItemContext ctx;
        ctx.item = &item;
        ctx.prompt = req.prompt;
        ctx.ids = req.ids;
        ctx.letter_ids = req.letter_ids;
        ctx.letter_logits = letter_row(lb, b);
        if (lb.result.pathway.defined()) ctx.pathway = lb.result.pathway[static_cast<int64_t>(b)];
        if (lb.result.embedding.defined()) ctx.embedding = lb.result.embedding[static_cast<int64_t>(b)];
        if (b < lb.result.prefixes.size()) ctx.prefix = &lb.result.prefixes[b];

        const std::vector<double> logits = to_doubles(ctx.letter_logits);
        for (double x : logits)
          if (!std::isfinite(x))
            throw Error(data::origin(item), "base",
                        fmt::format("the model's letter logits are not finite ({}): check the weights and config", x));
        nlohmann::json rec = item_header(tasks[p.task], p.task, p.index);
        rec["n_tokens"] = req.ids.size();
        if (req.truncated) rec["truncated"] = true;
        nlohmann::json base = {{"prediction", data::predict_letter(logits)},
                               {"letter_probs", softmax(logits)},
                               {"letter_logits", logits}};
        if (settings.record_timing) base["seconds"] = base_seconds;
        base["flops"] = forward_flops(fm, static_cast<int64_t>(req.ids.size()), 0, 1,
                                      static_cast<int64_t>(req.letter_ids.size()));
        rec["methods"]["base"] = base;
        for (const auto& m : methods)
          rec["methods"][m->name()] = method_record(*m, item, item.choices.size(), false, settings.record_timing,
                                                    [&] { return m->run(ctx); });
        records.push_back(std::move(rec));
      }
      commit(records);
    }
  } else {
    const auto& cfg = model.config();
    const std::optional<int64_t> prefix = prefix_token_id(tok, cfg.bos_token_id, cfg.eos_token_ids);
    const int64_t max_length = loglik_max_length(cfg.max_position_embeddings);
    std::vector<std::vector<std::optional<LoglikRequests>>> reqs(tasks.size());
    std::vector<Pending> pending;
    for (std::size_t t = 0; t < tasks.size(); ++t) {
      reqs[t].resize(tasks[t].items.size());
      for (std::size_t i = 0; i < tasks[t].items.size(); ++i) {
        reqs[t][i] = encode_loglik_item(tok, tasks[t].items[i], prefix);
        std::size_t longest = 0;
        for (const auto& r : reqs[t][i]->requests)
          longest = std::max(longest, r.context.size() + r.continuation.size());
        pending.push_back({t, i, longest});
      }
    }
    const auto batches = plan_batches(pending);
    // A chunk of items is scored and written together; a forward holds at most settings.batch
    // sequences, and the choices of one item always go together (their shared prefix runs once).
    for (const auto& [s, e] : batches) {
      if (should_stop()) break;
      if (all_done(pending, s, e)) continue;
      std::vector<std::vector<LoglikTokens>> groups;
      for (std::size_t k = s; k < e; ++k) groups.push_back(reqs[pending[k].task][pending[k].index]->requests);
      const auto t0 = Clock::now();
      const auto scores = score_continuation_groups(model, groups, settings.batch, max_length);
      const double base_seconds = seconds_since(t0) / static_cast<double>(e - s);
      std::vector<nlohmann::json> records;
      for (std::size_t k = s; k < e; ++k) {
        const auto& p = pending[k];
        if (have[p.task][p.index]) continue;  // a batch torn by a crash: its written items stay
        const auto& lr = *reqs[p.task][p.index];
        std::vector<double> lls;
        std::vector<bool> greedy;
        std::vector<model::ScoreRequest> inputs;
        for (std::size_t j = 0; j < lr.requests.size(); ++j) {
          lls.push_back(scores[k - s][j].loglik);
          if (!std::isfinite(lls.back()))
            throw Error(data::origin(tasks[p.task].items[p.index]), "base",
                        fmt::format("the log-likelihood of choice {} is not finite ({})", j, lls.back()));
          greedy.push_back(scores[k - s][j].is_greedy);
          inputs.push_back(loglik_input(lr.requests[j], max_length));
        }
        const double flops = loglik_group_flops(fm, inputs);
        const data::LoglikPrediction pred = data::predict_loglik(lls, lr.item.norm_lengths);
        nlohmann::json rec = item_header(tasks[p.task], p.task, p.index);
        for (const auto& r : lr.requests)
          if (static_cast<int64_t>(r.context.size() + r.continuation.size()) > max_length + 1) rec["truncated"] = true;
        nlohmann::json base = {{"prediction", pred.acc}, {"loglik", lls}, {"is_greedy", greedy}};
        if (lr.item.reports_acc_norm) base["prediction_norm"] = pred.acc_norm;
        if (settings.record_timing) base["seconds"] = base_seconds;
        base["flops"] = flops;
        rec["methods"]["base"] = base;
        const auto& item = tasks[p.task].items[p.index];
        for (const auto& m : methods)
          rec["methods"][m->name()] =
              method_record(*m, item, lr.requests.size(), lr.item.reports_acc_norm, settings.record_timing,
                            [&] { return m->run_loglik({&item, lls}); });
        records.push_back(std::move(rec));
      }
      commit(records);
    }
  }
  if (run.done < run.total) progress.finish();
  run.seconds = seconds_since(t_run);

  run.complete = run.done == run.total;
  if (!run.complete) return run;
  // A finished run lists its items in task and item order, however its batches were interrupted
  // or sharded: finished runs of one setting have identical files.
  if (dir) {
    std::vector<nlohmann::json> ordered;
    for (std::size_t t = 0; t < tasks.size(); ++t)
      for (std::size_t i = 0; i < tasks[t].items.size(); ++i)
        if (have[t][i]) ordered.push_back(run.records[t][i]);
    dir->rewrite(ordered);
  }
  if (!shard.whole()) return run;  // c3po merge writes results.json from all the shards
  std::vector<std::string> all_methods{"base"};
  all_methods.insert(all_methods.end(), method_names.begin(), method_names.end());
  run.results = build_results({c3po_version(), model_info, rsettings, all_methods}, tasks, run.records);
  run.markdown = markdown_table(run.results);
  if (dir) io::write_json_file(dir->path("results.json"), run.results);
  return run;
}

}  // namespace c3po::eval
