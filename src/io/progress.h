#pragma once
// Progress lines for long jobs: items done, rate, time left. Printed at most every `interval`
// seconds (and at the end), one line each, so logs stay readable.
#include <chrono>
#include <cstdio>
#include <string>

namespace c3po::io {

class Progress {
 public:
  Progress(std::string label, std::size_t total, std::FILE* out = stderr, double interval_seconds = 2.0);
  // done: items finished so far (of total); resumed: how many of them came from an earlier run.
  void update(std::size_t done, bool force = false);
  void set_resumed(std::size_t resumed) { resumed_ = resumed; }
  void finish();

 private:
  std::string label_;
  std::size_t total_, resumed_ = 0, last_done_ = 0;
  std::FILE* out_;
  double interval_;
  std::chrono::steady_clock::time_point start_, last_print_;
  bool printed_any_ = false;
};

}  // namespace c3po::io
