// MPI_CHECK: every MPI call goes through it, so a failure names the call, file:line,
// rank and host instead of MPI's default abort-with-a-dump.
#pragma once

#include <mpi.h>

#include <string>

#include "common/error.h"

namespace dpunet::dist::detail {

inline bool mpi_ok(int status) {
  return status == MPI_SUCCESS;
}

inline std::string mpi_describe(int status) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(status, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(status);
  return std::string(text, length);
}

}  // namespace dpunet::dist::detail

#define MPI_CHECK(call) DPUNET_CHECK_CALL(call, ::dpunet::dist::detail::mpi_ok, ::dpunet::dist::detail::mpi_describe)
