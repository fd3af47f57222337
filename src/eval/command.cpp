#include "eval/command.h"

#include <fmt/format.h>

#include "data/prompt.h"
#include "eval/harness.h"
#include "eval/merge.h"
#include "io/error.h"
#include "io/interrupt.h"
#include "model/threads.h"

namespace c3po::eval {
namespace {

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

int dump_prompts(const EvalSettings& s, std::size_t n) {
  const auto tok = tokenizer::Tokenizer::load(s.model);
  const auto tasks = load_tasks(s);
  std::size_t shown = 0;
  for (std::size_t t = 0; t < tasks.size() && shown < n; ++t) {
    for (std::size_t i = 0; i < tasks[t].items.size() && shown < n; ++i, ++shown) {
      const auto& item = tasks[t].items[i];
      fmt::print("=== {} #{} id={} gold={}\n", item.task, i, item.id, item.gold);
      if (s.protocol == Protocol::Letter) {
        const LetterRequest r = encode_letter_request(tok, item, 0);  // shown whole
        std::string letters;
        const auto names = data::answer_letters(item.choices.size());
        for (std::size_t k = 0; k < names.size(); ++k)
          letters += fmt::format("{}'{}'={}", k ? " " : "", names[k], r.letter_ids[k]);
        fmt::print("{}\n--- {} tokens; letters {}\n", r.prompt, r.ids.size(), letters);
      } else {
        const data::LoglikItem li = data::render_loglik(item);
        for (std::size_t k = 0; k < li.requests.size(); ++k)
          fmt::print("--- request {}: context {} continuation {}\n", k,
                     nlohmann::json(li.requests[k].context).dump(), nlohmann::json(li.requests[k].continuation).dump());
      }
    }
  }
  return 0;
}

}  // namespace

CLI::App* add_eval_subcommand(CLI::App& app, EvalCommandOptions& o) {
  auto* cmd = app.add_subcommand("eval", "Evaluate a model on multiple-choice benchmarks (letter or lm-eval log-likelihood)");
  cmd->add_option("MODEL", o.settings.model, "Hugging Face model folder (config.json, safetensors, tokenizer.json)")
      ->required();
  cmd->add_option("--task", o.task_names, "task name (mmlu, arc_challenge, arc_easy, hellaswag, piqa, winogrande, "
                                          "boolq, ...); repeat together with --data")
      ->required();
  cmd->add_option("--data", o.data_paths, "data file or folder of the task given at the same position")->required();
  cmd->add_option("--split", o.splits, "split: once for all tasks, or once per task (default: the task's own)");
  cmd->add_option("--protocol", o.protocol, "letter (answer-letter logits) or loglik (lm-evaluation-harness)")
      ->capture_default_str();
  cmd->add_option("--limit", o.settings.limit, "evaluate only the first N items of each task (after shuffling)")->check(count_check());
  cmd->add_option("--shuffle-seed", o.shuffle_seed, "shuffle each task's items with this seed before --limit");
  cmd->add_option("--out", o.settings.out_dir, "folder for run.json, items.jsonl, results.json (makes the run resumable)");
  cmd->add_option("--shard", o.shard,
                  "I/N: run only shard I (0 <= I < N) of the items into --out, for a job array; join the N shard "
                  "folders with c3po merge (under mpirun/srun the ranks are the shards)");
  cmd->add_option("--batch", o.settings.batch, "prompts per forward")->capture_default_str()->check(count_check());
  cmd->add_option("--dtype", o.settings.dtype, "compute dtype: bf16 or f32")->capture_default_str();
  cmd->add_flag("--skip-bad", o.settings.skip_bad, "skip malformed items (counted) instead of stopping");
  cmd->add_flag("!--no-timing", o.settings.record_timing,
                "leave wall-clock times out of items.jsonl and results.json (reruns give identical files)");
  cmd->add_option("--dump-prompts", o.dump_prompts, "print the first N rendered prompts (loglik: requests) and stop")->check(count_check());
  return cmd;
}

void finish_settings(EvalCommandOptions& o) {
  EvalSettings& s = o.settings;
  if (o.task_names.size() != o.data_paths.size())
    throw Error("", "--task/--data",
                fmt::format("give one --data per --task, in the same order ({} tasks, {} data)", o.task_names.size(),
                            o.data_paths.size()));
  if (!o.splits.empty() && o.splits.size() != 1 && o.splits.size() != o.task_names.size())
    throw Error("", "--split", fmt::format("give none, one for all, or one per task ({} tasks, {} splits)",
                                           o.task_names.size(), o.splits.size()));
  s.tasks.clear();
  for (std::size_t i = 0; i < o.task_names.size(); ++i) {
    const std::string split = o.splits.empty() ? "" : o.splits.size() == 1 ? o.splits[0] : o.splits[i];
    s.tasks.push_back({o.task_names[i], o.data_paths[i], split});
  }
  s.protocol = parse_protocol(o.protocol);
  s.shard = o.shard.empty() ? Shard{} : parse_shard(o.shard, "--shard");
  if (!s.shard.whole() && s.out_dir.empty())
    throw Error("", "--shard", "needs --out: a shard is written to its folder and joined with c3po merge");
  if (s.dtype != "bf16" && s.dtype != "f32") throw Error("", "--dtype", "expected bf16 or f32, got '" + s.dtype + "'");
  if (s.batch == 0) throw Error("", "--batch", "must be at least 1");
  s.shuffle_seed.reset();
  if (!o.shuffle_seed.empty()) {
    std::size_t used = 0;
    uint64_t seed = 0;
    try {
      seed = std::stoull(o.shuffle_seed, &used, 10);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != o.shuffle_seed.size() || o.shuffle_seed[0] == '-')
      throw Error("", "--shuffle-seed", "expected a non-negative integer, got '" + o.shuffle_seed + "'");
    s.shuffle_seed = seed;
  }
}

int run_eval_command(EvalCommandOptions& o) {
  finish_settings(o);
  const bool ranks = o.mpi && o.mpi->size() > 1;
  if (ranks && !o.settings.shard.whole())
    throw Error("", "--shard", "is not for MPI runs: under mpirun/srun every rank takes its own shard");
  if (ranks && o.settings.out_dir.empty())
    throw Error("", "--out", "an MPI run needs --out: each rank writes its shard there and rank 0 merges them");
  EvalSettings s = o.settings;
  std::vector<std::string> shard_dirs;
  if (ranks) {
    const auto n = static_cast<std::size_t>(o.mpi->size());
    for (std::size_t r = 0; r < n; ++r) shard_dirs.push_back(fmt::format("{}/shards/{}-of-{}", o.settings.out_dir, r, n));
    s.shard = {static_cast<std::size_t>(o.mpi->rank()), n};
    s.out_dir = shard_dirs[s.shard.index];
  }
  if (o.dump_prompts > 0) return dump_prompts(s, o.dump_prompts);

  const auto tok = tokenizer::Tokenizer::load(s.model);
  const auto model = model::load_for_compute(s.model, s.dtype);
  std::vector<std::unique_ptr<ItemMethod>> methods;
  if (o.method_factory) methods = o.method_factory(MethodContext{*model, tok, s});

  io::InterruptScope interrupt;
  RunControl control;
  control.stop = interrupt.flag();
  if (ranks && o.mpi->rank() != 0) control.progress = nullptr;  // one progress line: rank 0's
  const EvalRun run = run_eval(s, *model, tok, methods, control);
  if (ranks) {
    // Every rank reaches this point, finished or interrupted; a rank that failed has ended the job.
    if (!o.mpi->all(run.complete)) {
      if (o.mpi->rank() == 0)
        fmt::print(stderr, "c3po eval: interrupted; the ranks' items are saved under {}/shards; rerun the same "
                           "command to resume\n", shell_quote(o.settings.out_dir));
      return 130;
    }
    if (o.mpi->rank() != 0) return 0;
    const MergedRun merged = merge_shards(shard_dirs, o.settings.out_dir);
    fmt::print("{}", merged.markdown);
    fmt::print(stderr, "c3po eval: {} ranks; results in {}/results.json\n", o.mpi->size(), o.settings.out_dir);
    return 0;
  }
  if (!run.complete) {
    if (s.out_dir.empty())
      fmt::print(stderr, "c3po eval: interrupted after {}/{} items; nothing was saved (use --out DIR to make a run "
                         "resumable)\n", run.done, run.total);
    else
      fmt::print(stderr, "c3po eval: interrupted after {}/{} items, saved in {}/items.jsonl; rerun the same command "
                         "to resume\n", run.done, run.total, shell_quote(s.out_dir));
    return 130;
  }
  if (!s.shard.whole()) {
    fmt::print(stderr, "c3po eval: shard {} finished ({} items) in {}; when all {} shards are finished, join them with "
                       "c3po merge --out DIR SHARD_FOLDER...\n", s.shard.name(), run.total, shell_quote(s.out_dir),
               s.shard.count);
    return 0;
  }
  fmt::print("{}", run.markdown);
  if (!s.out_dir.empty()) fmt::print(stderr, "c3po eval: results in {}/results.json\n", s.out_dir);
  return 0;
}

}  // namespace c3po::eval
