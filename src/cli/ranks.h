#pragma once
// Commands that run on every rank of an MPI job (eval, reference build).
#include <functional>

#include "io/mpi.h"

namespace c3po::cli {

// Runs f. Under MPI with several ranks, an exception on one rank is printed with the rank and
// ends every rank (MPI_Abort): the others would otherwise wait for it for ever.
int run_on_every_rank(const io::MpiWorld* mpi, const std::function<int()>& f);

}  // namespace c3po::cli
