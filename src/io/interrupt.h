#pragma once
// Ctrl-C for long jobs: while an InterruptScope lives, SIGINT sets a flag the job polls between
// batches (it then writes what is done and stops); a second SIGINT kills the process as usual.
#include <atomic>

namespace c3po::io {

class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  const std::atomic<bool>* flag() const;
  bool interrupted() const { return flag()->load(); }

 private:
  void (*previous_)(int);
};

}  // namespace c3po::io
