#include "eval/flops.h"

#include <algorithm>

#include "io/error.h"

namespace c3po::eval {

FlopsModel flops_model(const model::ModelConfig& c, int64_t active_parameter_count) {
  FlopsModel m;
  m.hidden = c.hidden_size;
  m.vocab = c.vocab_size;
  m.layers = c.num_layers;
  m.attention_width = c.num_heads * c.head_dim;
  m.window = c.sliding_window.value_or(0);
  const int64_t table = c.vocab_size * c.hidden_size;
  m.body_params = active_parameter_count - (c.tie_word_embeddings ? 1 : 2) * table;
  if (m.body_params <= 0)
    throw Error(c.source, "active_parameter_count",
                "must exceed the embedding and LM-head parameters (" + std::to_string(active_parameter_count) + ")");
  return m;
}

double forward_flops(const FlopsModel& m, int64_t n_tokens, int64_t n_past, int64_t scored_positions,
                     int64_t head_rows) {
  if (n_tokens <= 0) return 0.0;
  const double body = 2.0 * static_cast<double>(m.body_params) * static_cast<double>(n_tokens);
  // Token t (0-based among the new ones) attends to n_past + t + 1 keys, capped by the window.
  double keys = 0;
  for (int64_t t = 0; t < n_tokens; ++t) {
    int64_t k = n_past + t + 1;
    if (m.window > 0) k = std::min(k, m.window);
    keys += static_cast<double>(k);
  }
  const double attention = 4.0 * static_cast<double>(m.attention_width) * static_cast<double>(m.layers) * keys;
  const int64_t rows = head_rows < 0 ? m.vocab : head_rows;
  const double head = 2.0 * static_cast<double>(m.hidden) * static_cast<double>(rows) *
                      static_cast<double>(std::min(scored_positions, n_tokens));
  return body + attention + head;
}

}  // namespace c3po::eval
