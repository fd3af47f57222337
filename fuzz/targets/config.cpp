// config.json as model::parse_config reads it (every architecture's fields and their ranges).
// Input: the config.json text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/error.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const auto c = c3po::model::parse_config("config.json", std::string(reinterpret_cast<const char*>(data), size));
    // What a parsed config promises the engine.
    if (c.num_layers <= 0 || c.hidden_size <= 0 || c.vocab_size <= 0 || c.top_k <= 0 || c.top_k > c.num_experts ||
        c.head_dim <= 0 || c.head_dim % 2 != 0 || c.num_heads % c.num_kv_heads != 0 ||
        static_cast<int64_t>(c.layer_is_moe.size()) != c.num_layers)
      __builtin_trap();
    const int64_t moe = c.num_moe_layers();
    if (moe <= 0) __builtin_trap();
    (void)c.decoder_layer_of_moe(0);
    (void)c.decoder_layer_of_moe(moe - 1);
  } catch (const c3po::Error&) {
  }
  return 0;
}
