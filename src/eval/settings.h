#pragma once
// What one `c3po eval` run is: the settings, and the items they select. No torch here.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/item.h"

namespace c3po::eval {

enum class Protocol { Letter, Loglik };
Protocol parse_protocol(const std::string& name);  // "letter" | "loglik"; else c3po::Error
const char* protocol_name(Protocol p);

struct TaskRequest {
  std::string task;   // registry name (data/registry.h)
  std::string data;   // file or folder
  std::string split;  // "" = the task's default
};

// Part `index` of `count` (0-based): every count-th batch of the shortest-first order.
struct Shard {
  std::size_t index = 0, count = 1;
  bool whole() const { return count == 1; }
  std::string name() const;  // "1/3": as --shard takes it
};
// "I/N" with 0 <= I < N (I as Slurm's SLURM_ARRAY_TASK_ID counts); else c3po::Error.
Shard parse_shard(const std::string& text, const std::string& field = "shard");

struct EvalSettings {
  std::string model;  // Hugging Face folder (config.json, safetensors, tokenizer.json)
  std::vector<TaskRequest> tasks;
  Protocol protocol = Protocol::Letter;
  std::size_t limit = 0;                     // items per task after shuffling; 0 = all
  std::optional<uint64_t> shuffle_seed;      // none = file order
  std::size_t batch = 16;                    // prompts per base forward
  std::string dtype = "bf16";                // bf16 | f32
  bool skip_bad = false;                     // skip malformed items instead of stopping
  bool record_timing = true;                 // false: no wall-clock times in the outputs
  std::string out_dir;                       // "" = nothing written, no resume
  Shard shard;                               // which part of the items this process runs
  // Set by whoever adds methods (recorded in run.json and results.json, compared on resume).
  nlohmann::json method_settings = nlohmann::json::object();
};

// The settings that decide the results (everything but batch, out_dir and the model's path):
// run.json stores them, a resumed run must match them, results.json repeats them.
// methods: names of the extra methods in order ("base" is implied).
nlohmann::json result_settings(const EvalSettings& s, const std::string& model_fingerprint,
                               const std::vector<std::string>& methods);

// The items of one task as the run evaluates them: read, shuffled (if a seed is given), limited.
struct EvalTask {
  TaskRequest request;
  std::vector<data::McItem> items;
  std::size_t available = 0;  // items in the data before --limit
  std::size_t skipped = 0;    // malformed items skipped (--skip-bad)
  std::vector<std::string> skip_messages;
};

std::vector<EvalTask> load_tasks(const EvalSettings& s);

// Deterministic on every platform (no std::shuffle / distributions, whose output is
// implementation-defined): Fisher-Yates driven by splitmix64.
template <typename T>
void seeded_shuffle(std::vector<T>& v, uint64_t seed);
std::vector<std::size_t> seeded_permutation(std::size_t n, uint64_t seed);

}  // namespace c3po::eval
