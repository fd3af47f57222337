#pragma once
// PrefixStates of references (method.md section 7), kept across items under a byte budget.
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "model/engine.h"

namespace c3po::remix {

// PrefixStates of references, least recently used evicted beyond the byte budget.
class PrefixCache {
 public:
  explicit PrefixCache(std::size_t budget_bytes) : budget_(budget_bytes) {}
  // The state of reference `index`, or nullptr.
  const model::PrefixState* find(int64_t index);
  const model::PrefixState* insert(int64_t index, model::PrefixState state);
  std::size_t bytes() const { return bytes_; }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  const std::vector<int64_t>& pinned() const { return pinned_; }
  // Pins `indices` in addition to what is pinned, for its lifetime: the earlier pins come back
  // when it ends, by return or by exception, so no state stays pinned for ever.
  class Pin {
   public:
    Pin(PrefixCache& cache, const std::vector<int64_t>& indices) : cache_(cache), before_(cache.pinned()) {
      std::vector<int64_t> all = before_;
      all.insert(all.end(), indices.begin(), indices.end());
      cache_.pin(all);
    }
    ~Pin() { cache_.pin(before_); }
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;

   private:
    PrefixCache& cache_;
    std::vector<int64_t> before_;
  };
  // The state of reference `index` or nullptr, without counting a hit or a miss.
  const model::PrefixState* peek(int64_t index) const;
  // Drops every entry (the counters stay).
  void clear();

 private:
  void pin(const std::vector<int64_t>& indices) { pinned_ = indices; }  // through Pin only
  void evict();
  std::size_t budget_, bytes_ = 0;
  int64_t hits_ = 0, misses_ = 0;
  std::list<int64_t> order_;  // most recent first
  struct Entry {
    model::PrefixState state;
    std::list<int64_t>::iterator where;
  };
  std::unordered_map<int64_t, Entry> entries_;
  std::vector<int64_t> pinned_;
};

}  // namespace c3po::remix
