// Signal handlers that only set an async-signal-safe flag.
#include "train/preemption.h"

#include <unistd.h>

#include <csignal>

namespace dpunet::train {
namespace {

volatile std::sig_atomic_t received_signal = 0;
volatile std::sig_atomic_t interrupted = 0;  // a Ctrl-C arrived: its handler is spent

void on_signal(int signal) {
  received_signal = signal;
}

// Ctrl-C: the first stops the run like SIGTERM, at the next step with a checkpoint; the
// handler then resets itself (SA_RESETHAND), so a second one ends the process at once.
void on_interrupt(int signal) {
  received_signal = signal;
  interrupted = 1;
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
  // A reader of the console output that went away (`| head`, a tee ended by the same
  // Ctrl-C) must not end the run before its checkpoint: writes to the closed pipe fail
  // instead, and the run directory's metrics and events keep the record.
  signal(SIGPIPE, SIG_IGN);
  // Not re-armed once it has fired: the second Ctrl-C must still end the process. Nor
  // installed where SIGINT is ignored: a job a script started in the background is not
  // the terminal's to stop.
  struct sigaction previous {};
  sigaction(SIGINT, nullptr, &previous);
  if (interrupted == 0 && previous.sa_handler != SIG_IGN) {
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
