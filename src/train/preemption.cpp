// Signal handlers that only set an async-signal-safe flag.
#include "train/preemption.h"

#include <csignal>

namespace dpunet::train {
namespace {

volatile std::sig_atomic_t received_signal = 0;

void on_signal(int signal) {
  received_signal = signal;
}

}  // namespace

void install_preemption_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

bool preemption_requested() {
  return received_signal != 0;
}

int preemption_signal() {
  return received_signal;
}

}  // namespace dpunet::train
