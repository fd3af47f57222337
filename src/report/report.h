#pragma once
// The demo report: one self-contained HTML page (inline CSS and SVG, no scripts, nothing loaded
// from the network) built from an evaluation run folder.
//
// Input, in run_dir:
//   results.json    (required) as written by the evaluation harness (eval/report.h): "tasks"[] with
//                   "task", "n" and "methods"[] rows {"method", "n", "acc", "acc_interval",
//                   "change_vs_base", "flips", "gap_closed", "seconds_per_item", "flops_per_item"};
//                   optional "model" {"path", "fingerprint", "model_type"} and "c3po_version".
//   items.jsonl     (required) one record per item: "task_index", "index", "task", "id", "gold",
//                   "methods" {name: {"prediction", "letter_probs", "details"}}; the details of the
//                   re-mixing methods: "neighbours" [{"id", "task" (older runs: "source"),
//                   "similarity", "weight"}],
//                   "alpha", "losses", "tail_reruns", "experts_before" / "experts_after"
//                   [{"moe_layer", "experts": [{"expert", "weight"}]}], "upper_bound".
//   questions.jsonl (optional) the item texts, one line per item (other fields are ignored, so a
//                   generic-task data file such as the demo's test.jsonl serves as is):
//                   {"task": "...", "id": "...", "question": "...", "choices": ["...", ...]}
//                   matched to records by (task, id), else by id alone when the id is on one line
//                   only; ReportOptions::questions_file names another file. A record may instead
//                   carry "question" and "choices" itself; that wins.
// Everything but the required fields is optional: what is missing is shown as "-" or left out.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "report/run_data.h"

namespace c3po::report {

struct ReportOptions {
  std::string title = "c3po report";
  // The re-mixing method whose neighbours, expert heatmaps and usage histograms are shown; when it
  // did not run, the first method (in results order) that recorded experts is used.
  std::string remix_method = "ngd";
  // Worked examples: items where a method changed the base answer (oracle-only changes last).
  std::size_t max_examples = 6;
  // Experts on the usage histograms' x axis; 0 = the largest expert id seen + 1.
  std::size_t num_experts = 0;
  // The item texts; empty = run_dir/questions.jsonl when it exists (see above).
  std::string questions_file;
  // Sections added after the generated ones: a title and preformatted text (e.g. the demo's
  // mechanism numbers and findings), shown as is.
  std::vector<std::pair<std::string, std::string>> extra_sections;
};

// The page for an already read run; same input, same bytes.
std::string render_report(const RunData& run, const ReportOptions& options);

// Reads run_dir (see above) and writes the page to out_html atomically. Bad or missing input is a
// c3po::Error naming the file and the field.
void write_report(const std::string& run_dir, const std::string& out_html, const ReportOptions& options = {});

}  // namespace c3po::report
