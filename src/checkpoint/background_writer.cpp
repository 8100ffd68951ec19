// BackgroundWriter over std::async: one future, waited on before the next job starts.
#include "checkpoint/background_writer.h"

#include <exception>
#include <iostream>

namespace dpunet::checkpoint {

BackgroundWriter::~BackgroundWriter() {
  try {
    wait();
  } catch (const std::exception& e) {
    std::cerr << "dpunet: error: a checkpoint write failed: " << e.what() << std::endl;
  }
}

void BackgroundWriter::submit(std::function<void()> job) {
  wait();
  in_flight_ = std::async(std::launch::async, std::move(job));
}

void BackgroundWriter::wait() {
  if (!in_flight_.valid()) return;
  std::future<void> done = std::move(in_flight_);
  done.get();
}

}  // namespace dpunet::checkpoint
