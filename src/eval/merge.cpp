#include "eval/merge.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "eval/report.h"
#include "eval/run_dir.h"
#include "io/error.h"
#include "io/files.h"
#include "io/json_file.h"

namespace c3po::eval {
namespace fs = std::filesystem;
namespace {

struct ShardRun {
  std::string dir;
  nlohmann::json settings;  // without "shard"
  nlohmann::json info;      // without "shard_items"
  std::size_t index = 0, count = 0, batch = 0, items = 0;
  std::vector<nlohmann::json> records;
};

std::size_t count_field(const nlohmann::json& j, const char* key, const std::string& where, const std::string& field) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number_unsigned())
    throw Error(where, field, "expected a whole number; this folder was not written by c3po eval --shard");
  return j[key].get<std::size_t>();
}

ShardRun read_shard(const std::string& dir) {
  ShardRun r;
  r.dir = dir;
  const std::string run_json = (fs::path(dir) / "run.json").string();
  if (!fs::exists(run_json)) throw Error(run_json, "", "no such file: not a c3po eval run folder");
  nlohmann::json run = io::read_json_file(run_json);
  if (!run.is_object() || !run.contains("settings") || !run["settings"].is_object() || !run.contains("info") ||
      !run["info"].is_object())
    throw Error(run_json, "settings", "missing; this folder does not hold a c3po eval run");
  r.settings = run["settings"];
  r.info = run["info"];
  if (!r.settings.contains("shard"))
    throw Error(run_json, "settings.shard", "missing: this run was not sharded (c3po eval --shard I/N writes shards)");
  const nlohmann::json shard = r.settings["shard"];
  r.index = count_field(shard, "index", run_json, "settings.shard.index");
  r.count = count_field(shard, "count", run_json, "settings.shard.count");
  r.batch = count_field(shard, "batch", run_json, "settings.shard.batch");
  r.items = count_field(r.info, "shard_items", run_json, "info.shard_items");
  if (r.count == 0 || r.index >= r.count) throw Error(run_json, "settings.shard", "index must be below count");
  r.settings.erase("shard");
  r.info.erase("shard_items");

  const std::string items = (fs::path(dir) / "items.jsonl").string();
  io::require_regular_file(items);
  std::ifstream in(items, std::ios::binary);
  if (!in) throw Error(items, "", "cannot read");
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string where = items + ":" + std::to_string(line_no);
    try {
      r.records.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      throw Error(where, "line", "not valid JSON (" + io::json_error_text(e) + "); rerun this shard's command to repair it");
    }
    record_key(r.records.back(), where);
  }
  if (r.records.size() != r.items)
    throw Error(dir, "items",
                fmt::format("shard {}/{} is not finished ({} of {} items); rerun its command to finish it", r.index,
                            r.count, r.records.size(), r.items));
  return r;
}

}  // namespace

MergedRun merge_shards(const std::vector<std::string>& shard_dirs, const std::string& out_dir) {
  if (shard_dirs.empty()) throw Error("", "shards", "no shard folder given");
  std::vector<ShardRun> shards;
  for (const auto& d : shard_dirs) shards.push_back(read_shard(d));
  const ShardRun& first = shards.front();
  std::map<std::size_t, std::string> seen;
  for (const auto& s : shards) {
    const std::string run_json = (fs::path(s.dir) / "run.json").string();
    if (s.settings != first.settings)
      throw Error(run_json, "settings",
                  "this shard belongs to another run than " + first.dir + " (" +
                      differing_fields(first.settings, s.settings) + ")");
    if (s.count != first.count || s.batch != first.batch)
      throw Error(run_json, "settings.shard",
                  fmt::format("shard {}/{} with batch {} cannot join shards of {} with batch {} ({})", s.index, s.count,
                              s.batch, first.count, first.batch, first.dir));
    if (s.info.value("tasks", nlohmann::json()) != first.info.value("tasks", nlohmann::json()))
      throw Error(run_json, "info.tasks", "the shards read different data (" + first.dir + ")");
    if (const auto it = seen.find(s.index); it != seen.end())
      throw Error(s.dir, "shard", fmt::format("shard {}/{} is given twice (also {})", s.index, s.count, it->second));
    seen.emplace(s.index, s.dir);
  }
  for (std::size_t i = 0; i < first.count; ++i)
    if (!seen.count(i))
      throw Error(first.dir, "shard", fmt::format("shard {}/{} is missing: give all {} shard folders", i, first.count,
                                                  first.count));

  const std::string info_where = (fs::path(first.dir) / "run.json").string();
  if (!first.info.contains("tasks") || !first.info["tasks"].is_array())
    throw Error(info_where, "info.tasks", "missing; this shard was written by an older c3po");
  std::vector<TaskSummary> tasks;
  for (const auto& t : first.info["tasks"]) tasks.push_back(task_summary_from_json(t, info_where));
  std::vector<std::vector<nlohmann::json>> records(tasks.size());
  std::vector<std::vector<bool>> have(tasks.size());
  std::size_t total = 0;
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    records[t].resize(tasks[t].items);
    have[t].assign(tasks[t].items, false);
    total += tasks[t].items;
  }
  for (auto& s : shards)
    for (auto& r : s.records) {
      const std::string where = (fs::path(s.dir) / "items.jsonl").string();
      const ItemKey key = record_key(r, where);
      if (key.first >= tasks.size() || key.second >= tasks[key.first].items)
        throw Error(where, fmt::format("item {} of task {}", key.second, key.first), "is not an item of this run");
      if (have[key.first][key.second])
        throw Error(where, fmt::format("item {} of task {}", key.second, key.first), "is in two shards");
      have[key.first][key.second] = true;
      records[key.first][key.second] = std::move(r);
    }
  std::size_t merged = 0;
  std::string lines;
  for (std::size_t t = 0; t < tasks.size(); ++t)
    for (std::size_t i = 0; i < tasks[t].items; ++i) {
      if (!have[t][i])
        throw Error(first.dir, fmt::format("item {} of task {}", i, t), "is in no shard");
      lines += records[t][i].dump() + "\n";
      ++merged;
    }
  if (merged != total) throw Error(first.dir, "items", "the shards do not cover the run");

  std::vector<std::string> methods;
  for (const auto& m : first.settings.value("methods", nlohmann::json::array())) methods.push_back(m.get<std::string>());
  if (methods.empty() || methods.front() != "base") throw Error(info_where, "settings.methods", "expected base first");
  MergedRun out;
  out.items = merged;
  out.results = build_results({first.info.value("c3po_version", std::string()), first.info.value("model", nlohmann::json()),
                               first.settings, methods},
                              tasks, records);
  out.markdown = markdown_table(out.results);

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec || !fs::is_directory(out_dir)) throw Error(out_dir, "out", "cannot create the output folder: " + ec.message());
  const std::string run_json = (fs::path(out_dir) / "run.json").string();
  const nlohmann::json run = {{"settings", first.settings}, {"info", first.info}};
  if (fs::exists(run_json)) {
    const nlohmann::json stored = io::read_json_file(run_json);
    if (!stored.is_object() || stored.value("settings", nlohmann::json()) != first.settings)
      throw Error(run_json, "settings", "this folder holds another run; choose another --out folder");
  }
  io::write_json_file(run_json, run);
  io::write_file_atomic((fs::path(out_dir) / "items.jsonl").string(), lines);
  io::write_json_file((fs::path(out_dir) / "results.json").string(), out.results);
  return out;
}

}  // namespace c3po::eval
