// The reference store loader (remix::ReferenceStore::open and the accessors a run uses).
// Input: the bytes of a store file. A store's checksum covers all its data, so almost every
// mutation would stop at the checksum test; when the input is a readable safetensors file the
// target writes the checksum the data actually has into its metadata first, so the fuzzer reaches
// the checks behind it. (The checksum test itself is simple and covered by the unit tests.)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "io/error.h"
#include "io/safetensors.h"
#include "remix/store.h"

namespace {

constexpr const char* kTensorNames[] = {"embeddings", "pathways", "gold", "base_loss", "correct", "source",
                                        "item_offsets", "items"};

// The input with __metadata__.checksum set to the checksum of its data, or the input unchanged.
std::string with_true_checksum(const std::string& path, std::string_view bytes) {
  try {
    const c3po::io::SafetensorsFile f(path);
    uint64_t sum = 0;
    for (const char* name : kTensorNames) {
      const auto* t = f.find(name);
      if (!t) return std::string(bytes);
      sum = c3po::remix::checksum64(t->data, t->nbytes, sum);
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
    auto header = nlohmann::json::parse(bytes.substr(8, n));
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(sum));
    header["__metadata__"]["checksum"] = hex;
    std::string h = header.dump();
    h.resize((h.size() + 7) / 8 * 8, ' ');  // as c3po writes it: the data stays 8-byte aligned
    std::string out;
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((uint64_t{h.size()} >> (8 * i)) & 0xff));
    out += h;
    out += bytes.substr(8 + n);
    return out;
  } catch (const c3po::Error&) {
    return std::string(bytes);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::string path = c3po::fuzz::put("refs.store", bytes);
  c3po::fuzz::put("refs.store", with_true_checksum(path, bytes));
  try {
    const auto store = c3po::remix::ReferenceStore::open(path);
    store.require(store.identity());
    const int64_t n = store.size();
    if (n <= 0) __builtin_trap();
    (void)store.num_moe_layers();
    (void)store.num_experts();
    (void)store.embedding_dim();
    for (int64_t i = 0; i < n && i < 64; ++i) {
      (void)store.correct(i);
      (void)store.task(i);
      (void)store.pathway(i);
      (void)store.item(i);
    }
    (void)store.find("arc_challenge", "1");
    if (n <= 64) (void)store.rows();
  } catch (const c3po::Error&) {
  }
  return 0;
}
