#pragma once
// `c3po merge`: the shards of one sharded eval (each a finished `--shard I/N` run folder) made into
// the run folder one process would have written: the same run.json, items.jsonl and results.json,
// byte for byte. No torch and no model here: everything comes from the shards' own files.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace c3po::eval {

struct MergedRun {
  nlohmann::json results;  // what results.json holds
  std::string markdown;    // the table c3po eval prints
  std::size_t items = 0;
};

// Checks that `shard_dirs` are all the shards of one run (same settings, model, data, batch and
// shard count; every shard present once and finished) and writes run.json, items.jsonl and
// results.json into out_dir (created if needed; a folder holding another run is refused). Any
// problem is a c3po::Error naming the shard folder and what is wrong; nothing is written then.
MergedRun merge_shards(const std::vector<std::string>& shard_dirs, const std::string& out_dir);

}  // namespace c3po::eval
