// Engine speed and memory at the real dimensions of OLMoE-1B-7B (random bf16 weights built in
// memory, no file): prefill of a 256-token prompt, one tail re-run over the last 5 MoE layers with
// its backward pass, peak resident memory against the weights, and this machine's bf16 matmul rate.
//
//   bench_model [--layer_sets=N] [--benchmark_filter=...]
// The full model needs about 13 GB of RAM for its weights. --layer_sets=N (default 16 = all
// distinct) builds only N distinct decoder layers and reuses their tensors in the other layers:
// the same work and memory traffic per token, for machines where 13 GB are not free. Peak memory is
// then compared with the bytes of the distinct weights.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <string>

#include "model/engine.h"
#include "model/threads.h"

namespace {

using namespace c3po::model;

ModelConfig olmoe_1b_7b() {
  ModelConfig c;
  c.model_type = "olmoe";
  c.source = "<bench>";
  c.vocab_size = 50304;
  c.hidden_size = 2048;
  c.num_layers = 16;
  c.num_heads = c.num_kv_heads = 16;
  c.head_dim = 128;
  c.intermediate_size = c.moe_intermediate_size = 1024;
  c.num_experts = 64;
  c.top_k = 8;
  c.layer_is_moe.assign(16, true);
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.qk_norm = QkNorm::Full;
  c.max_position_embeddings = 4096;
  return c;
}

// Random bf16 weights. Large matrices are slices of one random pool (filling 7e9 numbers with
// randn would dominate the run), each scaled by 1/sqrt(fan_in) like a trained model's.
std::map<std::string, torch::Tensor> random_weights(const ModelConfig& c, int64_t layer_sets) {
  torch::manual_seed(0);
  const int64_t pool_size = 1 << 26;
  auto pool = torch::randn({pool_size}, torch::kBFloat16);
  int64_t cursor = 0;
  auto matrix = [&](int64_t rows, int64_t cols) {
    const int64_t n = rows * cols;
    auto t = torch::empty({rows, cols}, torch::kBFloat16);
    auto flat = t.view({n});
    for (int64_t done = 0; done < n;) {
      const int64_t take = std::min(n - done, pool_size - cursor);
      flat.narrow(0, done, take).copy_(pool.narrow(0, cursor, take));
      done += take;
      cursor = (cursor + take + 7919) % (pool_size - 1);
    }
    return t.mul_(1.0 / std::sqrt(static_cast<double>(cols)));
  };
  auto norm = [&](int64_t n) { return torch::ones({n}, torch::kBFloat16); };
  const int64_t H = c.hidden_size, F = c.moe_intermediate_size;
  std::map<std::string, torch::Tensor> w;
  w["model.embed_tokens.weight"] = matrix(c.vocab_size, H).mul_(std::sqrt(static_cast<double>(H)));
  w["model.norm.weight"] = norm(H);
  w["lm_head.weight"] = matrix(c.vocab_size, H);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    if (i >= layer_sets) {
      const std::string from = "model.layers." + std::to_string(i % layer_sets) + ".";
      std::vector<std::pair<std::string, torch::Tensor>> copies;
      for (auto it = w.lower_bound(from); it != w.end() && it->first.rfind(from, 0) == 0; ++it)
        copies.emplace_back(p + it->first.substr(from.size()), it->second);
      for (auto& [name, t] : copies) w[name] = t;
      continue;
    }
    w[p + "input_layernorm.weight"] = norm(H);
    w[p + "post_attention_layernorm.weight"] = norm(H);
    for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj"}) w[p + "self_attn." + n + ".weight"] = matrix(H, H);
    w[p + "self_attn.q_norm.weight"] = norm(H);
    w[p + "self_attn.k_norm.weight"] = norm(H);
    // Router gain 4 so the routing is far from uniform, as in trained models.
    w[p + "mlp.gate.weight"] = torch::randn({c.num_experts, H}, torch::kBFloat16).mul_(4.0 / std::sqrt(H));
    for (int64_t e = 0; e < c.num_experts; ++e) {
      const std::string q = p + "mlp.experts." + std::to_string(e) + ".";
      w[q + "gate_proj.weight"] = matrix(F, H);
      w[q + "up_proj.weight"] = matrix(F, H);
      w[q + "down_proj.weight"] = matrix(H, F);
    }
  }
  return w;
}

std::vector<int64_t> random_prompt(int64_t n, int64_t vocab, int64_t seed) {
  auto t = torch::randint(vocab, {n}, torch::TensorOptions().dtype(torch::kInt64));
  std::vector<int64_t> ids(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
  ids[0] = seed % vocab;
  return ids;
}

double vm_hwm_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  return 0.0;
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

// Bytes of distinct tensor storages (layers may share theirs, see --layer_sets).
double unique_bytes(const std::map<std::string, torch::Tensor>& w) {
  std::set<const void*> seen;
  double n = 0;
  for (const auto& [name, t] : w)
    if (seen.insert(t.data_ptr()).second) n += static_cast<double>(t.nbytes());
  return n;
}

void peak_memory(benchmark::State& state, double weights) {
  for (auto _ : state) benchmark::DoNotOptimize(vm_hwm_bytes());
  state.counters["VmHWM_GiB"] = vm_hwm_bytes() / (1 << 30);
  state.counters["weights_GiB"] = weights / (1 << 30);
  state.counters["peak_over_weights"] = vm_hwm_bytes() / weights;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t layer_sets = 16;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--layer_sets=", 13) == 0)
      layer_sets = std::clamp<int64_t>(std::atoll(argv[i] + 13), 1, 16);
    else
      args.push_back(argv[i]);
  }
  argc = static_cast<int>(args.size());
  argv = args.data();
  benchmark::Initialize(&argc, argv);
  c3po::model::set_compute_threads(0);
  benchmark::RegisterBenchmark("matmul_bf16_2048x1024", matmul_bf16)->Arg(1)->Arg(32)->Arg(256);
  auto config = olmoe_1b_7b();
  auto weights = random_weights(config, layer_sets);
  const double weight_bytes = unique_bytes(weights);
  auto model = MoeModel::from_tensors(config, std::move(weights), Dtype::BF16);
  std::fprintf(stderr, "threads %d, %lld distinct layers, weights %.2f GiB, after build VmHWM %.2f GiB\n",
               torch::get_num_threads(), static_cast<long long>(layer_sets), weight_bytes / (1 << 30),
               vm_hwm_bytes() / (1 << 30));
  benchmark::RegisterBenchmark("prefill", [&](benchmark::State& s) { prefill(s, *model); })
      ->Arg(256)->Unit(benchmark::kMillisecond)->Iterations(3);
  benchmark::RegisterBenchmark("tail5_backward", [&](benchmark::State& s) { tail_backward(s, *model); })
      ->Arg(1)->Arg(3)->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("peak_memory", [&](benchmark::State& s) { peak_memory(s, weight_bytes); })->Iterations(1);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
