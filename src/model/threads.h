#pragma once
// How many threads LibTorch computes with. Some OpenMP runtimes start with one thread on a
// multi-core machine (seen here: omp_get_max_threads() == 1 with 2 cores), which halves matmul
// speed, so c3po sets the count itself.

namespace c3po::model {

// requested > 0: use that many threads. requested == 0: OMP_NUM_THREADS if set, otherwise every
// core the process may run on. Returns the count in effect.
int set_compute_threads(int requested);

}  // namespace c3po::model
