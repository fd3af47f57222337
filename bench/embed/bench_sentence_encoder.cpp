// Sentences per second of SentenceEncoder at the dimensions of all-MiniLM-L6-v2 (6 layers, hidden
// 384, 12 heads, intermediate 1536, vocabulary 30522, max_seq_length 256), random weights.
//
//   build/bench/embed/c3po_bench_embed [--benchmark_filter=...]
//
// Args: tokens per text (incl. [CLS]/[SEP]) and EncoderOptions::tokens_per_forward; 64 texts per
// iteration, encode(texts, 64).
//
// The folder is written to a temporary directory first; its tokenizer is the tiny test folder's
// WordPiece tokenizer (every word of the texts is one token), so sequence lengths are exact.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "embed/sentence_encoder.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kHidden = 384, kLayers = 6, kHeads = 12, kIntermediate = 1536, kVocab = 30522, kPositions = 512;

std::string write_minilm_sized_folder() {
  const fs::path dir = fs::temp_directory_path() / ("c3po-bench-embed-" + std::to_string(::getpid())) / "minilm-sized";
  fs::create_directories(dir / "1_Pooling");
  const fs::path tiny = fs::path(C3PO_SOURCE_DIR) / "tests/embed/data/tiny-bert";
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "modules.json", "1_Pooling/config.json"})
    fs::copy_file(tiny / f, dir / f, fs::copy_options::overwrite_existing);
  json pooling = c3po::io::read_json_file((dir / "1_Pooling/config.json").string());
  pooling["word_embedding_dimension"] = kHidden;
  c3po::io::write_json_file((dir / "1_Pooling/config.json").string(), pooling);
  c3po::io::write_json_file((dir / "sentence_bert_config.json").string(), json{{"max_seq_length", 256}, {"do_lower_case", false}});
  c3po::io::write_json_file((dir / "config.json").string(),
                            json{{"model_type", "bert"}, {"hidden_size", kHidden}, {"num_hidden_layers", kLayers},
                                 {"num_attention_heads", kHeads}, {"intermediate_size", kIntermediate},
                                 {"vocab_size", kVocab}, {"max_position_embeddings", kPositions},
                                 {"type_vocab_size", 2}, {"hidden_act", "gelu"}, {"layer_norm_eps", 1e-12}});

  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"embeddings.word_embeddings.weight", {kVocab, kHidden}},
      {"embeddings.position_embeddings.weight", {kPositions, kHidden}},
      {"embeddings.token_type_embeddings.weight", {2, kHidden}},
      {"embeddings.LayerNorm.weight", {kHidden}},
      {"embeddings.LayerNorm.bias", {kHidden}}};
  for (int i = 0; i < kLayers; ++i) {
    const std::string p = "encoder.layer." + std::to_string(i) + ".";
    for (const char* n : {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"}) {
      shapes.push_back({p + n + ".weight", {kHidden, kHidden}});
      shapes.push_back({p + n + ".bias", {kHidden}});
    }
    shapes.push_back({p + "intermediate.dense.weight", {kIntermediate, kHidden}});
    shapes.push_back({p + "intermediate.dense.bias", {kIntermediate}});
    shapes.push_back({p + "output.dense.weight", {kHidden, kIntermediate}});
    shapes.push_back({p + "output.dense.bias", {kHidden}});
    for (const char* n : {"attention.output.LayerNorm", "output.LayerNorm"}) {
      shapes.push_back({p + n + ".weight", {kHidden}});
      shapes.push_back({p + n + ".bias", {kHidden}});
    }
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<std::vector<float>> storage;
  std::vector<c3po::io::TensorData> tensors;
  for (const auto& [name, shape] : shapes) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    std::vector<float> v(n);
    const bool ln_weight = name.find("LayerNorm.weight") != std::string::npos;
    for (float& x : v) x = ln_weight ? 1.0f + normal(rng) : normal(rng);
    storage.push_back(std::move(v));
    tensors.push_back({name, c3po::io::DType::F32, shape, storage.back().data(), storage.back().size() * sizeof(float)});
  }
  c3po::io::write_safetensors((dir / "model.safetensors").string(), tensors);
  return dir.string();
}

// n texts of `words` single-token words each (tokens = words + [CLS] + [SEP]).
std::vector<std::string> texts(int n, int words) {
  const std::vector<std::string> vocab = {"the", "cat", "sat", "on", "a", "mat", "which", "river", "is", "long",
                                          "question", "answer", "water", "sun", "moon", "tree", "city", "house"};
  std::mt19937 rng(11);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string s;
    for (int w = 0; w < words; ++w) s += (w ? " " : "") + vocab[rng() % vocab.size()];
    out.push_back(s);
  }
  return out;
}

void encode(benchmark::State& state, const std::string& folder) {
  const int tokens = static_cast<int>(state.range(0)), per_forward = static_cast<int>(state.range(1));
  c3po::embed::EncoderOptions options;
  options.tokens_per_forward = per_forward;
  const auto enc = c3po::embed::SentenceEncoder::load(folder, options);
  const auto input = texts(64, tokens - 2);
  for (auto _ : state) benchmark::DoNotOptimize(enc->encode(input, 64));
  // Rates per second of process CPU time (all threads): on the shared 2-core machine wall time
  // mostly measures the other processes; on an idle one wall ~ CPU / threads used.
  state.counters["sentences/cpu_s"] =
      benchmark::Counter(static_cast<double>(input.size()), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens/cpu_s"] =
      benchmark::Counter(static_cast<double>(input.size()) * tokens, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = at::get_num_threads();
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const std::string folder = write_minilm_sized_folder();
  // tokens_per_forward 1: one text per forward; 8192: all 64 texts in one forward up to 128 tokens.
  for (int tokens : {16, 64, 128})
    for (int per_forward : {1, 128, 512, 2048, 8192})
      benchmark::RegisterBenchmark("MiniLM_L6_encode", encode, folder)
          ->Args({tokens, per_forward})
          ->ArgNames({"tokens", "tokens_per_forward"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  fs::remove_all(fs::path(folder).parent_path());
  return 0;
}
