#include "io/interrupt.h"

#include <csignal>

namespace c3po::io {

namespace {
// A signal handler can only reach a static: the one flag SIGINT sets while a scope is alive.
std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) {
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);
}
}  // namespace

InterruptScope::InterruptScope() {
  g_interrupted.store(false);
  previous_ = std::signal(SIGINT, on_sigint);
}

InterruptScope::~InterruptScope() { std::signal(SIGINT, previous_); }

const std::atomic<bool>* InterruptScope::flag() const { return &g_interrupted; }

}  // namespace c3po::io
