// The safetensors reader: 8-byte header length, JSON header, data buffer (io::SafetensorsFile,
// through io::Checkpoint as every command opens it). Input: the bytes of one .safetensors file.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "io/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string path = c3po::fuzz::put("model.safetensors", {reinterpret_cast<const char*>(data), size});
  try {
    const auto ck = c3po::io::Checkpoint::open(path);
    std::size_t total = 0;
    for (const auto& name : ck.names()) {
      const auto& t = ck.get(name);
      // Every view must lie inside the mapping: ASan checks its first and last byte.
      c3po::fuzz::touch(t.data, t.nbytes);
      if (static_cast<std::size_t>(t.numel()) * c3po::io::dtype_size(t.dtype) != t.nbytes) __builtin_trap();
      total += t.nbytes;
    }
    if (total != ck.total_bytes()) __builtin_trap();
  } catch (const c3po::Error&) {
  }
  return 0;
}
