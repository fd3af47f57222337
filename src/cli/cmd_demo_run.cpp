// `c3po demo`: the whole method on the shipped demo model (or any model and data): reference
// store, then base / mode finding / kernel regression / NGD / oracle on the test split, the table,
// and a report folder.
#include <fmt/core.h>

#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/remix_flags.h"
#include "eval/harness.h"
#include "eval/settings.h"
#include "io/error.h"
#include "io/interrupt.h"
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
  std::string model, reference, test, out = "c3po-demo";
  std::string task = "generic";
  std::size_t limit = 0, reference_limit = 0, batch = 16;
  std::string dtype = "f32";
  RemixFlags flags;
};

std::string shipped(const std::string& rel) { return (fs::path(C3PO_SOURCE_DIR) / "models/demo" / rel).string(); }

int run_demo(DemoArgs& a) {
  if (a.model.empty()) a.model = shipped("");
  if (a.reference.empty()) a.reference = shipped("data/reference.jsonl");
  if (a.test.empty()) a.test = shipped("data/test.jsonl");
  for (const auto& p : {a.model, a.reference, a.test})
    if (!fs::exists(p)) throw Error(p, "", "not found (the demo model and its data ship in models/demo)");
  fs::create_directories(a.out);
  io::InterruptScope interrupt;

  fmt::print(stderr, "c3po demo: model {}\n", a.model);
  auto model = model::load_for_compute(a.model, a.dtype);
  auto tok = tokenizer::Tokenizer::load(a.model);

  // 1. The reference store (reused when a finished one with the same settings is there).
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
      s.require({model->fingerprint(), remix::TextEmbedder(bo.embedder, *model).identity(),
                 std::string(data::kLetterPromptFormat)});
      reuse = s.metadata("build_settings").find(a.reference) != std::string::npos;
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

  // 2. Base and every method on the test split, through the evaluation harness (resumable).
  eval::EvalSettings es;
  es.model = a.model;
  es.tasks.push_back({a.task, a.test, ""});
  es.limit = a.limit;
  es.batch = a.batch;
  es.dtype = a.dtype;
  es.out_dir = (fs::path(a.out) / "run").string();
  es.method_settings = remix_settings(a.flags, bo.out);
  auto methods = make_remix_methods(a.flags, bo.out, *model, tok);
  eval::RunControl control;
  control.stop = interrupt.flag();
  const auto run = eval::run_eval(es, *model, tok, methods, control);
  if (!run.complete) {
    fmt::print(stderr, "c3po: interrupted after {} of {} items; rerun the same command to resume\n", run.done,
               run.total);
    return 130;
  }
  fmt::print("{}", run.markdown);
  fmt::print("(oracle: an upper bound that uses the true answer; never a deployable method)\n");

  // 3. The report.
#ifdef C3PO_HAVE_REPORT
  const auto html = (fs::path(a.out) / "report.html").string();
  report::ReportOptions ro;
  ro.title = "c3po demo: " + a.model;
  ro.questions_file = a.test;
  ro.num_experts = static_cast<std::size_t>(model->num_experts());
  report::write_report(es.out_dir, html, ro);
  fmt::print("report: {}\n", html);
#endif
  fmt::print("results: {}\n", (fs::path(es.out_dir) / "results.json").string());
  return 0;
}

}  // namespace

void add_demo_run_commands(CLI::App& app, Action& action) {
  auto a = std::make_shared<DemoArgs>();
  a->flags.methods = "base,mode,kernel,ngd,oracle";
  auto* cmd = app.add_subcommand("demo", "Run the whole C3PO method on the shipped demo model (or --model/--reference/--test)");
  cmd->add_option("--model", a->model, "model folder (default: the shipped models/demo)");
  cmd->add_option("--reference", a->reference, "reference data (default: models/demo/data/reference.jsonl)");
  cmd->add_option("--test", a->test, "test data (default: models/demo/data/test.jsonl)");
  cmd->add_option("--task", a->task, "task (format) of both data files")->capture_default_str();
  cmd->add_option("--out", a->out, "output folder: reference store, run, report.html")->capture_default_str();
  cmd->add_option("--limit", a->limit, "test items (0: all)");
  cmd->add_option("--reference-limit", a->reference_limit, "reference items (0: all)");
  cmd->add_option("--batch", a->batch, "prompts per forward")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "bf16 or f32")->capture_default_str();
  add_remix_flags(cmd, a->flags);
  cmd->callback([&action, a] { action = [a] { return run_demo(*a); }; });
}

}  // namespace c3po::cli
