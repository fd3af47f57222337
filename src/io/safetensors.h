#pragma once
// safetensors reading (memory-mapped, validated) and writing (single file or sharded).
// Format: 8-byte little-endian header length N, N bytes of JSON header, then the data buffer.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/mapped_file.h"

namespace c3po::io {

enum class DType { BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64 };

const char* dtype_name(DType dt);        // the safetensors spelling: "BF16", "F32", ...
std::size_t dtype_size(DType dt);        // bytes per element
bool parse_dtype(const std::string& name, DType& out);

// One tensor inside a mapped file: no copy, valid as long as the file it came from.
struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  std::size_t nbytes = 0;
  std::string file;  // the file it lives in, for error messages

  int64_t numel() const;
};

// One .safetensors file, mapped and validated on open.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MappedFile file_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint: a single .safetensors file, a folder with model.safetensors, or a
// folder sharded through model.safetensors.index.json.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path);

  bool has(const std::string& name) const { return where_.count(name) != 0; }
  // Throws a c3po::Error naming the tensor (and the checkpoint) when absent.
  const TensorView& get(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::string& path() const { return path_; }
  std::size_t total_bytes() const;

 private:
  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, const TensorView*> where_;
};

// A tensor to write: the bytes are referenced, not owned.
struct TensorData {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  std::size_t nbytes;
};

// Writes one file atomically (temporary name, then rename). Validates names and sizes first.
void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes model-0000i-of-0000n.safetensors shards of at most max_shard_bytes of data each (a
// larger tensor gets a shard of its own) and model.safetensors.index.json into dir.
void write_safetensors_sharded(const std::string& dir, const std::vector<TensorData>& tensors,
                               std::size_t max_shard_bytes,
                               const std::map<std::string, std::string>& metadata = {});

}  // namespace c3po::io
