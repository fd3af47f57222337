#include "remix/prefix_cache.h"

#include <algorithm>

namespace c3po::remix {

const model::PrefixState* PrefixCache::find(int64_t index) {
  auto it = entries_.find(index);
  if (it == entries_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  order_.splice(order_.begin(), order_, it->second.where);
  return &it->second.state;
}

const model::PrefixState* PrefixCache::insert(int64_t index, model::PrefixState state) {
  bytes_ += state.bytes();
  order_.push_front(index);
  auto& e = entries_[index];
  e.state = std::move(state);
  e.where = order_.begin();
  evict();
  return &e.state;
}

const model::PrefixState* PrefixCache::peek(int64_t index) const {
  auto it = entries_.find(index);
  return it == entries_.end() ? nullptr : &it->second.state;
}

void PrefixCache::clear() {
  entries_.clear();
  order_.clear();
  bytes_ = 0;
}

void PrefixCache::evict() {
  auto it = order_.end();
  while (bytes_ > budget_ && it != order_.begin()) {
    --it;
    const int64_t index = *it;
    if (std::find(pinned_.begin(), pinned_.end(), index) != pinned_.end()) continue;
    auto e = entries_.find(index);
    bytes_ -= e->second.state.bytes();
    entries_.erase(e);
    it = order_.erase(it);
  }
}

}  // namespace c3po::remix
