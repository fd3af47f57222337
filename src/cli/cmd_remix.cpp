// `c3po reference build|info` and `c3po remix`: the reference store and one question explained.
#include <fmt/core.h>
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "cli/ranks.h"
#include "cli/remix_flags.h"
#include "data/prompt.h"
#include "eval/command.h"
#include "eval/requests.h"
#include "io/error.h"
#include "io/interrupt.h"
#include "io/mpi.h"
#include "model/engine.h"
#include "model/threads.h"
#include "remix/build.h"
#include "remix/remixer.h"
#include "remix/store.h"
#include "tokenizer/tokenizer.h"

namespace c3po::cli {

namespace {

struct BuildArgs {
  std::string model, out, split, embedder = "model", dtype = "bf16", shard;
  std::vector<std::string> data;
  std::size_t limit = 0, batch = 16;
  bool keep_incorrect = false, full_pathways = false, skip_bad = false;
};

int run_build(const BuildArgs& a, const io::MpiWorld* mpi) {
  remix::BuildOptions o;
  for (const auto& d : a.data) {
    const auto eq = d.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == d.size())
      throw Error("", "--data", "expected TASK=PATH (e.g. openbookqa=data/openbookqa/train.tsv), got \"" + d + "\"");
    o.sources.push_back({d.substr(0, eq), d.substr(eq + 1), a.split});
  }
  o.limit = a.limit;
  o.batch = a.batch;
  o.embedder = remix::EmbedderChoice::parse(a.embedder);
  o.keep_incorrect = a.keep_incorrect;
  o.half_pathways = !a.full_pathways;
  o.skip_bad = a.skip_bad;
  o.out = a.out;
  if (!a.shard.empty()) o.shard = eval::parse_shard(a.shard, "--shard");
  const bool ranks = mpi && mpi->size() > 1;
  std::vector<std::string> shard_paths;
  if (ranks) {
    if (!a.shard.empty()) throw Error("", "--shard", "is not for MPI runs: under mpirun/srun every rank takes its own shard");
    const auto n = static_cast<std::size_t>(mpi->size());
    for (std::size_t r = 0; r < n; ++r) shard_paths.push_back(fmt::format("{}.shards/{}-of-{}.store", a.out, r, n));
    o.shard = {static_cast<std::size_t>(mpi->rank()), n};
    o.out = shard_paths[o.shard.index];
    std::error_code ec;
    std::filesystem::create_directories(a.out + ".shards", ec);
    if (mpi->rank() != 0) o.progress = nullptr;  // one progress line: rank 0's
  }
  auto model = model::load_for_compute(a.model, a.dtype);
  auto tok = tokenizer::Tokenizer::load(a.model);
  io::InterruptScope interrupt;
  o.stop = interrupt.flag();
  const auto r = remix::build_reference_store(*model, tok, o);
  if (ranks) {
    if (!mpi->all(r.complete)) {
      if (mpi->rank() == 0)
        fmt::print(stderr, "c3po: interrupted; each rank's progress is under {}.shards - rerun the same command to "
                           "resume\n", a.out);
      return 130;
    }
    if (mpi->rank() != 0) return 0;
    const auto counts = remix::merge_reference_shards(shard_paths, a.out);
    fmt::print("{}: {} items run on {} ranks, {} answered correctly (stored), {} wrongly, {} malformed skipped\n",
               a.out, counts.seen, mpi->size(), counts.correct, counts.incorrect, counts.skipped);
    return 0;
  }
  if (!r.complete) {
    fmt::print(stderr, "c3po: interrupted after {} items; progress is in {}.partial - rerun the same command to resume\n",
               r.counts.seen, o.out);
    return 130;
  }
  fmt::print("{}: {} items run, {} answered correctly (stored), {} wrongly{}, {} malformed skipped, {:.1f} s{}\n", o.out,
             r.counts.seen, r.counts.correct, r.counts.incorrect, a.keep_incorrect ? " (stored, flagged)" : "",
             r.counts.skipped, r.seconds, r.resumed ? fmt::format(" (resumed after {} items)", r.resumed) : "");
  if (!o.shard.whole())
    fmt::print(stderr, "c3po: shard {} stored; when all {} shards are built, join them with c3po reference merge "
                       "--out STORE SHARD_STORE...\n", o.shard.name(), o.shard.count);
  return 0;
}

int run_info(const std::string& path) {
  const auto s = remix::ReferenceStore::open(path);
  fmt::print("store            {}\n", path);
  fmt::print("model            {}\n", s.identity().model_fingerprint);
  fmt::print("embedder         {} (dimension {})\n", s.identity().embedder, s.embedding_dim());
  fmt::print("prompt format    {}\n", s.identity().prompt_format);
  fmt::print("references       {} ({} MoE layers x {} experts, {} pathways)\n", s.size(), s.num_moe_layers(),
             s.num_experts(), s.pathways().scalar_type() == torch::kHalf ? "fp16" : "fp32");
  fmt::print("items run        {} (correct {}, wrong {}, malformed skipped {})\n", s.counts().seen, s.counts().correct,
             s.counts().incorrect, s.counts().skipped);
  std::map<std::string, int64_t> per_source;
  const auto src = s.source_index().to(torch::kLong);
  for (int64_t i = 0; i < s.size(); ++i) ++per_source[s.datasets()[src[i].item<int64_t>()]];
  for (const auto& [name, n] : per_source) fmt::print("  {:<14} {}\n", name, n);
  return 0;
}

struct RemixArgs {
  std::string model, store, question, task = "generic", dtype = "bf16", context;
  std::vector<std::string> choices;
  int answer = -1;
  RemixFlags flags;
};

std::string experts_text(const std::vector<remix::LayerExperts>& layers) {
  std::string s;
  for (const auto& l : layers) {
    s += fmt::format("    MoE layer {:>2}:", l.moe_layer);
    for (const auto& e : l.experts) s += fmt::format(" {}({:.3f})", e.expert, e.weight);
    s += "\n";
  }
  return s;
}

int run_remix(RemixArgs& a) {
  if (a.choices.size() < 2) throw Error("", "--choice", "give at least two choices");
  if (a.answer >= static_cast<int>(a.choices.size())) throw Error("", "--answer", "outside the choices");
  auto kinds = a.flags.method_kinds();
  const bool wants_oracle = std::find(kinds.begin(), kinds.end(), remix::MethodKind::Oracle) != kinds.end();
  if (wants_oracle && a.answer < 0) throw Error("", "--answer", "the oracle needs the true answer (--answer INDEX)");
  auto model = model::load_for_compute(a.model, a.dtype);
  auto tok = tokenizer::Tokenizer::load(a.model);
  auto store = std::make_shared<remix::ReferenceStore>(remix::ReferenceStore::open(a.store));
  auto session = std::make_shared<remix::RemixSession>(*model, tok, store, a.flags.options(), a.flags.candidate_pools(),
                                                        a.flags.embedder_choice(),
                                                        static_cast<std::size_t>(a.flags.cache_mb * 1048576.0));
  data::McItem item;
  item.id = "question";
  item.task = a.task;
  item.question = a.question;
  item.choices = a.choices;
  item.context = a.context;
  item.gold = a.answer >= 0 ? a.answer : 0;
  const auto req = eval::encode_letter_request(tok, item, eval::context_length(model->config().max_position_embeddings));
  model::ForwardOptions fo;
  session->prepare(fo);
  fo.vocab_rows = req.letter_ids;
  auto res = model->forward({req.ids}, fo);
  eval::ItemContext ctx;
  ctx.item = &item;
  ctx.prompt = req.prompt;
  ctx.ids = req.ids;
  ctx.letter_ids = req.letter_ids;
  ctx.letter_logits = res.logits[0].to(torch::kFloat);
  ctx.pathway = res.pathway[0];
  if (res.embedding.defined()) ctx.embedding = res.embedding[0];
  ctx.prefix = &res.prefixes.at(0);

  const auto letters = data::answer_letters(a.choices.size());
  auto show = [&](const std::string& name, int prediction, const std::vector<double>& probs) {
    std::string p;
    for (std::size_t j = 0; j < probs.size(); ++j) p += fmt::format("{}{}={:.3f}", j ? " " : "", letters[j].substr(1), probs[j]);
    fmt::print("{:<7} answers {}  [{}]{}\n", name, letters[prediction].substr(1), p,
               a.answer >= 0 ? (prediction == a.answer ? "  correct" : "  wrong") : "");
  };
  fmt::print("{}\n\n", req.prompt);
  const auto base_probs = torch::softmax(ctx.letter_logits.to(torch::kDouble), 0);
  std::vector<double> bp(base_probs.data_ptr<double>(), base_probs.data_ptr<double>() + base_probs.numel());
  show("base", static_cast<int>(base_probs.argmax().item<int64_t>()), bp);
  for (auto kind : kinds) {
    const auto m = remix::make_method(session, kind);
    const auto [out, t] = m->run_traced(ctx);
    show(m->name(), out.prediction, out.letter_probs);
    for (const auto& n : t.neighbours)
      fmt::print("    neighbour {} ({}) similarity {:.3f} weight {:.3f}\n", n.id, n.task, n.similarity,
                 n.weight.value_or(0.0));
    if (t.alpha) fmt::print("    alpha {:.1f}\n", *t.alpha);
    if (!t.losses.empty() && kind != remix::MethodKind::Mode) {
      std::string l;
      for (double v : t.losses) l += fmt::format(" {:.4f}", v);
      fmt::print("    {}:{}\n", kind == remix::MethodKind::Kernel ? "objective per alpha 0..1" : "loss per step", l);
    }
    for (const auto& n : t.demonstrations)
      fmt::print("    demonstration {} ({}) similarity {:.3f}\n", n.id, n.task, n.similarity);
    if (!t.experts_before.empty())
      fmt::print("    top experts before:\n{}    after:\n{}", experts_text(t.experts_before), experts_text(t.experts_after));
    fmt::print("    {:.3f} s, {:.2e} FLOPs{}\n", out.seconds, out.flops,
               kind == remix::MethodKind::Oracle ? "  (oracle: an upper bound that uses the true answer)" : "");
  }
  return 0;
}

}  // namespace

void add_remix_commands(CLI::App& app, Action& action) {
  auto* ref = app.add_subcommand("reference", "Build or inspect a reference store of successful pathways");
  ref->require_subcommand(1);
  auto b = std::make_shared<BuildArgs>();
  auto* build = ref->add_subcommand("build", "Run reference items and store the pathways of those answered correctly");
  build->add_option("MODEL", b->model, "Hugging Face model folder (config.json, safetensors, tokenizer.json)")->required();
  build->add_option("--data", b->data, "TASK=PATH, repeatable (task names as in c3po eval: openbookqa, sciq, ...)")
      ->required();
  build->add_option("--split", b->split, "split to read where PATH is a folder (default: the task's own)");
  build->add_option("--out", b->out, "store file to write")->required();
  build->add_option("--embedder", b->embedder, "model, model:layer=N, hash, hash:dim=N or bert:FOLDER (a sentence-transformers folder)")->capture_default_str();
  build->add_option("--limit", b->limit, "at most N items per dataset (0: all)")->check(eval::count_check());
  build->add_option("--batch", b->batch, "prompts per forward")->capture_default_str()->check(eval::count_check());
  build->add_option("--dtype", b->dtype, "bf16 or f32")->capture_default_str();
  build->add_flag("--keep-incorrect", b->keep_incorrect, "also store wrongly answered items (flagged, never neighbours)");
  build->add_flag("--full-pathways", b->full_pathways, "store pathways in fp32 instead of fp16");
  build->add_flag("--skip-bad", b->skip_bad, "skip malformed dataset lines (and count them) instead of stopping");
  build->add_option("--shard", b->shard,
                    "I/N: build only shard I (0 <= I < N) of the items, for a job array; join the N shard stores "
                    "with c3po reference merge (under mpirun/srun the ranks are the shards)");
  build->callback([&action, b] {
    action = [b] {
      const auto mpi = io::MpiWorld::join_if_launched();
      return run_on_every_rank(mpi.get(), [&] { return run_build(*b, mpi.get()); });
    };
  });

  auto merge_paths = std::make_shared<std::vector<std::string>>();
  auto merge_out = std::make_shared<std::string>();
  auto* merge = ref->add_subcommand("merge", "Join the shard stores of one sharded build (--shard I/N) into one store");
  merge->add_option("SHARD", *merge_paths, "every shard's store")->required();
  merge->add_option("--out", *merge_out, "store file to write")->required();
  merge->callback([&action, merge_paths, merge_out] {
    action = [merge_paths, merge_out] {
      const auto c = remix::merge_reference_shards(*merge_paths, *merge_out);
      fmt::print("{}: {} shards joined; {} items run, {} answered correctly (stored), {} wrongly, {} malformed skipped\n",
                 *merge_out, merge_paths->size(), c.seen, c.correct, c.incorrect, c.skipped);
      return 0;
    };
  });

  auto info_path = std::make_shared<std::string>();
  auto* info = ref->add_subcommand("info", "Print what a reference store holds");
  info->add_option("STORE", *info_path, "store file")->required();
  info->callback([&action, info_path] { action = [info_path] { return run_info(*info_path); }; });

  auto r = std::make_shared<RemixArgs>();
  r->flags.methods = "mode,kernel,ngd";
  auto* remix = app.add_subcommand("remix", "Re-mix the expert routing for one question and explain what changed");
  remix->add_option("MODEL", r->model, "Hugging Face model folder")->required();
  remix->add_option("--reference", r->store, "reference store (c3po reference build)")->required();
  remix->add_option("--question", r->question, "the question")->required();
  remix->add_option("--choice", r->choices, "a choice, repeated in order (A, B, ...)")->required();
  remix->add_option("--answer", r->answer, "index of the true answer (0-based; needed by --method oracle)");
  remix->add_option("--task", r->task, "task whose prompt format and candidate pool to use")->capture_default_str();
  remix->add_option("--context", r->context, "passage for tasks that have one (boolq, sciq, ...)");
  remix->add_option("--dtype", r->dtype, "bf16 or f32")->capture_default_str();
  add_remix_flags(remix, r->flags);
  remix->callback([&action, r] { action = [r] { return run_remix(*r); }; });
}

}  // namespace c3po::cli
