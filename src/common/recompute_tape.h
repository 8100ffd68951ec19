// Values a checkpointed block computes in its first forward that the recomputation in
// backward can take instead of computing them again: BatchNorm's batch statistics, whose
// pass over the map is a third of the fused forward's memory traffic, and SyncBatchNorm's
// global statistics, which would otherwise cost a collective inside backward. The checkpoint
// function makes a tape active on the thread running the block, recording on the first
// forward and replaying on the recomputation; a layer appends one entry per call (empty
// when it has nothing to reuse), so the entries stay in step even when a call takes a
// different path the second time.
#pragma once

#include <cstddef>
#include <vector>

#include <ATen/core/Tensor.h>

namespace dpunet {

class RecomputeTape {
 public:
  // The tape of the checkpointed block running on this thread, or nullptr.
  static RecomputeTape* active();

  bool replaying() const { return replaying_; }
  // First forward: appends this call's values.
  void record(std::vector<at::Tensor> values);
  // Recomputation: the values the matching call recorded; empty once the tape is spent.
  std::vector<at::Tensor> replay_next();
  size_t size() const { return entries_.size(); }

  // Makes `tape` active on this thread while alive: recording from empty, or replaying
  // from the start. Restores the tape that was active before (nested checkpoints).
  class Scope {
   public:
    Scope(RecomputeTape& tape, bool replay);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    RecomputeTape* previous_;
  };

  // No tape active on this thread while alive: for a checkpointed block that runs
  // plainly inside another's first forward (grad mode is off there), whose layers must
  // not record into the outer block's tape, since in the outer recomputation the inner
  // block records into a tape of its own.
  class Suspend {
   public:
    Suspend();
    ~Suspend();
    Suspend(const Suspend&) = delete;
    Suspend& operator=(const Suspend&) = delete;

   private:
    RecomputeTape* previous_;
  };

 private:
  std::vector<std::vector<at::Tensor>> entries_;
  size_t next_ = 0;
  bool replaying_ = false;
};

}  // namespace dpunet
