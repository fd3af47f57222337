#pragma once
// `c3po reference build`: one batched forward per reference item; correctly answered items are
// kept with their pathway (every MoE layer x every expert), embedding, gold and base loss.
// Resumable: progress is checkpointed to STORE.partial (a store file itself), and the final store
// is written under a temporary name and renamed, so no half-written store is ever left.
#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "eval/settings.h"
#include "model/engine.h"
#include "remix/remixer.h"
#include "remix/store.h"
#include "tokenizer/tokenizer.h"

namespace c3po::remix {

struct ReferenceSource {
  std::string task;   // registry task name (the store records it as the items' source)
  std::string path;   // file or folder
  std::string split;  // "" = the task's default... for references, usually "train"
};

struct BuildOptions {
  std::vector<ReferenceSource> sources;
  std::size_t limit = 0;          // per source, 0 = all
  std::size_t batch = 16;
  EmbedderChoice embedder;
  bool keep_incorrect = false;    // store wrongly answered items too, flagged (never neighbours)
  bool half_pathways = true;
  bool skip_bad = false;
  double checkpoint_seconds = 30;  // how often STORE.partial is rewritten
  std::string out;
  std::FILE* progress = stderr;
  const std::atomic<bool>* stop = nullptr;
  std::size_t stop_after_items = 0;  // tests: stop as if interrupted after this many new items
  // Build only every count-th batch of the items, from batch `index` on: a shard store, joined
  // with the others by merge_reference_shards into the store one process would have built.
  eval::Shard shard;
};

struct BuildReport {
  bool complete = false;
  StoreCounts counts;
  std::size_t resumed = 0;  // items taken from STORE.partial
  double seconds = 0;
};

// What a store records as its "build_settings" (a store is reused or resumed only when equal).
std::string build_settings(const BuildOptions& options, const StoreIdentity& identity);

BuildReport build_reference_store(const model::MoeModel& model, const tokenizer::Tokenizer& tok,
                                  const BuildOptions& options);

// Joins the shard stores of one sharded build (same settings, model and shard count; every shard
// once) into `out`, byte for byte the store of an unsharded build; else a c3po::Error naming the
// shard and the problem, and nothing is written. Returns the joined counts.
StoreCounts merge_reference_shards(const std::vector<std::string>& shard_paths, const std::string& out);

}  // namespace c3po::remix
