// The autocast settings of the devices a model runs on, captured so that a recomputation
// in backward (which autocast does not cover) casts exactly as the first forward did.
#pragma once

#include <vector>

#include <ATen/autocast_mode.h>

namespace dpunet::model {

struct AutocastState {
  struct Entry {
    at::DeviceType device;
    bool enabled;
    at::ScalarType dtype;
  };
  std::vector<Entry> entries;

  static AutocastState capture() {
    AutocastState state;
    for (at::DeviceType device : {at::kCPU, at::kCUDA}) {
      state.entries.push_back(
          {device, at::autocast::is_autocast_enabled(device), at::autocast::get_autocast_dtype(device)});
    }
    return state;
  }
  void apply() const {
    for (const Entry& e : entries) {
      at::autocast::set_autocast_enabled(e.device, e.enabled);
      at::autocast::set_autocast_dtype(e.device, e.dtype);
    }
  }

  // Applies a state while alive, then puts back the settings it found.
  class Scope;
};

// Autocast's cache of cast weights is off inside: the cache is per thread, cleared only
// when an outermost autocast region ends, and a recomputation in backward (on CUDA, on
// autograd's device thread) is in no such region: bf16 copies it cached would outlive the
// optimizer's update and be handed, stale, to a later step.
class AutocastState::Scope {
 public:
  explicit Scope(const AutocastState& state)
      : previous_(capture()), cache_was_enabled_(at::autocast::is_autocast_cache_enabled()) {
    at::autocast::set_autocast_cache_enabled(false);
    state.apply();
  }
  ~Scope() {
    previous_.apply();
    at::autocast::set_autocast_cache_enabled(cache_was_enabled_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  AutocastState previous_;
  bool cache_was_enabled_;
};

}  // namespace dpunet::model
