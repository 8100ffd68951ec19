// The one CUDA call the context needs, kept out of its header so that a CPU-only LibTorch
// builds the same sources.
#pragma once

namespace dpunet::dist {

// Makes `index` the current GPU of this thread (and of threads LibTorch starts later).
void set_current_cuda_device(int index);

}  // namespace dpunet::dist
