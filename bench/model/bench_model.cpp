// Engine speed and memory at the real dimensions of OLMoE-1B-7B (random bf16 weights built in
// memory by bench/common/olmoe_shape.h, no file): prefill of a 256-token prompt, one tail re-run
// over the last 5 MoE layers with its backward pass, peak resident memory against the weights, and
// this machine's bf16 matmul rate.
//
//   bench_model [--layer_sets=N] [--benchmark_filter=...]
// The full model needs about 13 GB of RAM for its weights. --layer_sets=N (default 16 = all
// distinct) builds only N distinct decoder layers and reuses their tensors in the other layers:
// the same work and memory traffic per token, for machines where 13 GB are not free. Peak memory is
// then compared with the bytes of the distinct weights.
#include <benchmark/benchmark.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "common/olmoe_shape.h"
#include "model/blocks.h"
#include "model/engine.h"
#include "model/kernels/bf16_matmul.h"
#include "model/threads.h"

namespace {

using namespace c3po::model;
using c3po::bench::vm_hwm_bytes;

std::vector<int64_t> random_prompt(int64_t n, int64_t vocab, int64_t seed) {
  auto t = torch::randint(vocab, {n}, torch::TensorOptions().dtype(torch::kInt64));
  std::vector<int64_t> ids(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
  ids[0] = seed % vocab;
  return ids;
}

void prefill(benchmark::State& state, const MoeModel& model) {
  torch::NoGradGuard no_grad;
  auto prompt = random_prompt(state.range(0), model.config().vocab_size, 1);
  for (auto _ : state) {
    auto r = model.forward({prompt});
    benchmark::DoNotOptimize(r.logits.data_ptr());
  }
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(state.range(0)) * state.iterations(), benchmark::Counter::kIsRate);
}

// One NGD step's model work for one neighbour: tail over the last 5 MoE layers under an omega
// override of those layers, logits of 4 letter rows, cross-entropy, backward to omega.
void tail_backward(benchmark::State& state, const MoeModel& model) {
  const int L = model.num_moe_layers(), neighbours = static_cast<int>(state.range(0));
  std::vector<std::vector<int64_t>> prompts;
  for (int i = 0; i < neighbours; ++i) prompts.push_back(random_prompt(200, model.config().vocab_size, 100 + i));
  ForwardOptions keep;
  keep.keep_prefix_from = L - 5;
  keep.capture = true;
  auto base = model.forward(prompts, keep);
  std::vector<const PrefixState*> states;
  for (const auto& p : base.prefixes) states.push_back(&p);
  const std::vector<int64_t> letters{330, 347, 329, 399};
  for (auto _ : state) {
    RouteOverride route;
    for (int m = L - 5; m < L; ++m) route.layers.push_back({m, base.pathway[0][m].clone().requires_grad_(true), {}});
    auto logits = model.tail(states, route, letters);
    auto loss = torch::nn::functional::cross_entropy(logits, torch::zeros({neighbours}, torch::kInt64));
    loss.backward();
    benchmark::DoNotOptimize(route.layers[0].omega.grad().data_ptr());
  }
  state.counters["prefix_MiB"] = static_cast<double>(base.prefixes[0].bytes()) / 1048576.0;
}

void matmul_bf16(benchmark::State& state) {
  const int64_t m = state.range(0), k = 2048, n = 1024;
  auto a = torch::randn({m, k}, torch::kBFloat16), b = torch::randn({n, k}, torch::kBFloat16);
  for (auto _ : state) {
    auto c = torch::nn::functional::linear(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(2.0 * m * k * n * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

// One expert's projection [1024 x 2048] on m rows, through LibTorch, through project() (the
// few-rows kernel where it applies) or through the kernel at any m (as the grouped experts call
// it: columns split among the threads, rows padded to a stride of K + 32), cycling over 64 weight
// matrices (256 MiB) so that the weights come from memory as in a forward pass.
enum class Path { LibTorch, Project, Kernel };
void expert_projection(benchmark::State& state, Path path) {
  const int64_t m = state.range(0), k = 2048, n = 1024, ring = 64;
  if (path == Path::Kernel && !c3po::model::kernels::bf16_small_matmul_supported()) {
    state.SkipWithError("this CPU has no AVX-512 BF16");
    return;
  }
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> weights;
  for (int64_t i = 0; i < ring; ++i) weights.push_back(torch::randn({n, k}, torch::kBFloat16));
  auto a = torch::randn({m, k}, torch::kBFloat16);
  auto padded = torch::empty({m, k + 32}, torch::kBFloat16).narrow(1, 0, k);
  padded.copy_(a);
  auto out = torch::empty({m, n}, torch::kBFloat16);
  auto bits = [](const torch::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); };
  int64_t i = 0;
  for (auto _ : state) {
    const auto& w = weights[static_cast<size_t>(i++ % ring)];
    if (path == Path::Kernel) {
      const int64_t parts = torch::get_num_threads();
      at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
          c3po::model::kernels::bf16_small_matmul(bits(padded), k + 32, m, k, bits(w), nullptr, bits(out), n, n * p / parts / 6 * 6,
                                                  p + 1 == parts ? n : n * (p + 1) / parts / 6 * 6);
      });
      benchmark::DoNotOptimize(out.data_ptr());
      continue;
    }
    auto c = path == Path::Project ? c3po::model::project(a, w, torch::Tensor()) : torch::nn::functional::linear(a, w);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(2.0 * m * k * n * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.counters["weight_GBs"] =
      benchmark::Counter(2.0 * k * n * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

void peak_memory(benchmark::State& state, double weights) {
  for (auto _ : state) benchmark::DoNotOptimize(vm_hwm_bytes());
  state.counters["VmHWM_GiB"] = vm_hwm_bytes() / (1 << 30);
  state.counters["weights_GiB"] = weights / (1 << 30);
  state.counters["peak_over_weights"] = vm_hwm_bytes() / weights;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t layer_sets = c3po::bench::take_layer_sets(argc, argv);
  benchmark::Initialize(&argc, argv);
  c3po::model::set_compute_threads(0);
  benchmark::RegisterBenchmark("matmul_bf16_2048x1024", matmul_bf16)->Arg(1)->Arg(32)->Arg(256)->UseRealTime();
  for (auto [path, name] : {std::pair{Path::LibTorch, "libtorch"}, {Path::Project, "project"}, {Path::Kernel, "kernel"}})
    benchmark::RegisterBenchmark((std::string("expert_projection/") + name).c_str(), [path = path](benchmark::State& s) { expert_projection(s, path); })
        ->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(12)->Arg(16)->Arg(24)->Arg(32)->Arg(48)->Arg(64)->UseRealTime();
  double weight_bytes = 0;
  auto model = c3po::bench::olmoe_model(layer_sets, &weight_bytes);
  std::fprintf(stderr, "threads %d, %lld distinct layers, weights %.2f GiB, after build VmHWM %.2f GiB\n",
               torch::get_num_threads(), static_cast<long long>(layer_sets), weight_bytes / (1 << 30),
               vm_hwm_bytes() / (1 << 30));
  benchmark::RegisterBenchmark("prefill", [&](benchmark::State& s) { prefill(s, *model); })
      ->Arg(256)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
  benchmark::RegisterBenchmark("tail5_backward", [&](benchmark::State& s) { tail_backward(s, *model); })
      ->Arg(1)->Arg(3)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
  benchmark::RegisterBenchmark("peak_memory", [&](benchmark::State& s) { peak_memory(s, weight_bytes); })->Iterations(1)->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
