// Lazily started MPI for the [mpi] tests.
#include "support/mpi_test_context.h"

namespace dpunet::test {

dist::Context& mpi_context() {
  static dist::Context context(dist::DevicePreference::kCpu);
  return context;
}

}  // namespace dpunet::test
