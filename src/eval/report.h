#pragma once
// results.json and the Markdown table, computed only from the per-item records (the lines of
// items.jsonl), in item order: a resumed run reports exactly what an uninterrupted one does.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/settings.h"

namespace c3po::eval {

struct ReportInput {
  std::string c3po_version;
  nlohmann::json model;     // {"path", "fingerprint", "dtype", ...}
  nlohmann::json settings;  // result_settings(...)
  std::vector<std::string> methods;  // "base" first, then the extra methods in run order
};

// What results.json says of a task besides its records; run.json keeps it, so that shards can be
// merged without the data.
struct TaskSummary {
  TaskRequest request;
  std::size_t items = 0, available = 0, skipped = 0;
};
TaskSummary summarize(const EvalTask& task);
nlohmann::json to_json(const TaskSummary& t);
TaskSummary task_summary_from_json(const nlohmann::json& j, const std::string& where);

// records[t][i]: the record of item i of tasks[t] (complete: one per item).
nlohmann::json build_results(const ReportInput& in, const std::vector<TaskSummary>& tasks,
                             const std::vector<std::vector<nlohmann::json>>& records);
nlohmann::json build_results(const ReportInput& in, const std::vector<EvalTask>& tasks,
                             const std::vector<std::vector<nlohmann::json>>& records);

// One row per (task, method).
std::string markdown_table(const nlohmann::json& results);

}  // namespace c3po::eval
