// Harness throughput (items/s) on ARC-Challenge Dev, both protocols, by batch size.
// Default model: the tiny olmoe test checkpoint with the letter-capable tokenizer of the eval
// tests; C3PO_EVAL_BENCH_MODEL=<folder> (and C3PO_EVAL_BENCH_DTYPE=bf16|f32) measures another one.
//
//   bench_eval [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "eval/fixture.h"  // tests/eval/fixture.h: the letter-capable tiny model
#include "eval/harness.h"

namespace {

using namespace c3po;

struct Loaded {
  std::string folder, dtype;
  std::unique_ptr<model::MoeModel> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
};

const Loaded& loaded() {
  static const Loaded l = [] {
    Loaded x;
    const char* folder = std::getenv("C3PO_EVAL_BENCH_MODEL");
    const char* dtype = std::getenv("C3PO_EVAL_BENCH_DTYPE");
    x.folder = folder ? folder : eval::test::letter_model_dir();
    x.dtype = dtype ? dtype : "f32";
    x.model = model::MoeModel::load(x.folder, model::parse_dtype(x.dtype));
    x.tok = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::load(x.folder));
    return x;
  }();
  return l;
}

void run_arc(benchmark::State& state, eval::Protocol protocol) {
  const Loaded& l = loaded();
  eval::EvalSettings s;
  s.model = l.folder;
  s.dtype = l.dtype;
  s.protocol = protocol;
  s.tasks = {{"arc_challenge", eval::test::arc_dev(), ""}};
  s.limit = static_cast<std::size_t>(state.range(1));
  s.batch = static_cast<std::size_t>(state.range(0));
  eval::RunControl quiet;
  quiet.progress = nullptr;
  std::size_t items = 0;
  for (auto _ : state) {
    const auto run = eval::run_eval(s, *l.model, *l.tok, {}, quiet);
    items += run.done;
    benchmark::DoNotOptimize(run.results);
  }
  state.counters["items/s"] = benchmark::Counter(static_cast<double>(items), benchmark::Counter::kIsRate);
}

void BM_LetterArc(benchmark::State& state) { run_arc(state, eval::Protocol::Letter); }
void BM_LoglikArc(benchmark::State& state) { run_arc(state, eval::Protocol::Loglik); }

// Args: batch, items.
BENCHMARK(BM_LetterArc)->Args({1, 100})->Args({16, 100})->Args({64, 100})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoglikArc)->Args({1, 50})->Args({16, 50})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
