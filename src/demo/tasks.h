#pragma once
// Synthetic multiple-choice tasks for the shipped demo model: six families that need different
// skills, rendered in the letter protocol, split into disjoint train / reference / test sets.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace c3po::demo {

struct McItem {
  std::string id;        // "<split>-<index>"
  std::string task;      // family name
  std::string question;
  std::vector<std::string> choices;  // 2..5
  int answer = 0;        // index into choices
  // The family whose surface cue starts the question ("Abacus: ..."), empty when there is none.
  // It is the item's own family except in the shifted condition and in the training items whose
  // cue was swapped to teach the router to follow the cue (docs/method.md section 11).
  std::string cue;
};

// The families, in a fixed order.
const std::vector<std::string>& task_families();

struct SplitSizes {
  int train = 30000;
  int reference = 2400;
  int test = 600;
};

struct Splits {
  std::vector<McItem> train, reference, test;
};

// Deterministic for a seed on every platform. Each split holds every family equally (remainders to
// the first families); within a family, 2, 3, 4 and 5 options are equally frequent and, for each
// option count, so is every gold letter (so letter priors are worth nothing). No item appears in two
// splits: an item's identity is the text that determines its answer - the question for families
// whose question states everything (arithmetic, string, sequence), the question with its choices
// for those whose question is a template over the choices (knowledge, comparison).
Splits generate_splits(uint64_t seed, const SplitSizes& sizes);

// The surface cue of each family, in task_families() order: one word and a colon put before the
// question ("Abacus: Is 47 + 28 even or odd?").
const std::vector<std::string>& family_cues();
// The item with the cue of `family` (a name of task_families()) before its question.
McItem with_cue(const McItem& item, const std::string& family);

// The demo's data (docs/method.md section 11), every question starting with a family cue:
// - train: the generated training split; each item carries its own family's cue, except a share
//   `swapped_share` whose cue is another family's (the training masks their answer and routes
//   them by the cue, so the router learns to follow the cue);
// - reference: the generated reference split minus dev (the last `dev_per_family` items of each
//   family, in the split's order; at most a quarter of the family), own cues;
// - dev, test: own cues; dev_shifted, test_shifted: the same items with another family's cue
//   (drawn with the seed), choices and answers unchanged.
// Settings are chosen on dev and dev_shifted only; test and test_shifted are reported. Ids are
// "<file stem>-<line>" as the generic reader names items (test-shifted-7 is test-7 shifted).
struct DemoData {
  std::vector<McItem> train, reference, dev, test, dev_shifted, test_shifted;
};
DemoData demo_data(uint64_t seed, const SplitSizes& sizes, int dev_per_family = 60, double swapped_share = 0.2);

// Each item with a cue of another family than its own, drawn with the seed.
std::vector<McItem> with_other_cues(const std::vector<McItem>& items, uint64_t seed);

// The identity used for the disjointness rule above.
std::string identity_key(const McItem& item);

// "Question: ...\nA. ...\nB. ...\nAnswer:" (ends where the letter must come).
std::string render_prompt(const McItem& item);
// " A", " B", ...: the answer continuation for option index i.
std::string letter_continuation(int index);

nlohmann::json item_to_json(const McItem& item);
// Validates fields and ranges; errors name the file (origin) and the field.
McItem item_from_json(const nlohmann::json& j, const std::string& origin);

void write_jsonl(const std::string& path, const std::vector<McItem>& items);
std::vector<McItem> read_jsonl(const std::string& path);

// The fixed synthetic knowledge base the "knowledge" family asks about (a function of the seed).
struct Person {
  std::string name, city, colour, job;
};
std::vector<Person> knowledge_base(uint64_t seed);

}  // namespace c3po::demo
