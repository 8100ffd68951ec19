// TensorBoard event files, written and read without TensorFlow or protobuf: TFRecord
// framing (length, masked CRC-32C of the length, data, masked CRC-32C of the data)
// around Event protocol buffers that hold the file version or one step's scalars.
// `tensorboard --logdir runs/` then shows every run's curves side by side.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace dpunet::train {

// CRC-32C (Castagnoli), the checksum TFRecord framing uses.
uint32_t crc32c(const char* data, size_t size);

using Scalars = std::vector<std::pair<std::string, float>>;  // tag -> value

// One framed record: the Event every file starts with, and an Event of one step's scalars.
std::string file_version_record(double wall_time);
std::string scalars_record(int64_t step, double wall_time, const Scalars& values);

struct EventRecord {
  std::string bytes;  // the whole framed record
  int64_t step = -1;  // -1: an Event without a step (the file version)
  std::string tag;    // its first scalar's tag ("val/loss"); empty without scalars
};

// The records of an event file, in order. Reading stops at a record cut short or damaged
// (the last write of a killed process); `complete` says whether every byte was a record.
std::vector<EventRecord> read_event_records(const std::string& bytes, bool* complete = nullptr);
// Whether `tail`, the bytes read_event_records left unread, is the start of one record
// whose write was cut short (nothing lost but that record) rather than damage with
// records after it.
bool cut_short_record(const std::string& tail);

// Appends step scalars to a new events file in `directory` (created when missing), named
// as TensorBoard expects: events.out.tfevents.<seconds>.<host>.<pid>. The file is made at
// the first scalars.
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& directory);
  // Written and flushed at once; a failed write throws naming the file.
  void scalars(int64_t step, const Scalars& values);
  const std::string& path() const { return path_; }

 private:
  void append(const std::string& record);

  std::string path_;
  std::ofstream out_;
};

}  // namespace dpunet::train
