// Backend choice for a context.
#include "dist/make_communicator.h"

#include "common/error.h"
#include "dist/checked_communicator.h"
#include "dist/context.h"
#include "dist/mpi_communicator.h"
#ifdef DPUNET_WITH_NCCL
#include "dist/nccl_communicator.h"
#endif

namespace dpunet::dist {

bool nccl_available() {
#ifdef DPUNET_WITH_NCCL
  return true;
#else
  return false;
#endif
}

namespace {

std::shared_ptr<Communicator> make_backend(const Context& context, const std::string& backend,
                                           const CommunicatorOptions& options) {
  DPUNET_CHECK(backend == "auto" || backend == "mpi" || backend == "nccl", "unknown communication backend '", backend,
               "': expected auto, mpi or nccl");
  // Caught here, before a collective meets a tensor on the wrong device mid-step. (The
  // report of an error names the rank.)
  DPUNET_CHECK(backend != "nccl" || context.device().is_cuda(),
               "backend nccl (distributed.backend) needs a GPU, but this rank runs on the CPU; use mpi or auto");
  DPUNET_CHECK(backend != "mpi" || !context.device().is_cuda(),
               "backend mpi (distributed.backend) reduces CPU tensors, but this rank runs on ", context.device().str(),
               "; use nccl or auto, or run.device: cpu");
  const bool want_nccl = backend == "nccl" || (backend == "auto" && context.device().is_cuda());
  if (want_nccl) {
#ifdef DPUNET_WITH_NCCL
    return std::make_shared<NcclCommunicator>(context, options);
#else
    DPUNET_FAIL("backend nccl: this dpunet was built without NCCL (configure with -DDPUNET_WITH_NCCL=ON)");
#endif
  }
  MpiCommunicatorOptions mpi_options;
  static_cast<CommunicatorOptions&>(mpi_options) = options;
  return std::make_shared<MpiCommunicator>(context, mpi_options);
}

}  // namespace

std::shared_ptr<Communicator> make_communicator(const Context& context, const std::string& backend,
                                                CommunicatorOptions options) {
  std::shared_ptr<Communicator> made = make_backend(context, backend, options);
  if (!options.check_collectives) return made;
  return std::make_shared<CheckedCommunicator>(context, std::move(made), options.timeout_hint);
}

}  // namespace dpunet::dist
