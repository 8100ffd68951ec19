// `dpunet train`: the loop that ties model, distributed core, data pipeline and
// checkpoints together. Every rank runs it; rank 0 logs and writes checkpoints.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.h"

namespace dpunet::dist {
class Context;
}

namespace dpunet::train {

struct TrainOptions {
  std::string resume = "none";  // none | auto (newest valid checkpoint, else fresh) | a checkpoint path
  // > 0: checkpoint and stop once this many steps are done, e.g. to split a run over
  // several allocations; --resume continues it exactly.
  int64_t stop_at_step = 0;
  // A safetensors file (dpunet export or PyTorch) to start from; ignored when resuming.
  std::string init_weights;
};

// Trains as `config` says; returns the process exit code: 0 when the run (or the
// requested part) is done, kPreemptedExitCode (preemption.h) when a signal stopped it
// after checkpointing.
int run_training(const config::Config& config, dist::Context& context, const TrainOptions& options);

}  // namespace dpunet::train
