// Signal handlers that only set an async-signal-safe flag.
#include "train/preemption.h"

#include <unistd.h>

#include <csignal>

namespace dpunet::train {
namespace {

volatile std::sig_atomic_t received_signal = 0;

void on_signal(int signal) {
  received_signal = signal;
}

// Ctrl-C: the first stops the run like SIGTERM, at the next step with a checkpoint; the
// handler then resets itself (SA_RESETHAND), so a second one ends the process at once.
void on_interrupt(int signal) {
  received_signal = signal;
  static const char kMessage[] =
      "\ndpunet: interrupted: stopping after this step with a checkpoint (Ctrl-C again to quit without one)\n";
  (void)!::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
}

}  // namespace

void install_preemption_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
  // Not re-armed once it has fired: the second Ctrl-C must still end the process.
  if (received_signal != SIGINT) {
    struct sigaction interrupt {};
    interrupt.sa_handler = on_interrupt;
    sigemptyset(&interrupt.sa_mask);
    interrupt.sa_flags = SA_RESTART | SA_RESETHAND;
    sigaction(SIGINT, &interrupt, nullptr);
  }
}

bool preemption_requested() {
  return received_signal != 0;
}

int preemption_signal() {
  return received_signal;
}

}  // namespace dpunet::train
