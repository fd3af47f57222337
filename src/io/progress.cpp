#include "io/progress.h"

#include <fmt/core.h>

namespace c3po::io {

namespace {
std::string clock_text(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
                   : fmt::format("{}:{:02}", s / 60, s % 60);
}
}  // namespace

Progress::Progress(std::string label, std::size_t total, std::FILE* out, double interval_seconds)
    : label_(std::move(label)), total_(total), out_(out), interval_(interval_seconds),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {}

void Progress::update(std::size_t done, bool force) {
  last_done_ = done;
  if (!out_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && printed_any_ && std::chrono::duration<double>(now - last_print_).count() < interval_) return;
  if (!force && !printed_any_ && std::chrono::duration<double>(now - start_).count() < interval_) return;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const std::size_t fresh = done > resumed_ ? done - resumed_ : 0;
  const double rate = elapsed > 0 ? fresh / elapsed : 0;
  const std::string left = rate > 0 && total_ >= done ? clock_text((total_ - done) / rate) : "?";
  fmt::print(out_, "{}: {}/{} items, {:.2f} items/s, {} elapsed, {} left\n", label_, done, total_, rate,
             clock_text(elapsed), left);
  std::fflush(out_);
  last_print_ = now;
  printed_any_ = true;
}

void Progress::finish() { update(last_done_, /*force=*/true); }

}  // namespace c3po::io
