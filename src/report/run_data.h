#pragma once
// What the report reads from an evaluation run folder (see report.h for the files and fields).
// Required fields missing or of the wrong type are a c3po::Error naming the file and the field;
// optional ones (timing, FLOPs, gap closed, details) may be absent.
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace c3po::report {

struct MethodResult {
  std::string method;
  std::size_t n = 0;
  std::optional<double> accuracy;  // null in results.json when the task had no items
  std::optional<double> interval_low, interval_high;
  std::optional<double> change_vs_base;
  std::optional<std::size_t> wrong_to_right, right_to_wrong;
  std::optional<double> gap_closed;
  std::optional<double> seconds_per_item, flops_per_item;
  bool upper_bound = false;  // the oracle (by name, or "upper_bound" in its item details)
};

struct TaskResult {
  std::string task, data, split, protocol;
  std::size_t n = 0;
  std::vector<MethodResult> methods;  // results.json order: base first
};

struct ExpertWeight {
  int expert = 0;
  double weight = 0;
};

struct LayerExperts {
  int moe_layer = 0;
  std::vector<ExpertWeight> experts;  // the top-k of that layer's pathway
};

struct Neighbour {
  std::string id, task;  // the reference and the dataset it came from
  std::optional<double> similarity, weight;
};

struct MethodAnswer {
  int prediction = -1;
  std::vector<double> letter_probs;
  // From "details" (re-mixing methods only).
  bool upper_bound = false;
  std::optional<std::vector<Neighbour>> neighbours;
  std::optional<double> alpha;
  std::vector<double> losses;
  std::optional<long long> tail_reruns;
  std::vector<LayerExperts> experts_before, experts_after;
};

struct ItemRecord {
  std::size_t task_index = 0, index = 0;
  std::string task, id;
  int gold = -1;
  std::optional<std::string> question;
  std::vector<std::string> choices;     // empty when the run folder has no text for the item
  std::map<std::string, MethodAnswer> methods;
};

struct RunData {
  std::string run_dir;
  std::string c3po_version, model_path, model_fingerprint, model_type;
  std::vector<TaskResult> tasks;
  std::vector<ItemRecord> items;          // sorted by (task_index, index), one per key
  std::vector<std::string> method_order;  // base first, then the order of results.json
};

// Reads run_dir/results.json, run_dir/items.jsonl and the item texts: `questions_file` if given
// (it must exist), else run_dir/questions.jsonl if present. A text line matches a record by
// (task, id), else by id alone when that id occurs on one line only (an id on several lines of
// other tasks is ambiguous and matches nothing).
RunData read_run(const std::string& run_dir, const std::string& questions_file = "");

}  // namespace c3po::report
