// DPUNET_HOST_DEVICE marks a function that the CUDA kernels and host code (the kernels'
// host references, tested on the CPU) both call.
#pragma once

#ifdef __CUDACC__
#define DPUNET_HOST_DEVICE __host__ __device__
#else
#define DPUNET_HOST_DEVICE
#endif
