// Event protocol buffers by hand: Event {1: double wall_time, 2: int64 step,
// 3: string file_version, 5: Summary summary}, Summary {1: repeated Value value},
// Value {1: string tag, 2: float simple_value}.
#include "train/tensorboard_events.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "common/error.h"
#include "common/process_label.h"

namespace dpunet::train {
namespace {

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

uint32_t masked_crc(const char* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

// Protocol-buffer wire format: keys are (field << 3) | wire type.
void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}
template <typename T>
void put_fixed(std::string& out, T value) {  // little-endian, as the hosts dpunet runs on
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_varint(out, (static_cast<uint64_t>(field) << 3) | 2);
  put_varint(out, bytes.size());
  out += bytes;
}

std::string event_head(double wall_time) {
  std::string event;
  put_varint(event, (1 << 3) | 1);
  put_fixed(event, wall_time);
  return event;
}

std::string frame(const std::string& data) {
  std::string record;
  put_fixed<uint64_t>(record, data.size());
  put_fixed<uint32_t>(record, masked_crc(record.data(), 8));
  record += data;
  put_fixed<uint32_t>(record, masked_crc(data.data(), data.size()));
  return record;
}

bool get_varint(std::string_view in, size_t& at, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && at < in.size(); shift += 7) {
    const auto byte = static_cast<unsigned char>(in[at++]);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// One field of a protocol buffer message: its number, and its varint value (wire type 0)
// or its bytes (wire type 2); fixed-width fields are skipped.
struct Field {
  uint64_t number = 0;
  bool length_delimited = false;  // bytes (wire type 2), else a varint value
  uint64_t value = 0;
  std::string_view bytes;
};

// Calls visit(field) for each field of `message` until it returns false. Stops at a
// malformed field: lengths are checked against what is left, as a crafted one near 2^64
// would wrap the offset.
template <typename Visit>
void for_each_field(std::string_view message, Visit&& visit) {
  size_t at = 0;
  while (at < message.size()) {
    uint64_t key = 0, length = 0;
    if (!get_varint(message, at, key)) return;
    Field field{key >> 3, (key & 7) == 2, 0, {}};
    switch (key & 7) {
      case 0:
        if (!get_varint(message, at, field.value)) return;
        if (!visit(field)) return;
        continue;
      case 1: length = 8; break;
      case 2:
        if (!get_varint(message, at, length)) return;
        break;
      case 5: length = 4; break;
      default: return;
    }
    if (length > message.size() - at) return;
    if (field.length_delimited) {
      field.bytes = message.substr(at, length);
      if (!visit(field)) return;
    }
    at += length;
  }
}

// The step field of an Event, or -1 when it has none.
int64_t event_step(const std::string& event) {
  int64_t step = -1;
  for_each_field(event, [&](const Field& f) {
    if (f.number != 2 || f.length_delimited) return true;
    step = static_cast<int64_t>(f.value);
    return false;
  });
  return step;
}

// The first length-delimited field `number` of `message`, or empty.
std::string_view bytes_field(std::string_view message, uint64_t number) {
  std::string_view found;
  for_each_field(message, [&](const Field& f) {
    if (f.number != number || !f.length_delimited) return true;
    found = f.bytes;
    return false;
  });
  return found;
}

// The tag of an Event's first scalar (Event.summary -> Summary.value -> Value.tag), or
// empty for an Event without one.
std::string event_tag(const std::string& event) {
  return std::string(bytes_field(bytes_field(bytes_field(event, 5), 1), 1));
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const char* data, size_t size) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < size; ++i) crc = kCrc32cTable[(crc ^ static_cast<unsigned char>(data[i])) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

std::string file_version_record(double wall_time) {
  std::string event = event_head(wall_time);
  put_bytes(event, 3, "brain.Event:2");
  return frame(event);
}

std::string scalars_record(int64_t step, double wall_time, const Scalars& values) {
  std::string summary;
  for (const auto& [tag, value] : values) {
    std::string item;
    put_bytes(item, 1, tag);
    put_varint(item, (2 << 3) | 5);
    put_fixed(item, value);
    put_bytes(summary, 1, item);
  }
  std::string event = event_head(wall_time);
  put_varint(event, (2 << 3) | 0);
  put_varint(event, static_cast<uint64_t>(step));
  put_bytes(event, 5, summary);
  return frame(event);
}

std::vector<EventRecord> read_event_records(const std::string& bytes, bool* complete) {
  std::vector<EventRecord> records;
  size_t at = 0;
  while (at + 12 <= bytes.size()) {
    uint64_t length = 0;
    uint32_t length_crc = 0, data_crc = 0;
    std::memcpy(&length, bytes.data() + at, 8);
    std::memcpy(&length_crc, bytes.data() + at + 8, 4);
    if (length_crc != masked_crc(bytes.data() + at, 8) || length > bytes.size() - at - 12 ||
        bytes.size() - at - 12 - length < 4) {
      break;
    }
    const std::string data = bytes.substr(at + 12, length);
    std::memcpy(&data_crc, bytes.data() + at + 12 + length, 4);
    if (data_crc != masked_crc(data.data(), data.size())) break;
    records.push_back({bytes.substr(at, 12 + length + 4), event_step(data), event_tag(data)});
    at += 12 + length + 4;
  }
  if (complete != nullptr) *complete = at == bytes.size();
  return records;
}

bool cut_short_record(const std::string& tail) {
  if (tail.size() < 12) return true;
  uint64_t length = 0;
  uint32_t length_crc = 0;
  std::memcpy(&length, tail.data(), 8);
  std::memcpy(&length_crc, tail.data() + 8, 4);
  // Appends are in order: a killed write leaves a true length with too few bytes after it.
  return length_crc == masked_crc(tail.data(), 8) && (tail.size() < 16 || length > tail.size() - 16);
}

TensorBoardWriter::TensorBoardWriter(const std::string& directory) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  DPUNET_CHECK(!ec, "cannot create ", directory, ": ", ec.message());
  const double now = now_seconds();
  path_ = directory + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(now)) + "." + host_name() + "." +
          std::to_string(getpid());
}

void TensorBoardWriter::scalars(int64_t step, const Scalars& values) {
  // Opened at the first scalars: a run that logs nothing (a resume of a finished run)
  // leaves no file holding only the version event.
  if (!out_.is_open()) {
    std::error_code ec;  // the folder again: it may have been removed since the start
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
    out_.open(path_, std::ios::binary | std::ios::app);
    DPUNET_CHECK(out_, "cannot write ", path_, ": ", std::strerror(errno));
    append(file_version_record(now_seconds()));
  }
  append(scalars_record(step, now_seconds(), values));
}

void TensorBoardWriter::append(const std::string& record) {
  errno = 0;
  out_.write(record.data(), static_cast<std::streamsize>(record.size()));
  out_.flush();
  DPUNET_CHECK(out_, path_, ": cannot append a TensorBoard event (", errno != 0 ? std::strerror(errno) : "write failed",
               "; is the disk full?)");
}

}  // namespace dpunet::train
