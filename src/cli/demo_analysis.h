#pragma once
// The numbers `c3po demo` reports beyond the accuracy table (docs/method.md section 11): accuracy
// after each NGD step, how each item family uses the experts of the critical layers before and
// after re-mixing, how often an item's neighbours share its family, how far wrong and right items'
// pathways lie from the correct references of their own family, and findings generated from them.
// Item families come from the "task" field of the data files (the demo's generic-task jsonl).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/harness.h"
#include "model/engine.h"
#include "remix/store.h"
#include "tokenizer/tokenizer.h"

namespace c3po::cli {

struct DemoCondition {
  std::string name;       // "in-distribution", "shifted"
  std::string data_file;  // the test items of the condition
  const eval::EvalRun* run = nullptr;
};

struct DemoAnalysisInput {
  const model::MoeModel* model = nullptr;
  const tokenizer::Tokenizer* tok = nullptr;
  const remix::ReferenceStore* store = nullptr;
  std::vector<int> critical;    // MoE layers re-mixed
  std::string reference_file;   // the store's data, for the references' families
  std::vector<DemoCondition> conditions;  // the first one defines each family's home experts
  std::size_t limit = 0;        // items per condition the runs used (0: all)
};

struct DemoAnalysis {
  nlohmann::json numbers;  // everything below, per condition
  std::string text;        // Markdown: tables and findings
  std::string findings;    // the findings paragraph alone
};

DemoAnalysis analyse_demo(const DemoAnalysisInput& in);

}  // namespace c3po::cli
