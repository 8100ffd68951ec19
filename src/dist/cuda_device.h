// The CUDA calls the context needs, kept out of its header so that a CPU-only LibTorch
// builds the same sources.
#pragma once

#include <string>

namespace dpunet::dist {

// Whether this dpunet was built with LibTorch's CUDA support (a CPU-only LibTorch, or a
// machine without the CUDA toolkit, builds it without).
bool built_with_cuda();

// GPUs this process can use: none when built without CUDA, whatever the machine has.
int usable_gpu_count();

// The name CUDA reports for GPU `index` ("NVIDIA H100 80GB HBM3"); empty without CUDA.
std::string gpu_name(int index);

// Waits for the work queued on GPU `index`'s current stream only, not for side streams
// (NCCL's, the batch copies'): what a phase of the compute stream took. Nothing without CUDA.
void synchronize_current_stream(int index);

// Makes `index` the current GPU of this thread (and of threads LibTorch starts later).
void set_current_cuda_device(int index);

}  // namespace dpunet::dist
