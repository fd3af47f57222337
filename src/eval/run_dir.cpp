#include "eval/run_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/error.h"
#include "io/files.h"
#include "io/json_file.h"

namespace c3po::eval {
namespace fs = std::filesystem;

ItemKey record_key(const nlohmann::json& record, const std::string& where) {
  if (!record.is_object() || !record.contains("task_index") || !record["task_index"].is_number_unsigned() ||
      !record.contains("index") || !record["index"].is_number_unsigned())
    throw Error(where, "task_index/index", "expected non-negative integers in every item record");
  return {record["task_index"].get<std::size_t>(), record["index"].get<std::size_t>()};
}

std::string differing_fields(const nlohmann::json& stored, const nlohmann::json& wanted) {
  std::string out;
  auto add = [&out](const std::string& key, const nlohmann::json& a, const nlohmann::json& b) {
    out += (out.empty() ? "" : "; ") + key + ": stored " + a.dump() + ", now " + b.dump();
  };
  for (auto it = stored.begin(); it != stored.end(); ++it)
    if (!wanted.contains(it.key()) || wanted[it.key()] != it.value())
      add(it.key(), it.value(), wanted.contains(it.key()) ? wanted[it.key()] : nlohmann::json(nullptr));
  for (auto it = wanted.begin(); it != wanted.end(); ++it)
    if (!stored.contains(it.key())) add(it.key(), nullptr, it.value());
  return out;
}

RunDirectory RunDirectory::open(const std::string& dir, const nlohmann::json& settings, const nlohmann::json& info) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) throw Error(dir, "out", "cannot create the output folder: " + ec.message());
  RunDirectory rd;
  rd.dir_ = dir;
  const std::string run_json = rd.path("run.json");
  if (fs::exists(run_json)) {
    const nlohmann::json stored = io::read_json_file(run_json);
    if (!stored.is_object() || !stored.contains("settings"))
      throw Error(run_json, "settings", "missing; this folder does not hold a c3po eval run");
    if (stored["settings"] != settings)
      throw Error(run_json, "settings",
                  "this folder holds a run with other settings (" + differing_fields(stored["settings"], settings) +
                      "); rerun with the same settings to resume, or choose another --out folder");
  } else {
    io::write_json_file(run_json, {{"settings", settings}, {"info", info}});
  }

  const std::string items = rd.path("items.jsonl");
  if (fs::exists(items)) {
    std::ifstream in(items, std::ios::binary);
    if (!in) throw Error(items, "", "cannot read");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    std::size_t pos = 0, line_no = 0, good_end = 0;
    while (pos < text.size()) {
      ++line_no;
      const std::size_t nl = text.find('\n', pos);
      const bool complete = nl != std::string::npos;
      const std::string line = text.substr(pos, complete ? nl - pos : std::string::npos);
      const std::string where = items + ":" + std::to_string(line_no);
      if (!complete) break;  // torn last line: the item is redone
      nlohmann::json record;
      try {
        record = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw Error(where, "line", "not valid JSON: " + io::json_error_text(e) + "; remove the line to resume");
      }
      rd.done_.emplace(record_key(record, where), std::move(record));
      pos = nl + 1;
      good_end = pos;
    }
    if (good_end < text.size()) {
      fs::resize_file(items, good_end);
      rd.torn_line_ = items + ":" + std::to_string(line_no) + ": dropped a half-written last line (" +
                      std::to_string(text.size() - good_end) + " bytes, no newline); its item is run again";
    }
  }
  rd.fd_ = ::open(items.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (rd.fd_ < 0) throw Error(items, "", std::string("cannot open for appending: ") + std::strerror(errno));
  return rd;
}

RunDirectory::RunDirectory(RunDirectory&& o) noexcept
    : dir_(std::move(o.dir_)), done_(std::move(o.done_)), torn_line_(std::move(o.torn_line_)), fd_(o.fd_) {
  o.fd_ = -1;
}

RunDirectory& RunDirectory::operator=(RunDirectory&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    dir_ = std::move(o.dir_);
    done_ = std::move(o.done_);
    torn_line_ = std::move(o.torn_line_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

RunDirectory::~RunDirectory() {
  if (fd_ >= 0) ::close(fd_);
}

void RunDirectory::append(const std::vector<nlohmann::json>& records) {
  std::string text;
  for (const auto& r : records) text += r.dump() + "\n";
  const std::string items = path("items.jsonl");
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(items, "", std::string("write failed: ") + std::strerror(errno));
    }
    off += static_cast<std::size_t>(n);
  }
}

void RunDirectory::rewrite(const std::vector<nlohmann::json>& records) {
  std::string text;
  for (const auto& r : records) text += r.dump() + "\n";
  const std::string items = path("items.jsonl");
  io::write_file_atomic(items, text);
  // The appending descriptor still points at the replaced file.
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(items.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) throw Error(items, "", std::string("cannot open for appending: ") + std::strerror(errno));
}

std::string RunDirectory::path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

}  // namespace c3po::eval
