#include <fmt/core.h>

#include "io/error.h"
#include "model/impl.h"

// Packing sequences into one batch of rows, and the checks every input to the layer loop passes.
namespace c3po::model {

Segment& PackedBatch::add_segment(int64_t n, int64_t past, const std::string& where) {
  if (n < 1) throw Error(where, "input_ids", "empty prompt");
  // Positions past the context length have no trained RoPE phase: refuse instead of answering.
  const int64_t max = cfg_.max_position_embeddings;
  if (max > 0 && past + n > max)
    throw Error(where, "input_ids",
                past == 0 ? fmt::format("{} tokens exceed max_position_embeddings {}", n, max)
                          : fmt::format("{} cached + {} new tokens exceed max_position_embeddings {}", past, n, max));
  Segment s;
  s.offset = rows();
  s.length = n;
  s.past = past;
  s.prompt = static_cast<int>(segments.size());
  for (int64_t t = 0; t < n; ++t) positions.push_back(past + t);
  segments.push_back(s);
  return segments.back();
}

Segment& PackedBatch::add_tokens(const int64_t* tokens, int64_t n, int64_t past, const std::string& where) {
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= cfg_.vocab_size)
      throw Error(where, "input_ids",
                  fmt::format("token id {} out of range [0, {})", tokens[i], cfg_.vocab_size));
  Segment& s = add_segment(n, past, where);
  ids.insert(ids.end(), tokens, tokens + n);
  return s;
}

Segment& PackedBatch::add_continuation(const int64_t* tokens, int64_t n, int parent, const std::string& where) {
  if (parent < 0 || parent >= static_cast<int>(segments.size()))
    throw Error(where, "parent", fmt::format("expected an earlier segment of the batch (0 to {}), got {}",
                                             static_cast<int>(segments.size()) - 1, parent));
  const Segment& p = segments[static_cast<std::size_t>(parent)];
  if (p.past != 0 || p.parent >= 0 || p.cache || p.past_keys)
    throw Error(where, "parent", fmt::format("segment {} does not start its sequence", parent));
  const int64_t past = p.length;
  Segment& s = add_tokens(tokens, n, past, where);
  s.parent = parent;
  return s;
}

Segment& PackedBatch::add_rows(int64_t n, int64_t past, const std::string& where) {
  return add_segment(n, past, where);
}

}  // namespace c3po::model
