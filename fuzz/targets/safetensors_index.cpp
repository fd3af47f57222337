// The sharded checkpoint index (model.safetensors.index.json) as io::Checkpoint::open reads it.
// Input: the index JSON. The folder holds fixed valid shards, written once: the two the seeds
// name, a third that repeats tensor "a" (a tensor stored twice) and an empty one.
#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "fuzz_util.h"
#include "io/error.h"
#include "io/safetensors.h"

namespace {

std::string make_folder() {
  using c3po::io::DType;
  const std::string dir = c3po::fuzz::scratch_dir() + "/ckpt";
  std::filesystem::create_directories(dir);
  static const float a[2] = {1.0f, 2.0f};
  static const uint16_t b[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
  static const int64_t c[1] = {7};
  c3po::io::write_safetensors(dir + "/model-00001-of-00002.safetensors",
                              {{"a", DType::F32, {2}, a, sizeof a}, {"b", DType::BF16, {2, 2}, b, sizeof b}});
  c3po::io::write_safetensors(dir + "/model-00002-of-00002.safetensors", {{"c", DType::I64, {1}, c, sizeof c}},
                              {{"format", "pt"}});
  c3po::io::write_safetensors(dir + "/extra.safetensors", {{"a", DType::F32, {2}, a, sizeof a}});
  c3po::io::write_safetensors(dir + "/empty.safetensors", {});
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const std::string dir = make_folder();
  c3po::fuzz::put("ckpt/model.safetensors.index.json", {reinterpret_cast<const char*>(data), size});
  try {
    const auto ck = c3po::io::Checkpoint::open(dir);
    for (const auto& name : ck.names()) {
      const auto& t = ck.get(name);
      c3po::fuzz::touch(t.data, t.nbytes);
    }
    (void)ck.total_bytes();
  } catch (const c3po::Error&) {
  }
  return 0;
}
