#include "model/threads.h"

#include "model/config.h"
#include "model/engine.h"

#include <dlfcn.h>
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
  // LibTorch does not pass the count on to a pthreads OpenBLAS, which otherwise runs its own pool
  // of one thread per core: results would then depend on the machine's core count, and its
  // spinning threads compete with LibTorch's. Looked up at run time: the BLAS may be another one.
  using SetThreads = void (*)(int);
  if (auto set_blas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set_blas(n);
  return at::get_num_threads();
}

int set_compute_threads_for(const ModelConfig& config) {
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env && std::atoi(env) > 0) return set_compute_threads(0);
  return set_compute_threads(config.hidden_size < 1024 ? 1 : 0);
}

std::unique_ptr<MoeModel> load_for_compute(const std::string& folder, const std::string& dtype) {
  auto model = MoeModel::load(folder, parse_dtype(dtype));
  set_compute_threads_for(model->config());
  return model;
}

}  // namespace c3po::model
