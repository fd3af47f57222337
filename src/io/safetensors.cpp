#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "io/error.h"
#include "io/files.h"
#include "io/json_file.h"

namespace c3po::io {
namespace fs = std::filesystem;

namespace {

struct DTypeInfo {
  DType dt;
  const char* name;
  std::size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},     {DType::I8, "I8", 1},
    {DType::U16, "U16", 2},   {DType::I16, "I16", 2},   {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::U32, "U32", 4},   {DType::I32, "I32", 4},
    {DType::F32, "F32", 4},   {DType::U64, "U64", 8},   {DType::I64, "I64", 8},
    {DType::F64, "F64", 8},
};

// Headers beyond this are refused rather than parsed: real ones are a few hundred KiB.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

uint64_t read_le64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// numel * element size, refusing overflow.
bool checked_nbytes(const std::vector<int64_t>& shape, std::size_t elem, std::size_t& out) {
  unsigned __int128 n = elem;
  for (int64_t d : shape) {
    if (d < 0) return false;
    n *= static_cast<uint64_t>(d);
    if (n > std::numeric_limits<uint64_t>::max()) return false;
  }
  out = static_cast<std::size_t>(n);
  return true;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

const char* dtype_name(DType dt) {
  for (const auto& d : kDTypes)
    if (d.dt == dt) return d.name;
  return "?";
}

std::size_t dtype_size(DType dt) {
  for (const auto& d : kDTypes)
    if (d.dt == dt) return d.size;
  return 0;
}

bool parse_dtype(const std::string& name, DType& out) {
  for (const auto& d : kDTypes)
    if (name == d.name) {
      out = d.dt;
      return true;
    }
  return false;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const std::byte* base = file_.data();
  const std::size_t size = file_.size();
  if (size < 8)
    throw Error(path, "header length",
                "file is truncated: " + std::to_string(size) + " bytes, need at least 8");
  const uint64_t n = read_le64(base);
  if (n > size - 8)
    throw Error(path, "header length",
                "header of " + std::to_string(n) + " bytes runs past the end of the file (" +
                    std::to_string(size) + " bytes): truncated or not a safetensors file");
  if (n > kMaxHeaderBytes)
    throw Error(path, "header length", "header of " + std::to_string(n) + " bytes is implausibly large");
  if (n < 2) throw Error(path, "header", "header is empty");

  // Track top-level keys while parsing: JSON objects silently keep the last duplicate.
  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::json::parser_callback_t cb = [&](int depth, nlohmann::json::parse_event_t ev,
                                             nlohmann::json& parsed) {
    if (ev == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      auto key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json header;
  const char* hp = reinterpret_cast<const char*>(base + 8);
  try {
    header = nlohmann::json::parse(hp, hp + n, cb);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, "header", "malformed header JSON: " + json_error_text(e));
  }
  if (!duplicate.empty()) throw Error(path, duplicate, "tensor name appears twice in the header");
  if (!header.is_object()) throw Error(path, "header", "expected a JSON object");

  const std::byte* buffer = base + 8 + n;
  const std::size_t buffer_size = size - 8 - n;
  struct Range {
    std::size_t begin, end;
    std::size_t index;
  };
  std::vector<Range> ranges;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(path, name, "expected an object of strings");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string())
          throw Error(path, "__metadata__." + m.key(), "expected a string value");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) throw Error(path, name, "expected an object with dtype, shape, data_offsets");
    if (!entry.contains("dtype") || !entry["dtype"].is_string())
      throw Error(path, name + ".dtype", "missing or not a string");
    TensorView v;
    v.name = name;
    v.file = path;
    const auto dts = entry["dtype"].get<std::string>();
    if (!parse_dtype(dts, v.dtype))
      throw Error(path, name + ".dtype",
                  "unknown dtype \"" + dts + "\" (expected BOOL, U8, I8, U16, I16, F16, BF16, U32, "
                  "I32, F32, U64, I64 or F64)");
    if (!entry.contains("shape") || !entry["shape"].is_array())
      throw Error(path, name + ".shape", "missing or not an array");
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned())
        throw Error(path, name + ".shape", "dimensions must be non-negative integers");
      v.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    }
    const auto& off = entry.contains("data_offsets") ? entry["data_offsets"] : nlohmann::json();
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      throw Error(path, name + ".data_offsets", "expected [begin, end] of non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e) throw Error(path, name + ".data_offsets", "begin is after end");
    if (e > buffer_size)
      throw Error(path, name + ".data_offsets",
                  "range [" + std::to_string(b) + ", " + std::to_string(e) +
                      ") lies outside the data buffer of " + std::to_string(buffer_size) +
                      " bytes (truncated file?)");
    std::size_t expect = 0;
    if (!checked_nbytes(v.shape, dtype_size(v.dtype), expect) || expect != e - b)
      throw Error(path, name,
                  "shape " + shape_str(v.shape) + " of " + dts + " needs " + std::to_string(expect) +
                      " bytes but data_offsets span " + std::to_string(e - b));
    v.data = buffer + b;
    v.nbytes = e - b;
    ranges.push_back({b, e, tensors_.size()});
    tensors_.push_back(std::move(v));
  }

  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  std::size_t expected_begin = 0;
  for (const auto& r : ranges) {
    const auto& name = tensors_[r.index].name;
    if (r.begin < expected_begin)
      throw Error(path, name + ".data_offsets", "overlaps the data of another tensor");
    if (r.begin > expected_begin)
      throw Error(path, name + ".data_offsets",
                  "leaves a gap of " + std::to_string(r.begin - expected_begin) +
                      " unaccounted bytes before it");
    expected_begin = r.end;
  }
  if (expected_begin != buffer_size)
    throw Error(path, "data", std::to_string(buffer_size - expected_begin) +
                                  " bytes after the last tensor belong to no tensor");
  for (std::size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint ck;
  ck.path_ = path;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path, "", "no such file or folder");

  auto add_file = [&ck](const std::string& file) -> SafetensorsFile& {
    ck.files_.push_back(std::make_unique<SafetensorsFile>(file));
    return *ck.files_.back();
  };

  if (!fs::is_directory(path, ec)) {
    auto& f = add_file(path);
    for (const auto& t : f.tensors()) ck.where_[t.name] = &t;
    return ck;
  }
  const fs::path dir(path);
  const auto index_path = dir / "model.safetensors.index.json";
  if (fs::exists(index_path, ec)) {
    const auto idx = read_json_file(index_path.string());
    if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
      throw Error(index_path.string(), "weight_map", "missing or not an object");
    std::map<std::string, SafetensorsFile*> shards;
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        throw Error(index_path.string(), "weight_map." + it.key(), "expected a shard file name");
      const auto shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos || shard == ".." )
        throw Error(index_path.string(), "weight_map." + it.key(), "shard name must be a plain file name");
      auto s = shards.find(shard);
      if (s == shards.end()) {
        const auto shard_path = (dir / shard).string();
        if (!fs::exists(shard_path, ec))
          throw Error(index_path.string(), "weight_map." + it.key(),
                      "names shard \"" + shard + "\", which does not exist");
        s = shards.emplace(shard, &add_file(shard_path)).first;
      }
      const TensorView* t = s->second->find(it.key());
      if (!t)
        throw Error(index_path.string(), "weight_map." + it.key(),
                    "tensor is not in its shard \"" + shard + "\"");
      ck.where_[it.key()] = t;
    }
    // A tensor stored in two shards is ambiguous (which copy is the model?): refuse it.
    for (const auto& [shard, file] : shards)
      for (const auto& t : file->tensors())
        if (const auto mapped = idx["weight_map"].find(t.name);
            mapped != idx["weight_map"].end() && mapped->get<std::string>() != shard)
          throw Error((dir / shard).string(), t.name,
                      "is also in shard \"" + mapped->get<std::string>() +
                          "\" (the index names that one): a tensor must be stored once");
    return ck;
  }
  const auto single = dir / "model.safetensors";
  if (fs::exists(single, ec)) {
    auto& f = add_file(single.string());
    for (const auto& t : f.tensors()) ck.where_[t.name] = &t;
    return ck;
  }
  throw Error(path, "", "no model.safetensors or model.safetensors.index.json in this folder");
}

const TensorView& Checkpoint::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw Error(path_, name, "tensor is missing from the checkpoint");
  return *it->second;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [k, v] : where_) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t Checkpoint::total_bytes() const {
  std::size_t n = 0;
  for (const auto& [k, v] : where_) n += v->nbytes;
  return n;
}

namespace {

std::string serialize(const std::string& path, const std::vector<TensorData>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  std::size_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__")
      throw Error(path, t.name, "invalid tensor name");
    if (!names.insert(t.name).second) throw Error(path, t.name, "tensor name given twice");
    std::size_t expect = 0;
    if (!checked_nbytes(t.shape, dtype_size(t.dtype), expect) || expect != t.nbytes)
      throw Error(path, t.name,
                  "shape " + shape_str(t.shape) + " needs " + std::to_string(expect) +
                      " bytes, got " + std::to_string(t.nbytes));
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string h = header.dump();
  while (h.size() % 8) h.push_back(' ');  // keeps the data buffer 8-byte aligned
  std::string out;
  out.reserve(8 + h.size() + offset);
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += h;
  for (const auto& t : tensors) out.append(static_cast<const char*>(t.data), t.nbytes);
  return out;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize(path, tensors, metadata));
}

void write_safetensors_sharded(const std::string& dir, const std::vector<TensorData>& tensors,
                               std::size_t max_shard_bytes,
                               const std::map<std::string, std::string>& metadata) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::vector<std::vector<TensorData>> shards(1);
  std::size_t used = 0, total = 0;
  for (const auto& t : tensors) {
    if (!shards.back().empty() && used + t.nbytes > max_shard_bytes) {
      shards.emplace_back();
      used = 0;
    }
    shards.back().push_back(t);
    used += t.nbytes;
    total += t.nbytes;
  }
  auto pad5 = [](std::size_t v) {
    std::string s = std::to_string(v);
    return std::string(s.size() < 5 ? 5 - s.size() : 0, '0') + s;
  };
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < shards.size(); ++i) {
    const std::string name =
        "model-" + pad5(i + 1) + "-of-" + pad5(shards.size()) + ".safetensors";
    write_safetensors((fs::path(dir) / name).string(), shards[i], metadata);
    for (const auto& t : shards[i]) weight_map[t.name] = name;
  }
  index["weight_map"] = weight_map;
  write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
}

}  // namespace c3po::io
