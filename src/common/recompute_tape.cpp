// RecomputeTape: one active tape per thread, swapped by scopes.
#include "common/recompute_tape.h"

namespace dpunet {
namespace {
thread_local RecomputeTape* active_tape = nullptr;
}  // namespace

RecomputeTape* RecomputeTape::active() {
  return active_tape;
}

void RecomputeTape::record(std::vector<at::Tensor> values) {
  entries_.push_back(std::move(values));
}

std::vector<at::Tensor> RecomputeTape::replay_next() {
  if (next_ >= entries_.size()) return {};
  return entries_[next_++];
}

RecomputeTape::Scope::Scope(RecomputeTape& tape, bool replay) : previous_(active_tape) {
  tape.replaying_ = replay;
  tape.next_ = 0;
  if (!replay) tape.entries_.clear();
  active_tape = &tape;
}

RecomputeTape::Scope::~Scope() {
  active_tape = previous_;
}

RecomputeTape::Suspend::Suspend() : previous_(active_tape) {
  active_tape = nullptr;
}

RecomputeTape::Suspend::~Suspend() {
  active_tape = previous_;
}

}  // namespace dpunet
