// CUDA_CHECK and NCCL_CHECK, on the same generic check as MPI_CHECK: the failing call,
// file:line, rank and host. Only for code compiled with DPUNET_WITH_NCCL.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "common/error.h"

namespace dpunet::dist::detail {

inline bool cuda_ok(cudaError_t status) {
  return status == cudaSuccess;
}
inline const char* cuda_describe(cudaError_t status) {
  return cudaGetErrorString(status);
}
// ncclInProgress is success for non-blocking communicators.
inline bool nccl_ok(ncclResult_t status) {
  return status == ncclSuccess || status == ncclInProgress;
}
inline const char* nccl_describe(ncclResult_t status) {
  return ncclGetErrorString(status);
}

}  // namespace dpunet::dist::detail

#define CUDA_CHECK(call) DPUNET_CHECK_CALL(call, ::dpunet::dist::detail::cuda_ok, ::dpunet::dist::detail::cuda_describe)
#define NCCL_CHECK(call) DPUNET_CHECK_CALL(call, ::dpunet::dist::detail::nccl_ok, ::dpunet::dist::detail::nccl_describe)
