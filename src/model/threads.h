#pragma once
// How many threads LibTorch computes with. Some OpenMP runtimes start with one thread on a
// multi-core machine (seen here: omp_get_max_threads() == 1 with 2 cores), which halves matmul
// speed, so c3po sets the count itself.

#include <memory>
#include <string>

namespace c3po::model {

// requested > 0: use that many threads. requested == 0: OMP_NUM_THREADS if set, otherwise every
// core the process may run on. Returns the count in effect.
int set_compute_threads(int requested);

struct ModelConfig;
// For a loaded model when the user chose no count (no --threads, no OMP_NUM_THREADS): every core
// for models whose matrices are worth splitting, one thread for small ones (hidden < 1024), where
// per-operation threading costs more than it saves. Measured with the demo model (hidden 128) on
// 2 cores: `c3po demo` took 110 s with one thread and over 8 minutes with two while another
// process was busy. Returns the count in effect.
int set_compute_threads_for(const ModelConfig& config);

class MoeModel;
// A command's first step: loads the folder in `dtype` ("f32" | "bf16") and fits the thread count
// to the model (set_compute_threads_for).
std::unique_ptr<MoeModel> load_for_compute(const std::string& folder, const std::string& dtype);

}  // namespace c3po::model
