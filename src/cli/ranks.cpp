#include "cli/ranks.h"

#include <fmt/core.h>

#include <cstdio>
#include <exception>

namespace c3po::cli {

int run_on_every_rank(const io::MpiWorld* mpi, const std::function<int()>& f) {
  if (!mpi || mpi->size() == 1) return f();
  try {
    return f();
  } catch (const std::exception& e) {
    fmt::print(stderr, "c3po: error on rank {} of {}: {}\n", mpi->rank(), mpi->size(), e.what());
    std::fflush(stderr);
    mpi->abort(1);
  }
}

}  // namespace c3po::cli
