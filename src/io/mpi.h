#pragma once
// MPI, when c3po was started by an MPI launcher (mpirun, mpiexec, or Slurm's srun with PMI/PMIx):
// detected from the environment the launcher sets, so a plain run never starts MPI. Built only
// when CMake finds MPI (C3PO_WITH_MPI); otherwise a launched run is refused with a clear message.
#include <memory>
#include <string>

namespace c3po::io {

// True when the environment shows an MPI launcher started this process with more than one rank
// or with a rank id (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK, ...).
bool launched_by_mpi();
// Ranks of this job on this node as the launcher says (Open MPI, MPICH, Slurm), or 0 if unknown.
int local_ranks_from_environment();

class MpiWorld {
 public:
  // MPI_Init if launched_by_mpi(), else nullptr. A c3po built without MPI throws c3po::Error.
  static std::unique_ptr<MpiWorld> join_if_launched();
  ~MpiWorld();  // MPI_Finalize
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Logical AND of `mine` over all ranks; every rank must call it (a collective).
  bool all(bool mine) const;
  // Ends every rank of the job (MPI_Abort): one rank's failure must not leave the others waiting.
  [[noreturn]] void abort(int code) const;

 private:
  MpiWorld() = default;
  int rank_ = 0, size_ = 1;
};

}  // namespace c3po::io
