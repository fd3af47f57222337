#include "model/threads.h"

#include <sched.h>
#include <ATen/Parallel.h>

#include <cstdlib>
#include <string>
#include <thread>

namespace c3po::model {

int set_compute_threads(int requested) {
  int n = requested;
  if (n <= 0) {
    if (const char* env = std::getenv("OMP_NUM_THREADS"); env && std::atoi(env) > 0) {
      n = std::atoi(env);
    } else {
      cpu_set_t set;
      n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                        : static_cast<int>(std::thread::hardware_concurrency());
    }
  }
  if (n <= 0) n = 1;
  at::set_num_threads(n);
  return at::get_num_threads();
}

}  // namespace c3po::model
