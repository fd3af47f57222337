// `c3po demo`: the whole method on the shipped demo model (or any model and data): reference
// store, then base / icl / mode finding / kernel regression / NGD / oracle on two test conditions
// (in-distribution and shifted), the tables, the mechanism numbers and findings, and reports.
#include <fmt/core.h>

#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/demo_analysis.h"
#include "cli/remix_flags.h"
#include "eval/command.h"
#include "eval/harness.h"
#include "eval/settings.h"
#include "io/error.h"
#include "io/interrupt.h"
#include "io/json_file.h"
#include "model/engine.h"
#include "model/threads.h"
#include "remix/build.h"
#include "tokenizer/tokenizer.h"
#if __has_include("report/report.h")
#include "report/report.h"
#define C3PO_HAVE_REPORT 1
#endif

namespace c3po::cli {

namespace fs = std::filesystem;

namespace {

struct DemoArgs {
  std::string model, reference, test, shifted, out = "c3po-demo";
  std::string task = "generic";
  std::size_t limit = 150, reference_limit = 0, batch = 16;
  bool full = false;
  std::string dtype = "f32";
  RemixFlags flags;
};

std::string shipped(const std::string& rel) { return (fs::path(C3PO_SOURCE_DIR) / "models/demo" / rel).string(); }

// The settings the demo runs with, chosen on the dev splits only (models/demo/README.md,
// "Tuning", scripts/tune-demo.sh): embedder, learning rate, k and kernel width; every other
// re-mixing setting keeps the method's default.
void demo_defaults(RemixFlags& f) {
  f.methods = "base,icl,mode,kernel,ngd,oracle";
  f.embedder = "hash";
  f.lr = 0.1;
  f.k = 10;
  f.kernel = "gaussian:1";
  f.trace_steps = true;
}

int run_demo(DemoArgs& a) {
  const bool shipped_model = a.model.empty();
  if (shipped_model) a.model = shipped("");
  if (a.reference.empty()) a.reference = shipped("data/reference.jsonl");
  if (a.test.empty()) a.test = shipped("data/test.jsonl");
  if (a.shifted.empty() && shipped_model) a.shifted = shipped("data/test-shifted.jsonl");
  if (a.shifted == "none") a.shifted.clear();
  for (const auto& p : {a.model, a.reference, a.test})
    if (!fs::exists(p)) throw Error(p, "", "not found (the demo model and its data ship in models/demo)");
  if (!a.shifted.empty() && !fs::exists(a.shifted)) throw Error(a.shifted, "", "not found");
  if (a.full) a.limit = 0;
  fs::create_directories(a.out);
  io::InterruptScope interrupt;

  fmt::print(stderr, "c3po demo: model {}\n", a.model);
  auto model = model::load_for_compute(a.model, a.dtype);
  auto tok = tokenizer::Tokenizer::load(a.model);

  // 1. The reference store (reused only when it was built from the same data with the same
  //    settings and finished).
  remix::BuildOptions bo;
  bo.sources.push_back({a.task, a.reference, ""});
  bo.limit = a.reference_limit;
  bo.batch = a.batch;
  bo.embedder = a.flags.embedder_choice();
  bo.out = (fs::path(a.out) / "reference.store").string();
  bo.stop = interrupt.flag();
  bool reuse = false;
  if (fs::exists(bo.out)) {
    try {
      auto s = remix::ReferenceStore::open(bo.out);
      const remix::StoreIdentity id{model->fingerprint(), remix::TextEmbedder(bo.embedder, *model).identity(),
                                    std::string(data::kLetterPromptFormat)};
      s.require(id);
      reuse = s.metadata("build_settings") == remix::build_settings(bo, id);
    } catch (const Error&) {
      reuse = false;
    }
  }
  if (!reuse) {
    fs::remove(bo.out);
    fmt::print(stderr, "c3po demo: building the reference store from {}\n", a.reference);
    const auto r = remix::build_reference_store(*model, tok, bo);
    if (!r.complete) {
      fmt::print(stderr, "c3po: interrupted; rerun the same command to resume\n");
      return 130;
    }
    fmt::print(stderr, "c3po demo: {} of {} reference items answered correctly and stored\n", r.counts.correct,
               r.counts.seen);
  } else {
    fmt::print(stderr, "c3po demo: reusing {}\n", bo.out);
  }

  // 2. Base and every method on each condition's test items, through the evaluation harness
  //    (resumable), one run folder per condition.
  std::vector<std::pair<std::string, std::string>> conditions{{"in-distribution", a.test}};
  if (!a.shifted.empty()) conditions.emplace_back("shifted", a.shifted);
  std::vector<eval::EvalRun> runs;
  std::vector<std::string> run_dirs;
  for (const auto& [name, file] : conditions) {
    eval::EvalSettings es;
    es.model = a.model;
    es.tasks.push_back({a.task, file, ""});
    es.limit = a.limit;
    es.batch = a.batch;
    es.dtype = a.dtype;
    es.out_dir = (fs::path(a.out) / name / "run").string();
    es.method_settings = remix_settings(a.flags, bo.out);
    auto methods = make_remix_methods(a.flags, bo.out, *model, tok);
    eval::RunControl control;
    control.stop = interrupt.flag();
    fmt::print(stderr, "c3po demo: condition {} ({})\n", name, file);
    runs.push_back(eval::run_eval(es, *model, tok, methods, control));
    run_dirs.push_back(es.out_dir);
    if (!runs.back().complete) {
      fmt::print(stderr, "c3po: interrupted after {} of {} items; rerun the same command to resume\n",
                 runs.back().done, runs.back().total);
      return 130;
    }
  }
  for (std::size_t c = 0; c < conditions.size(); ++c)
    fmt::print("\n## {} ({})\n\n{}", conditions[c].first, conditions[c].second, runs[c].markdown);
  fmt::print("\n(oracle: an upper bound that uses the true answer; never a deployable method)\n");

  // 3. What happened inside: accuracy per NGD step, expert usage per family, neighbours, pathway
  //    distances, findings (on the demo's data, whose lines name their family).
  auto store = remix::ReferenceStore::open(bo.out);
  DemoAnalysisInput ai;
  ai.model = model.get();
  ai.tok = &tok;
  ai.store = &store;
  ai.critical = a.flags.options().layers.resolve(model->num_moe_layers());
  ai.reference_file = a.reference;
  for (std::size_t c = 0; c < conditions.size(); ++c) ai.conditions.push_back({conditions[c].first, conditions[c].second, &runs[c]});
  const DemoAnalysis analysis = analyse_demo(ai);
  io::write_file_atomic((fs::path(a.out) / "analysis.md").string(), analysis.text);
  io::write_json_file((fs::path(a.out) / "analysis.json").string(), analysis.numbers);
  fmt::print("\n{}", analysis.text);

  // 4. The reports, one per condition.
#ifdef C3PO_HAVE_REPORT
  for (std::size_t c = 0; c < conditions.size(); ++c) {
    const auto html = (fs::path(a.out) / conditions[c].first / "report.html").string();
    report::ReportOptions ro;
    ro.title = "c3po demo, " + conditions[c].first + ": " + a.model;
    ro.questions_file = conditions[c].second;
    ro.num_experts = static_cast<std::size_t>(model->num_experts());
    ro.extra_sections.emplace_back("Mechanism and findings (both conditions)", analysis.text);
    report::write_report(run_dirs[c], html, ro);
    fmt::print("report: {}\n", html);
  }
#endif
  fmt::print("analysis: {}\n", (fs::path(a.out) / "analysis.md").string());
  return 0;
}

}  // namespace

void add_demo_run_commands(CLI::App& app, Action& action) {
  auto a = std::make_shared<DemoArgs>();
  demo_defaults(a->flags);
  auto* cmd = app.add_subcommand(
      "demo", "Run the whole C3PO method on the shipped demo model, in-distribution and shifted (or --model/--reference/--test)");
  cmd->add_option("--model", a->model, "model folder (default: the shipped models/demo)");
  cmd->add_option("--reference", a->reference, "reference data (default: models/demo/data/reference.jsonl)");
  cmd->add_option("--test", a->test, "test data of the in-distribution condition (default: models/demo/data/test.jsonl)");
  cmd->add_option("--shifted", a->shifted,
                  "test data of the shifted condition (default for the shipped model: "
                  "models/demo/data/test-shifted.jsonl; none: skip it)");
  cmd->add_option("--task", a->task, "task (format) of the data files")->capture_default_str();
  cmd->add_option("--out", a->out, "output folder: reference store, one run and report per condition, analysis")
      ->capture_default_str();
  cmd->add_option("--limit", a->limit, "test items per condition (0: all)")->capture_default_str()->check(eval::count_check());
  cmd->add_flag("--full", a->full, "every test item (600 per condition on the shipped data)");
  cmd->add_option("--reference-limit", a->reference_limit, "reference items (0: all)")->check(eval::count_check());
  cmd->add_option("--batch", a->batch, "prompts per forward")->capture_default_str()->check(eval::count_check());
  cmd->add_option("--dtype", a->dtype, "bf16 or f32")->capture_default_str();
  add_remix_flags(cmd, a->flags);
  cmd->callback([&action, a] { action = [a] { return run_demo(*a); }; });
}

}  // namespace c3po::cli
