#pragma once
// The output folder of a resumable run: run.json (settings), items.jsonl (one line per finished
// item, appended and flushed batch by batch), results.json (at the end). No torch here.
#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace c3po::eval {

// (task index, item index in the task's evaluation order)
using ItemKey = std::pair<std::size_t, std::size_t>;

class RunDirectory {
 public:
  // Creates `dir` if needed. If it holds a run.json, its "settings" must equal `settings`, else a
  // c3po::Error names the differing fields (a different run must use another folder); otherwise
  // run.json = {"settings": settings, "info": info} is written. Finished items are read from
  // items.jsonl; a torn last line (a crash mid-write) is cut off, any other bad line is an error.
  static RunDirectory open(const std::string& dir, const nlohmann::json& settings, const nlohmann::json& info);

  RunDirectory(RunDirectory&&) noexcept;
  RunDirectory& operator=(RunDirectory&&) noexcept;
  ~RunDirectory();

  // Records of finished items (each has "task_index" and "index"); the first line of a key wins.
  const std::map<ItemKey, nlohmann::json>& done() const { return done_; }
  // Empty, or a notice that open() cut off a torn last line of items.jsonl (file:line, bytes).
  const std::string& torn_line_notice() const { return torn_line_; }
  // Appends one line per record with write(2): the lines survive Ctrl-C or a crash of the process
  // (no fsync: an OS crash may lose the last batches, which a rerun then redoes).
  void append(const std::vector<nlohmann::json>& records);
  // Replaces items.jsonl by these records, one per line, atomically (a finished run's final order).
  void rewrite(const std::vector<nlohmann::json>& records);
  std::string path(const std::string& name) const;

 private:
  RunDirectory() = default;
  std::string dir_;
  std::map<ItemKey, nlohmann::json> done_;
  std::string torn_line_;
  int fd_ = -1;  // items.jsonl, opened for appending
};

// "key: stored A, now B; ..." for the top-level fields whose values differ (or exist in one only).
std::string differing_fields(const nlohmann::json& stored, const nlohmann::json& wanted);

// Key of a record; a c3po::Error naming `where` if it lacks task_index / index.
ItemKey record_key(const nlohmann::json& record, const std::string& where);

}  // namespace c3po::eval
