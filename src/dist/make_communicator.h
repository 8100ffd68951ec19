// The communicator that fits the context's device: NCCL on a GPU (when built with it),
// MPI on CPU. `backend` "auto", "nccl" or "mpi" overrides the choice.
#pragma once

#include <memory>
#include <string>

#include "dist/communicator.h"

namespace dpunet::dist {

class Context;

std::shared_ptr<Communicator> make_communicator(const Context& context, const std::string& backend = "auto",
                                                CommunicatorOptions options = {});
// Whether this build has the NCCL backend.
bool nccl_available();

}  // namespace dpunet::dist
