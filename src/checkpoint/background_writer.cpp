// BackgroundWriter over std::async: one future, waited on before the next job starts.
#include "checkpoint/background_writer.h"

#include <chrono>
#include <iostream>

namespace dpunet::checkpoint {

BackgroundWriter::~BackgroundWriter() {
  try {
    wait();
  } catch (const std::exception& e) {
    std::cerr << "dpunet: error: a checkpoint write failed: " << e.what() << std::endl;
  }
}

std::exception_ptr BackgroundWriter::finish() {
  if (!in_flight_.valid()) return nullptr;
  std::future<void> done = std::move(in_flight_);
  try {
    done.get();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

void BackgroundWriter::submit(std::function<void()> job) {
  const std::exception_ptr previous = finish();
  try {
    in_flight_ = std::async(std::launch::async, std::move(job));
  } catch (...) {
    // No thread for this job (the system's limit): the earlier write's failure, if any,
    // is said first, not lost.
    if (previous) std::rethrow_exception(previous);
    throw;
  }
  if (previous) std::rethrow_exception(previous);
}

void BackgroundWriter::wait() {
  if (const std::exception_ptr failure = finish()) std::rethrow_exception(failure);
}

bool BackgroundWriter::idle_within(std::chrono::milliseconds limit) const {
  return !in_flight_.valid() || in_flight_.wait_for(limit) == std::future_status::ready;
}

void BackgroundWriter::poll() {
  if (in_flight_.valid() && in_flight_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) wait();
}

}  // namespace dpunet::checkpoint
