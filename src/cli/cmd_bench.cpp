// `c3po bench MODEL | --random NAME`: prompt processing, decoding and the re-mix tail step in
// wall-clock time, against the machine's own memory bandwidth, in the manner of the C++ CPU
// engines' bench tools.
#include <ATen/Parallel.h>
#include <fmt/core.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "io/error.h"
#include "model/engine.h"
#include "model/shapes.h"
#include "model/threads.h"

namespace c3po::cli {
namespace {

struct BenchArgs {
  std::string model, random, dtype = "bf16", prompts = "64,256";
  int64_t layers = 0;
  int gen = 32;
  int tail_layers = 5;
  int core_experts = 20;
  int repetitions = 3;
  bool json = false;
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Mean and sample standard deviation of the repetitions.
struct Figure {
  std::vector<double> values;
  double mean() const {
    double s = 0;
    for (double v : values) s += v;
    return values.empty() ? 0 : s / static_cast<double>(values.size());
  }
  double spread() const {
    if (values.size() < 2) return 0;
    const double m = mean();
    double s = 0;
    for (double v : values) s += (v - m) * (v - m);
    return std::sqrt(s / static_cast<double>(values.size() - 1));
  }
};

double peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  return 0;
}

// STREAM's triad a = b + s * c over arrays far larger than any cache, on the compute threads:
// the bandwidth a memory-bound kernel can reach here (bytes moved: two reads and one write).
double stream_triad_bytes_per_second(int repetitions) {
  const int64_t n = int64_t{1} << 26;  // 256 MiB per array
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  const float s = 3.0f;
  double best = 0;
  for (int r = 0; r < repetitions + 1; ++r) {
    const auto t0 = Clock::now();
    at::parallel_for(0, n, 1 << 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) a[i] = b[i] + s * c[i];
    });
    const double t = seconds_since(t0);
    if (r > 0) best = std::max(best, 3.0 * sizeof(float) * static_cast<double>(n) / t);
  }
  if (a[n / 2] != 7.0f) throw Error("", "stream", "the triad computed a wrong value");
  return best;
}

std::vector<int64_t> random_prompt(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int64_t> ids(static_cast<std::size_t>(n));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& id : ids) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    id = static_cast<int64_t>(x % static_cast<uint64_t>(vocab));
  }
  return ids;
}

std::vector<int64_t> parse_lengths(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, ',');) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != part.size() || v < 1 || v > 1 << 20)
      throw Error("", "--prompt", "expected comma-separated token counts, got '" + part + "'");
    out.push_back(v);
  }
  if (out.empty()) throw Error("", "--prompt", "no prompt length given");
  return out;
}

// Bytes of weights one token streams: everything but the embedding table (one row is read) and
// the experts the router did not pick.
double streamed_bytes_per_token(const model::MoeModel& m) {
  const auto& c = m.config();
  const double bytes_per = m.dtype() == model::Dtype::BF16 ? 2.0 : 4.0;
  const double expert = 3.0 * static_cast<double>(c.moe_intermediate_size * c.hidden_size) * bytes_per;
  double b = static_cast<double>(m.weight_bytes());
  if (!c.tie_word_embeddings) b -= static_cast<double>(c.vocab_size * c.hidden_size) * bytes_per;
  b -= static_cast<double>(c.num_moe_layers() * (c.num_experts - c.top_k)) * expert;
  return b;
}

// Bytes of weights one re-mix tail step streams, forward and backward (the backward reads the same
// weights once more; no weight gradient is formed): the decoder layers from the first critical
// one with the soft set's experts in critical layers, and the LM-head rows of the letters.
double tail_bytes(const model::MoeModel& m, int first_decoder_layer, int64_t soft_experts, int64_t letters) {
  const auto& c = m.config();
  const double bp = m.dtype() == model::Dtype::BF16 ? 2.0 : 4.0;
  const double H = static_cast<double>(c.hidden_size);
  const double attn = H * static_cast<double>(c.head_dim) * static_cast<double>(2 * c.num_heads + 2 * c.num_kv_heads);
  double per_step = 0;
  for (int64_t l = first_decoder_layer; l < c.num_layers; ++l) {
    double layer = attn;
    if (c.layer_is_moe[l]) {
      layer += static_cast<double>(c.num_experts) * H;  // router
      layer += static_cast<double>(soft_experts) * 3.0 * static_cast<double>(c.moe_intermediate_size) * H;
      layer += 3.0 * static_cast<double>(c.shared_expert_intermediate_size) * H;
    } else {
      layer += 3.0 * static_cast<double>(c.intermediate_size) * H;
    }
    per_step += layer;
  }
  per_step += static_cast<double>(letters) * H;
  return 2.0 * per_step * bp;
}

int run_bench(const BenchArgs& a) {
  if (a.model.empty() == a.random.empty()) throw Error("", "MODEL", "give a model folder or --random NAME (not both)");
  if (a.repetitions < 1 || a.repetitions > 1000) throw Error("", "-r", "expected 1 to 1000 repetitions");
  if (a.gen < 1 || a.gen > 1 << 16) throw Error("", "--gen", "expected 1 to 65536 tokens");
  const auto lengths = parse_lengths(a.prompts);
  std::unique_ptr<model::MoeModel> m;
  std::string name;
  if (!a.random.empty()) {
    const auto config = model::released_shape(a.random, a.layers);
    model::set_compute_threads_for(config);
    if (!a.json) fmt::print(stderr, "c3po bench: building {} with random weights...\n", config.source);
    m = model::MoeModel::random(config, model::parse_dtype(a.dtype));
    name = config.source.substr(1, config.source.size() - 2) + " (random weights)";
  } else {
    if (a.layers > 0) throw Error("", "--layers", "only with --random (a checkpoint has its own layers)");
    m = model::load_for_compute(a.model, a.dtype);
    name = a.model;
  }
  const auto& c = m->config();
  const int threads = at::get_num_threads();
  torch::NoGradGuard no_grad;

  nlohmann::json tests = nlohmann::json::array();
  auto record = [&](const std::string& test, const std::string& unit, const Figure& f, nlohmann::json extra = {}) {
    nlohmann::json j = {{"test", test}, {"unit", unit}, {"mean", f.mean()}, {"spread", f.spread()},
                        {"values", f.values}};
    if (!extra.is_null()) j.update(extra);
    tests.push_back(std::move(j));
  };
  // Every measurement runs once untimed first (page faults of mapped weights, allocator, caches).
  const double stream = stream_triad_bytes_per_second(a.repetitions);
  record("stream triad", "GB/s", Figure{{stream / 1e9}});

  for (int64_t n : lengths) {
    if (c.max_position_embeddings > 0 && n > c.max_position_embeddings)
      throw Error("", "--prompt", fmt::format("{} tokens exceed the model's context ({})", n, c.max_position_embeddings));
    const auto prompt = random_prompt(n, c.vocab_size, static_cast<uint64_t>(n));
    Figure f;
    for (int r = 0; r <= a.repetitions; ++r) {
      const auto t0 = Clock::now();
      m->forward({prompt});
      const double t = seconds_since(t0);
      if (r > 0) f.values.push_back(static_cast<double>(n) / t);
    }
    record(fmt::format("pp{}", n), "tokens/s", f);
  }

  {
    const auto prompt = random_prompt(16, c.vocab_size, 7);
    Figure f;
    for (int r = 0; r <= a.repetitions; ++r) {
      model::KvCache cache;
      auto logits = m->decode(cache, prompt);
      const auto t0 = Clock::now();
      for (int i = 0; i < a.gen; ++i) logits = m->decode(cache, {logits.argmax().item<int64_t>()});
      const double t = seconds_since(t0);
      if (r > 0) f.values.push_back(static_cast<double>(a.gen) / t);
    }
    const double bytes = streamed_bytes_per_token(*m);
    record(fmt::format("tg{}", a.gen), "tokens/s", f,
           {{"weight_bytes_per_token", bytes},
            {"weight_bandwidth_gbs", bytes * f.mean() / 1e9},
            {"share_of_stream", bytes * f.mean() / stream}});
  }

  {
    // One NGD step: the item's last token re-run from its prefix state through the last
    // `tail_layers` MoE layers under a soft mix of `core_experts` experts, and the backward pass.
    const int L = m->num_moe_layers();
    const int critical = std::min(a.tail_layers, L);
    const int64_t soft = std::min<int64_t>(a.core_experts, c.num_experts);
    model::ForwardOptions fo;
    fo.keep_prefix_from = L - critical;
    fo.capture = true;
    const auto base = m->forward({random_prompt(64, c.vocab_size, 11)}, fo);
    const auto& state = base.prefixes.at(0);
    const std::vector<int64_t> letters{0, 1, 2, 3};
    Figure f;
    for (int r = 0; r <= a.repetitions; ++r) {
      torch::AutoGradMode grad(true);
      model::RouteOverride route;
      std::vector<torch::Tensor> omegas;
      for (int l = L - critical; l < L; ++l) {
        auto omega = base.pathway[0][l].clone().requires_grad_(true);
        omegas.push_back(omega);
        route.layers.push_back({l, omega, std::get<1>(base.pathway[0][l].topk(soft)), 1});
      }
      const auto t0 = Clock::now();
      auto loss = torch::logsumexp(m->tail(state, route, letters), 0);
      loss.backward();
      const double t = seconds_since(t0);
      if (r > 0) f.values.push_back(t * 1e3);
    }
    const double bytes = tail_bytes(*m, state.decoder_layer, soft, static_cast<int64_t>(letters.size()));
    const double bound_ms = bytes / stream * 1e3;
    record(fmt::format("tail {} layers fwd+bwd", critical), "ms", f,
           {{"weight_bytes", bytes}, {"memory_bound_ms", bound_ms}, {"share_of_stream", bound_ms / f.mean()}});
  }

  const double rss = peak_rss_bytes();
  nlohmann::json out = {{"model", name},
                        {"model_type", c.model_type},
                        {"layers", c.num_layers},
                        {"dtype", model::dtype_name(m->dtype())},
                        {"threads", threads},
                        {"repetitions", a.repetitions},
                        {"weight_bytes", m->weight_bytes()},
                        {"peak_rss_bytes", rss},
                        {"peak_rss_over_weights", rss / static_cast<double>(m->weight_bytes())},
                        {"tests", tests}};
  if (a.json) {
    fmt::print("{}\n", out.dump(2));
    return 0;
  }
  fmt::print("model {}: {}, {} layers, {}, {} threads, weights {:.2f} GiB, {} repetitions (wall clock)\n\n", name,
             c.model_type, c.num_layers, model::dtype_name(m->dtype()), threads, m->weight_bytes() / 1073741824.0,
             a.repetitions);
  fmt::print("| test | value | ± | against memory bandwidth |\n|---|---:|---:|---|\n");
  for (const auto& t : tests) {
    std::string against;
    if (t.contains("weight_bandwidth_gbs"))
      against = fmt::format("weights streamed at {:.1f} GB/s = {:.0f}% of stream",
                            t["weight_bandwidth_gbs"].get<double>(), 100 * t["share_of_stream"].get<double>());
    if (t.contains("memory_bound_ms"))
      against = fmt::format("bound {:.1f} ms ({:.0f} MB of weights): {:.0f}% of stream",
                            t["memory_bound_ms"].get<double>(), t["weight_bytes"].get<double>() / 1e6,
                            100 * t["share_of_stream"].get<double>());
    fmt::print("| {} | {:.2f} {} | {:.2f} | {} |\n", t["test"].get<std::string>(), t["mean"].get<double>(),
               t["unit"].get<std::string>(), t["spread"].get<double>(), against);
  }
  fmt::print("\npeak RSS {:.2f} GiB = {:.2f} x the weights\n", rss / 1073741824.0, rss / m->weight_bytes());
  return 0;
}

}  // namespace

void add_bench_commands(CLI::App& app, Action& action) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand(
      "bench", "Speed of prompt processing (pp), decoding (tg) and the re-mix tail step, against memory bandwidth");
  cmd->add_option("MODEL", a->model, "a Hugging Face model folder");
  cmd->add_option("--random", a->random, "an in-memory model of a released shape: " + model::released_shape_names());
  cmd->add_option("--layers", a->layers, "with --random: keep only the first N decoder layers")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  cmd->add_option("--dtype", a->dtype, "bf16 or f32")->capture_default_str()->check(CLI::IsMember({"bf16", "f32"}));
  cmd->add_option("-p,--prompt", a->prompts, "prompt lengths for pp, comma-separated")->capture_default_str();
  cmd->add_option("-n,--gen", a->gen, "tokens decoded for tg")->capture_default_str();
  cmd->add_option("--tail-layers", a->tail_layers, "critical MoE layers of the tail step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--core-experts", a->core_experts, "experts mixed per critical layer in the tail step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("-r,--repetitions", a->repetitions, "timed repetitions (after one untimed)")->capture_default_str();
  cmd->add_flag("--json", a->json, "print the results as JSON");
  cmd->callback([&action, a] { action = [a] { return run_bench(*a); }; });
}

}  // namespace c3po::cli
