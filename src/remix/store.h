#pragma once
// The reference store: successful pathways of labelled reference items (method.md section 4).
// One safetensors file: embeddings [N, D] f32 (unit norm), pathways [N, L, E] f16 or f32, gold,
// base loss, correctness, and the items themselves as JSON lines with an offset table (parsed only
// when an item is looked at, so a store of 50,000 references loads in milliseconds). The header
// records what the store was built with and a checksum of every byte of data.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/item.h"

namespace c3po::io {
class SafetensorsFile;
}

namespace c3po::remix {

// What a store was built with; a store is refused by anything else.
struct StoreIdentity {
  std::string model_fingerprint;
  std::string embedder;        // e.g. "model:layer=8", "hash:dim=512"
  std::string prompt_format;   // prompt format version of the letter protocol
  bool operator==(const StoreIdentity&) const = default;
};

struct StoreCounts {
  int64_t seen = 0;       // reference items run
  int64_t correct = 0;    // answered correctly (usable as neighbours)
  int64_t incorrect = 0;  // answered wrongly (stored only with keep_incorrect)
  int64_t skipped = 0;    // malformed input lines skipped
};

// One stored reference (the parts a person or a re-run needs).
// A reference is a data::McItem; its task names the dataset it came from (one of the store's
// datasets()). On disk each item is one JSON line: id, task, question, choices, gold, and
// context, subject, extra when set. "source" is read as the task in stores written before the
// field was named "task".
nlohmann::json reference_item_json(const data::McItem& item);
data::McItem reference_item_from_json(const nlohmann::json& j, const std::string& file);

// Rows accumulated while building, then written at once.
struct StoreRows {
  std::vector<data::McItem> items;
  std::vector<torch::Tensor> embeddings;  // [D] each
  std::vector<torch::Tensor> pathways;    // [L, E] each
  std::vector<float> base_loss;
  std::vector<uint8_t> correct;
  int64_t size() const { return static_cast<int64_t>(items.size()); }
};

class ReferenceStore {
 public:
  // Writes atomically (temporary name, then rename). half_pathways: fp16 pathways (default).
  // Each item's task must be one of `datasets`.
  // extra_metadata is kept as is (e.g. the build settings, or a partial build's progress).
  static void write(const std::string& path, const StoreIdentity& identity, const StoreCounts& counts,
                    const std::vector<std::string>& datasets, const StoreRows& rows, bool half_pathways = true,
                    const std::map<std::string, std::string>& extra_metadata = {});

  // Opens and verifies the checksum; a corrupt or truncated file is a c3po::Error naming it.
  static ReferenceStore open(const std::string& path);

  // All rows back in memory (to continue a partial build).
  StoreRows rows() const;
  // A metadata value ("" if absent).
  std::string metadata(const std::string& key) const;

  // Throws a c3po::Error naming the store and the field that differs.
  void require(const StoreIdentity& expected) const;

  const std::string& path() const { return path_; }
  const StoreIdentity& identity() const { return identity_; }
  const StoreCounts& counts() const { return counts_; }
  const std::vector<std::string>& datasets() const { return datasets_; }
  int64_t size() const { return size_; }
  int64_t num_moe_layers() const { return pathways_.size(1); }
  int64_t num_experts() const { return pathways_.size(2); }
  int64_t embedding_dim() const { return embeddings_.size(1); }

  const torch::Tensor& embeddings() const { return embeddings_; }  // [N, D] f32, unit rows
  const torch::Tensor& pathways() const { return pathways_; }      // [N, L, E] f16/f32 (mapped)
  torch::Tensor pathway(int64_t i) const;                          // [L, E] f32
  const torch::Tensor& gold() const { return gold_; }              // [N] i64
  const torch::Tensor& base_loss() const { return base_loss_; }    // [N] f32
  bool correct(int64_t i) const;
  const torch::Tensor& correct_flags() const { return correct_; }  // [N] u8
  data::McItem item(int64_t i) const;
  const std::string& task(int64_t i) const;  // cheap: no item parse
  const torch::Tensor& source_index() const { return source_; }  // [N] i32 into datasets()
  // Index of the item with this id from this dataset (its task), or -1. Ids are unique only
  // within a dataset: two datasets may both have an item "17".
  int64_t find(const std::string& task, const std::string& id) const;

 private:
  std::string path_;
  std::shared_ptr<io::SafetensorsFile> file_;
  StoreIdentity identity_;
  StoreCounts counts_;
  std::vector<std::string> datasets_;
  int64_t size_ = 0;
  torch::Tensor embeddings_, pathways_, gold_, base_loss_, correct_, source_, item_offsets_;
  const char* item_bytes_ = nullptr;
  mutable std::unique_ptr<std::unordered_map<std::string, int64_t>> id_index_;  // "task\nid" -> row
};

// 64-bit checksum of a byte range (not cryptographic: it detects corruption and truncation).
uint64_t checksum64(const void* data, std::size_t n, uint64_t seed = 0);

}  // namespace c3po::remix
