// The MPI context shared by the [mpi] tests of one test process: created on first use
// (so single-process tests never start MPI) and finalised at exit.
#pragma once

#include "dist/context.h"

namespace dpunet::test {

dist::Context& mpi_context();

}  // namespace dpunet::test
