#include "io/mpi.h"

#include <cstdlib>
#include <string>

#include "io/error.h"

#ifdef C3PO_WITH_MPI
#include <mpi.h>
#endif

namespace c3po::io {
namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (*end == '\0' && n >= 0 && n < 1000000) ? static_cast<int>(n) : -1;
}

}  // namespace

bool launched_by_mpi() {
  // Open MPI's mpirun; PMIx (Open MPI 4+/5, srun --mpi=pmix); PMI-1/2 (MPICH's hydra, srun --mpi=pmi2).
  // Slurm's own SLURM_PROCID is not enough: it is also set in a plain job (array) step.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (env_int(name) >= 0) return true;
  return false;
}

int local_ranks_from_environment() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMIX_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"})
    if (const int n = env_int(name); n > 0) return n;
  return 0;
}

#ifdef C3PO_WITH_MPI

std::unique_ptr<MpiWorld> MpiWorld::join_if_launched() {
  if (!launched_by_mpi()) return nullptr;
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised && MPI_Init(nullptr, nullptr) != MPI_SUCCESS)
    throw Error("", "mpi", "MPI_Init failed although the environment shows an MPI launcher");
  std::unique_ptr<MpiWorld> w(new MpiWorld());
  MPI_Comm_rank(MPI_COMM_WORLD, &w->rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &w->size_);
  return w;
}

MpiWorld::~MpiWorld() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (!finalised) MPI_Finalize();
}

bool MpiWorld::all(bool mine) const {
  int in = mine ? 1 : 0, out = 0;
  MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
  return out != 0;
}

void MpiWorld::abort(int code) const {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

#else

std::unique_ptr<MpiWorld> MpiWorld::join_if_launched() {
  if (!launched_by_mpi()) return nullptr;
  throw Error("", "mpi",
              "started by an MPI launcher, but this c3po was built without MPI (install libopenmpi-dev and "
              "rebuild, or run shards with --shard I/N and c3po merge)");
}
MpiWorld::~MpiWorld() = default;
bool MpiWorld::all(bool mine) const { return mine; }
void MpiWorld::abort(int code) const { std::_Exit(code); }

#endif

}  // namespace c3po::io
