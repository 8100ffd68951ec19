// Counts which kernels the U-Net's layers chose, dpunet's own or ATen's, on the thread
// that made a recorder active: what `bench train` reports, so that a figure whose maps
// silently fell back to ATen's kernels shows it. Nothing is counted while no recorder is
// active, which is always, outside that probe.
#pragma once

#include <cstdint>

namespace dpunet::model {

struct KernelUsage {
  struct Count {
    int64_t ours = 0, aten = 0;
  };
  Count norm_relu;  // BatchNorm+ReLU: fused kernels or ATen's BatchNorm then ReLU
  Count max_pool;   // pooling without indices or ATen's
  Count concat;     // the concatenation's split backward or ATen's cat (when a backward follows)
  // BatchNorm+ReLU outputs asked for a gradient only (model/output_use.h: a recomputed
  // checkpointed block's): left unwritten by the fused kernels, or written by ATen's path.
  Count gradient_only_output;

  // The recorder active on this thread, or nullptr.
  static KernelUsage* active();
  // Adds one choice to `count` of the active recorder, if any.
  static void note(Count KernelUsage::*count, bool ours);

  // Makes `usage` the active recorder on this thread while alive.
  class Scope {
   public:
    explicit Scope(KernelUsage& usage);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    KernelUsage* previous_;
  };
};

}  // namespace dpunet::model
