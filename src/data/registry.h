#pragma once
// Task registry: lm-evaluation-harness task names -> how their files are found and read. Items
// carry their task name, which selects the renderers in prompt.h (render_letter_prompt,
// render_loglik).
#include <string>
#include <string_view>
#include <vector>

#include "data/item.h"
#include "data/readers.h"

namespace c3po::data {

struct TaskSpec {
  std::string name;                 // mmlu, arc_challenge, ..., generic
  std::string default_split;        // the split lm-eval evaluates ("" for generic: a file only)
  std::vector<std::string> splits;  // accepted split names
  std::string metrics;              // what lm-eval reports: "acc" or "acc, acc_norm"
};

// All tasks, in a fixed order.
const std::vector<TaskSpec>& task_specs();

// The spec of a task; an unknown name is a c3po::Error listing the known ones.
const TaskSpec& find_task(std::string_view name);

// The files to read for (task, path, split): path may be a data file (used as is whatever the
// split, plus its "<stem>-labels.lst" where the task has one) or a folder (searched for the split's usual file
// names, also one level down in the dataset's usual folder name). split "" means the default.
// Aliases: "validation" = "val" = "dev" = "valid". Errors list what was looked for.
struct SplitFiles {
  std::vector<std::string> data;  // several only for an MMLU folder
  std::string labels;             // "" if none
};
SplitFiles resolve_split_files(std::string_view task, const std::string& path, std::string_view split = "");

// resolve_split_files + the task's reader.
ReadResult read_task(std::string_view task, const std::string& path, std::string_view split = "",
                     const ReadOptions& options = {}, const GenericMapping& mapping = {});

}  // namespace c3po::data
