// KernelUsage: a thread-local recorder pointer.
#include "model/kernel_usage.h"

namespace dpunet::model {
namespace {
thread_local KernelUsage* active_usage = nullptr;
}  // namespace

KernelUsage* KernelUsage::active() {
  return active_usage;
}

void KernelUsage::note(Count KernelUsage::*count, bool ours) {
  if (active_usage == nullptr) return;
  Count& c = active_usage->*count;
  (ours ? c.ours : c.aten) += 1;
}

KernelUsage::Scope::Scope(KernelUsage& usage) : previous_(active_usage) {
  active_usage = &usage;
}

KernelUsage::Scope::~Scope() {
  active_usage = previous_;
}

}  // namespace dpunet::model
