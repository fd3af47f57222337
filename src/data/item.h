#pragma once
// The one in-memory form of a multiple-choice item, whatever benchmark it came from.
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace c3po::data {

struct McItem {
  std::string id;        // the dataset's own id, else "<file stem>-<0-based index>"
  std::string task;      // registry task name (mmlu, arc_challenge, ..., generic)
  std::string question;  // question / goal / sentence / query, as the file has it
  std::vector<std::string> choices;  // in the order the letter protocol shows them
  int gold = -1;                     // index into choices
  std::string context;  // passage (BoolQ), support (SciQ), situation (Social IQa); else empty
  std::string subject;  // MMLU subject (file-name form, e.g. "abstract_algebra"); else empty
  // Raw fields a renderer needs beyond the above (HellaSwag ctx_a/ctx_b/activity_label,
  // SciQ distractors, WinoGrande/KnowRef blank sentence, ...).
  nlohmann::json extra = nlohmann::json::object();
  std::string source;  // "<path>:<line>" of the item's first line
};

// Where an item came from, for error messages: "<path>:<line>", else its id.
inline const std::string& origin(const McItem& item) { return item.source.empty() ? item.id : item.source; }

struct ReadOptions {
  bool skip_bad = false;         // skip and count malformed items instead of throwing
  std::size_t max_messages = 5;  // how many skip messages to keep
};

struct ReadResult {
  std::vector<McItem> items;
  std::size_t skipped = 0;            // malformed items skipped (skip_bad only)
  std::vector<std::string> messages;  // the first max_messages skip messages
  std::vector<std::string> files;     // the files read, in order
  void append(ReadResult&& other);
};

}  // namespace c3po::data
