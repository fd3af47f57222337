#include "remix/store.h"

#include <cstdint>
#include <cstring>

#include "io/error.h"
#include "io/safetensors.h"

namespace c3po::remix {

namespace {

constexpr const char* kStoreFormat = "c3po-reference-store/1";
// Tensors in checksum order.
constexpr const char* kTensorNames[] = {"embeddings", "pathways", "gold", "base_loss", "correct", "source",
                                        "item_offsets", "items"};
// The dtype each of them is written with (pathways: F16, or F32 without half_pathways).
constexpr io::DType kTensorTypes[] = {io::DType::F32, io::DType::F16, io::DType::I64, io::DType::F32,
                                      io::DType::U8,  io::DType::I32, io::DType::I64, io::DType::U8};

io::DType to_io(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return io::DType::F32;
    case torch::kHalf: return io::DType::F16;
    case torch::kLong: return io::DType::I64;
    case torch::kInt: return io::DType::I32;
    case torch::kByte: return io::DType::U8;
    default: throw Error("", "store", "unsupported tensor type");
  }
}

torch::ScalarType to_torch(io::DType t) {
  switch (t) {
    case io::DType::F32: return torch::kFloat;
    case io::DType::F16: return torch::kHalf;
    case io::DType::I64: return torch::kLong;
    case io::DType::I32: return torch::kInt;
    case io::DType::U8: return torch::kByte;
    default: throw Error("", "store", "unsupported tensor type");
  }
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

uint64_t checksum64(const void* data, std::size_t n, uint64_t seed) {
  // Word-at-a-time multiply-xorshift mixing (in the spirit of xxHash/wyhash): ~GB/s, so verifying a
  // store of 50,000 OLMoE pathways costs a fraction of its load time.
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = seed ^ (0x9E3779B97F4A7C15ull * (n + 1));
  auto mix = [](uint64_t x) {
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    return x;
  };
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ mix(w + 0x9E3779B97F4A7C15ull)) * 0xFF51AFD7ED558CCDull;
  }
  uint64_t tail = 0;
  for (std::size_t j = 0; i + j < n; ++j) tail |= static_cast<uint64_t>(p[i + j]) << (8 * j);
  h = (h ^ mix(tail + n)) * 0xC4CEB9FE1A85EC53ull;
  return mix(h);
}

nlohmann::json reference_item_json(const data::McItem& item) {
  nlohmann::json j = {{"id", item.id}, {"task", item.task}, {"question", item.question}, {"choices", item.choices},
                      {"gold", item.gold}};
  if (!item.context.empty()) j["context"] = item.context;
  if (!item.subject.empty()) j["subject"] = item.subject;
  if (!item.extra.empty()) j["extra"] = item.extra;
  return j;
}

data::McItem reference_item_from_json(const nlohmann::json& j, const std::string& file) {
  data::McItem r;
  try {
    r.id = j.at("id").get<std::string>();
    r.task = j.contains("task") ? j.at("task").get<std::string>() : j.at("source").get<std::string>();
    r.question = j.at("question").get<std::string>();
    r.choices = j.at("choices").get<std::vector<std::string>>();
    r.gold = j.at("gold").get<int>();
    r.context = j.value("context", "");
    r.subject = j.value("subject", "");
    if (j.contains("extra")) r.extra = j["extra"];
  } catch (const nlohmann::json::exception& e) {
    throw Error(file, "items", std::string("malformed reference item: ") + e.what());
  }
  return r;
}

void ReferenceStore::write(const std::string& path, const StoreIdentity& identity, const StoreCounts& counts,
                           const std::vector<std::string>& datasets, const StoreRows& rows, bool half_pathways,
                           const std::map<std::string, std::string>& extra_metadata) {
  const int64_t n = rows.size();
  if (static_cast<int64_t>(rows.embeddings.size()) != n || static_cast<int64_t>(rows.pathways.size()) != n ||
      static_cast<int64_t>(rows.base_loss.size()) != n || static_cast<int64_t>(rows.correct.size()) != n)
    throw Error(path, "rows", "items, embeddings, pathways, losses and flags differ in count");
  if (n == 0) throw Error(path, "rows", "no reference was answered correctly: nothing to store");
  std::map<std::string, int> source_of;
  for (std::size_t i = 0; i < datasets.size(); ++i) source_of[datasets[i]] = static_cast<int>(i);

  // Rows come normalised (so that a store rewritten from its own rows is bit-identical).
  auto emb = torch::stack(rows.embeddings).to(torch::kFloat).contiguous();
  if (!torch::allclose(emb.norm(2, 1), torch::ones({n}), 1e-4, 1e-4))
    throw Error(path, "embeddings", "rows must have unit norm");
  auto paths = torch::stack(rows.pathways).to(half_pathways ? torch::kHalf : torch::kFloat).contiguous();
  std::vector<int64_t> gold;
  std::vector<int32_t> source;
  std::vector<int64_t> offsets{0};
  std::string items;
  for (const auto& it : rows.items) {
    auto s = source_of.find(it.task);
    if (s == source_of.end()) throw Error(path, "source", "item " + it.id + " names an unlisted dataset " + it.task);
    gold.push_back(it.gold);
    source.push_back(s->second);
    items += reference_item_json(it).dump();
    items += '\n';
    offsets.push_back(static_cast<int64_t>(items.size()));
  }
  auto gold_t = torch::tensor(gold, torch::kLong);
  auto loss_t = torch::tensor(rows.base_loss, torch::kFloat);
  auto correct_t = torch::from_blob(const_cast<uint8_t*>(rows.correct.data()), {n}, torch::kByte).clone();
  auto source_t = torch::from_blob(source.data(), {n}, torch::kInt).clone();
  auto offsets_t = torch::tensor(offsets, torch::kLong);
  auto items_t = torch::from_blob(items.data(), {static_cast<int64_t>(items.size())}, torch::kByte).clone();

  const torch::Tensor* tensors[] = {&emb, &paths, &gold_t, &loss_t, &correct_t, &source_t, &offsets_t, &items_t};
  std::vector<io::TensorData> data;
  uint64_t sum = 0;
  for (std::size_t i = 0; i < std::size(kTensorNames); ++i) {
    const auto& t = *tensors[i];
    const std::size_t bytes = t.numel() * t.element_size();
    data.push_back({kTensorNames[i], to_io(t.scalar_type()), t.sizes().vec(), t.data_ptr(), bytes});
    sum = checksum64(t.data_ptr(), bytes, sum);
  }
  std::map<std::string, std::string> meta = {
      {"format", kStoreFormat},
      {"model_fingerprint", identity.model_fingerprint},
      {"embedder", identity.embedder},
      {"prompt_format", identity.prompt_format},
      {"counts", nlohmann::json{{"seen", counts.seen}, {"correct", counts.correct},
                                {"incorrect", counts.incorrect}, {"skipped", counts.skipped}}.dump()},
      {"datasets", nlohmann::json(datasets).dump()},
      {"checksum", hex64(sum)},
  };
  for (const auto& [k, v] : extra_metadata) meta.emplace(k, v);
  io::write_safetensors(path, data, meta);
}

ReferenceStore ReferenceStore::open(const std::string& path) {
  ReferenceStore s;
  s.path_ = path;
  s.file_ = std::make_shared<io::SafetensorsFile>(path);
  const auto& meta = s.file_->metadata();
  auto field = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    if (it == meta.end()) throw Error(path, std::string("__metadata__.") + key, "missing: not a c3po reference store?");
    return it->second;
  };
  if (field("format") != kStoreFormat)
    throw Error(path, "__metadata__.format", "expected \"" + std::string(kStoreFormat) + "\", found \"" + field("format") + "\"");
  s.identity_ = {field("model_fingerprint"), field("embedder"), field("prompt_format")};

  uint64_t sum = 0;
  torch::Tensor* slots[] = {&s.embeddings_, &s.pathways_, &s.gold_, &s.base_loss_, &s.correct_, &s.source_, &s.item_offsets_};
  const io::TensorView* items = nullptr;
  for (std::size_t i = 0; i < std::size(kTensorNames); ++i) {
    const auto* v = s.file_->find(kTensorNames[i]);
    if (!v) throw Error(path, kTensorNames[i], "tensor missing from the store");
    const bool f32_pathways = i == 1 && v->dtype == io::DType::F32;
    if (v->dtype != kTensorTypes[i] && !f32_pathways)
      throw Error(path, kTensorNames[i],
                  std::string("has dtype ") + io::dtype_name(v->dtype) + ", expected " + io::dtype_name(kTensorTypes[i]) +
                      (i == 1 ? " or F32" : ""));
    sum = checksum64(v->data, v->nbytes, sum);
    if (i + 1 == std::size(kTensorNames)) {
      items = v;
      break;
    }
    const auto options = torch::TensorOptions().dtype(to_torch(v->dtype));
    if (reinterpret_cast<std::uintptr_t>(v->data) % io::dtype_size(v->dtype) != 0) {
      // Tensors follow each other without padding, so item_offsets (and gold or base_loss for some
      // sizes) can start off their alignment; reading them in place is undefined behaviour. They
      // are small: copy them.
      *slots[i] = torch::empty(v->shape, options);
      if (v->nbytes) std::memcpy(slots[i]->data_ptr(), v->data, v->nbytes);
      continue;
    }
    // The mapping outlives the tensors: they hold a reference to the file.
    auto keep = s.file_;
    *slots[i] = torch::from_blob(const_cast<std::byte*>(v->data), v->shape, [keep](void*) {}, options);
  }
  if (hex64(sum) != field("checksum"))
    throw Error(path, "checksum", "data does not match the recorded checksum: the store is corrupt");
  s.item_bytes_ = reinterpret_cast<const char*>(items->data);
  try {
    const auto c = nlohmann::json::parse(field("counts"));
    s.counts_ = {c.at("seen").get<int64_t>(), c.at("correct").get<int64_t>(), c.at("incorrect").get<int64_t>(),
                 c.at("skipped").get<int64_t>()};
    s.datasets_ = nlohmann::json::parse(field("datasets")).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, "__metadata__", std::string("malformed counts or datasets: ") + e.what());
  }
  s.size_ = s.embeddings_.dim() == 2 ? s.embeddings_.size(0) : -1;
  const auto n = s.size_;
  if (n <= 0 || s.embeddings_.size(1) == 0 || s.pathways_.dim() != 3 || s.pathways_.size(0) != n ||
      s.pathways_.size(1) == 0 || s.pathways_.size(2) == 0 || s.gold_.numel() != n || s.base_loss_.numel() != n ||
      s.correct_.numel() != n || s.source_.numel() != n || s.item_offsets_.numel() != n + 1 ||
      s.item_offsets_[n].item<int64_t>() != static_cast<int64_t>(items->nbytes))
    throw Error(path, "tensors", "shapes disagree with each other");
  // Item i is bytes [offsets[i], offsets[i+1]) of items: they must rise from 0 to its end, else
  // item() would read outside the file.
  const auto* off = s.item_offsets_.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    if ((i == 0 && off[0] != 0) || off[i + 1] < off[i])
      throw Error(path, "item_offsets", "row " + std::to_string(i) + ": offsets must rise from 0 to the end of items");
  const auto src = s.source_.to(torch::kLong);
  if (src.min().item<int64_t>() < 0 || src.max().item<int64_t>() >= static_cast<int64_t>(s.datasets_.size()))
    throw Error(path, "source", "names a dataset outside the recorded list");
  return s;
}

void ReferenceStore::require(const StoreIdentity& expected) const {
  auto check = [&](const std::string& field, const std::string& have, const std::string& want, const char* what) {
    if (have != want)
      throw Error(path_, field,
                  std::string("this store was built for ") + what + " \"" + have + "\", but this run uses \"" + want +
                      "\"; rebuild it with `c3po reference build`");
  };
  check("model_fingerprint", identity_.model_fingerprint, expected.model_fingerprint, "another model:");
  check("embedder", identity_.embedder, expected.embedder, "the embedder");
  check("prompt_format", identity_.prompt_format, expected.prompt_format, "the prompt format");
}

StoreRows ReferenceStore::rows() const {
  StoreRows r;
  for (int64_t i = 0; i < size_; ++i) {
    r.items.push_back(item(i));
    r.embeddings.push_back(embeddings_[i].clone());
    r.pathways.push_back(pathway(i));
    r.base_loss.push_back(base_loss_[i].item<float>());
    r.correct.push_back(correct_[i].item<uint8_t>());
  }
  return r;
}

std::string ReferenceStore::metadata(const std::string& key) const {
  const auto& m = file_->metadata();
  auto it = m.find(key);
  return it == m.end() ? std::string() : it->second;
}

torch::Tensor ReferenceStore::pathway(int64_t i) const { return pathways_[i].to(torch::kFloat); }

bool ReferenceStore::correct(int64_t i) const { return correct_[i].item<uint8_t>() != 0; }

const std::string& ReferenceStore::task(int64_t i) const {
  return datasets_.at(static_cast<std::size_t>(source_[i].item<int32_t>()));
}

data::McItem ReferenceStore::item(int64_t i) const {
  if (i < 0 || i >= size_) throw Error(path_, "items", "index " + std::to_string(i) + " out of range");
  const auto* off = item_offsets_.data_ptr<int64_t>();
  const int64_t b = off[i], e = off[i + 1];
  if (b < 0 || e < b) throw Error(path_, "item_offsets", "not increasing");
  try {
    return reference_item_from_json(nlohmann::json::parse(item_bytes_ + b, item_bytes_ + e), path_);
  } catch (const nlohmann::json::exception& err) {  // also a number beyond a double (out_of_range)
    throw Error(path_, "items", std::string("malformed item JSON: ") + err.what());
  }
}

int64_t ReferenceStore::find(const std::string& task, const std::string& id) const {
  if (!id_index_) {
    id_index_ = std::make_unique<std::unordered_map<std::string, int64_t>>();
    for (int64_t i = 0; i < size_; ++i) id_index_->emplace(this->task(i) + "\n" + item(i).id, i);
  }
  auto it = id_index_->find(task + "\n" + id);
  return it == id_index_->end() ? -1 : it->second;
}

}  // namespace c3po::remix
