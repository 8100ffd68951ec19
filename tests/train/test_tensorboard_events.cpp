// TensorBoard event files: CRC-32C, record framing, steps read back, torn records.
#include "support/catch.h"

#include <filesystem>

#include "common/atomic_file.h"
#include "support/temp_dir.h"
#include "train/run_history.h"
#include "train/tensorboard_events.h"

using dpunet::train::read_event_records;

TEST_CASE("CRC-32C is the Castagnoli checksum TFRecord framing uses", "[train]") {
  CHECK(dpunet::train::crc32c("123456789", 9) == 0xE3069283u);  // the standard check value
  CHECK(dpunet::train::crc32c("", 0) == 0u);
}

TEST_CASE("a scalar event is the Event protocol buffer TensorBoard reads, byte for byte", "[train]") {
  // Event {wall_time: 2.0, step: 7, summary {value {tag: "a", simple_value: 0.5}}}, by hand.
  const std::string expected(
      "\x09\x00\x00\x00\x00\x00\x00\x00\x40"  // 1: double wall_time
      "\x10\x07"                              // 2: varint step
      "\x2a\x0a"                              // 5: Summary, 10 bytes
      "\x0a\x08"                              //   1: Value, 8 bytes
      "\x0a\x01\x61"                          //     1: tag "a"
      "\x15\x00\x00\x00\x3f",                 //     2: float 0.5
      23);
  const std::string record = dpunet::train::scalars_record(7, 2.0, {{"a", 0.5f}});
  REQUIRE(record.size() == 12 + expected.size() + 4);
  CHECK(record.substr(12, expected.size()) == expected);
  CHECK(record.substr(0, 8) == std::string("\x17\x00\x00\x00\x00\x00\x00\x00", 8));  // the length, 23
}

TEST_CASE("event records frame, read back with their steps, and a torn end is told apart", "[train]") {
  const std::string version = dpunet::train::file_version_record(1.5);
  const std::string first = dpunet::train::scalars_record(7, 2.0, {{"train/loss", 0.25f}, {"train/lr", 1e-3f}});
  const std::string second = dpunet::train::scalars_record(300000000000LL, 3.0, {{"val/mean_dice", 0.9f}});
  bool complete = false;
  auto records = read_event_records(version + first + second, &complete);
  CHECK(complete);
  REQUIRE(records.size() == 3);
  CHECK(records[0].step == -1);
  CHECK(records[1].step == 7);
  CHECK(records[1].bytes == first);
  CHECK(records[2].step == 300000000000LL);
  // A killed write leaves part of a record: the whole ones before it still read.
  records = read_event_records(version + first + second.substr(0, second.size() - 3), &complete);
  CHECK_FALSE(complete);
  CHECK(records.size() == 2);
  std::string damaged = version + first;
  damaged[version.size() + 20] ^= 1;  // a flipped bit inside the second record's data
  records = read_event_records(damaged, &complete);
  CHECK_FALSE(complete);
  CHECK(records.size() == 1);
}

TEST_CASE("a TensorBoard writer starts a new events file with its version event", "[train]") {
  dpunet::test::TempDir dir;
  std::string path;
  {
    dpunet::train::TensorBoardWriter writer(dir / "tb");
    writer.scalars(1, {{"train/loss", 1.0f}});
    writer.scalars(2, {{"train/loss", 0.5f}});
    path = writer.path();
  }
  CHECK(std::filesystem::path(path).filename().string().rfind("events.out.tfevents.", 0) == 0);
  bool complete = false;
  const auto records = read_event_records(dpunet::read_file(path), &complete);
  CHECK(complete);
  REQUIRE(records.size() == 3);
  CHECK(records[0].step == -1);
  CHECK(records[0].tag.empty());
  CHECK(records[2].step == 2);
  CHECK(records[2].tag == "train/loss");
}

TEST_CASE("a TensorBoard writer that logs nothing leaves no events file", "[train]") {
  dpunet::test::TempDir dir;
  std::string path;
  { path = dpunet::train::TensorBoardWriter(dir / "tb").path(); }
  CHECK(std::filesystem::is_directory(dir / "tb"));  // made at once: an unwritable folder fails at the start
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("a resume cuts off a record cut short, but moves damage and what follows it, never dropping it", "[train]") {
  namespace fs = std::filesystem;
  using dpunet::train::scalars_record;
  dpunet::test::TempDir dir;
  const std::string run = dir / "run";
  fs::create_directories(run + "/tensorboard");
  const std::string path = run + "/tensorboard/events.out.tfevents.1.host.1";
  const std::string version = dpunet::train::file_version_record(1.0);
  const std::string one = scalars_record(1, 2.0, {{"train/loss", 1.0f}});
  const std::string two = scalars_record(2, 3.0, {{"train/loss", 0.5f}});
  const std::string three = scalars_record(3, 4.0, {{"train/loss", 0.25f}});
  SECTION("a write cut short") {
    dpunet::write_file_atomically(path, version + one + two.substr(0, two.size() - 5));
    for (const size_t kept : {size_t{3}, size_t{12}, size_t{15}, two.size() - 5}) {
      CHECK(dpunet::train::cut_short_record(two.substr(0, kept)));  // header alone, or part of the data
    }
    const auto history = dpunet::train::set_aside_superseded_history(run, 2, false, "");
    CHECK(history.folder.empty());
    CHECK(history.damaged_event_files == 0);
    CHECK(dpunet::read_file(path) == version + one);
  }
  SECTION("a damaged record with records after it") {
    std::string damaged = two;
    damaged[14] ^= 1;  // inside its data
    CHECK_FALSE(dpunet::train::cut_short_record(damaged + three));
    dpunet::write_file_atomically(path, version + one + damaged + three);
    const auto history = dpunet::train::set_aside_superseded_history(run, 3, false, "");
    REQUIRE_FALSE(history.folder.empty());
    CHECK(history.damaged_event_files == 1);
    CHECK(dpunet::read_file(path) == version + one);
    CHECK(dpunet::read_file(history.folder + "/tensorboard/events.out.tfevents.1.host.1") == version + damaged + three);
    CHECK_THAT(dpunet::train::describe(history), HasSubstr("1 TensorBoard file(s) had a damaged record"));
  }
}

TEST_CASE("a resume removes an unfinished rewrite of an event file but keeps a host's file whose name holds .tmp.",
          "[train]") {
  namespace fs = std::filesystem;
  dpunet::test::TempDir dir;
  const std::string run = dir / "run";
  fs::create_directories(run + "/tensorboard");
  const std::string records = dpunet::train::file_version_record(1.0) +
                              dpunet::train::scalars_record(1, 2.0, {{"train/loss", 1.0f}}) +
                              dpunet::train::scalars_record(2, 3.0, {{"train/loss", 0.5f}});
  const std::string host_file = run + "/tensorboard/events.out.tfevents.1.gpu7.tmp.example.org.29824";
  const std::string original = run + "/tensorboard/events.out.tfevents.1.host.1";
  dpunet::write_file_atomically(host_file, records);
  dpunet::write_file_atomically(original, records);
  dpunet::write_file_atomically(original + ".tmp.4242", "half a rewrite");

  const auto history = dpunet::train::set_aside_superseded_history(run, 1, false, "");
  CHECK_FALSE(fs::exists(original + ".tmp.4242"));
  REQUIRE(fs::exists(host_file));
  CHECK(read_event_records(dpunet::read_file(host_file)).size() == 2);  // step 2 moved aside, not deleted
  CHECK(history.events == 2);
  CHECK(fs::exists(history.folder + "/tensorboard/events.out.tfevents.1.gpu7.tmp.example.org.29824"));
}

TEST_CASE("only NAME.tmp.PID is a temporary of an atomic write", "[common]") {
  using dpunet::atomic_write_target;
  CHECK(atomic_write_target("step-00000040.ckpt.tmp.12345") == "step-00000040.ckpt");
  CHECK(atomic_write_target("latest.tmp.7") == "latest");
  CHECK_FALSE(atomic_write_target("events.out.tfevents.1.gpu7.tmp.example.org.29824"));
  CHECK_FALSE(atomic_write_target("notes.tmp.txt"));
  CHECK_FALSE(atomic_write_target("a.tmp."));
  CHECK_FALSE(atomic_write_target(".tmp.12"));
}

TEST_CASE("an event whose field length runs past its end reads as stepless, without looping", "[train]") {
  const auto masked = [](const std::string& bytes) {
    const uint32_t crc = dpunet::train::crc32c(bytes.data(), bytes.size());
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
  };
  const auto little_endian = [](uint64_t value, int size) {
    std::string out;
    for (int i = 0; i < size; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
    return out;
  };
  // Field 5, length-delimited, of length 2^64 - 11: added to the offset after it (11), it
  // wraps to 0, the field's own start, and a reader that only added would loop for good.
  const std::string data = std::string("\x2a\xf5") + std::string(8, '\xff') + "\x01";
  const std::string length = little_endian(data.size(), 8);
  const std::string record = length + little_endian(masked(length), 4) + data + little_endian(masked(data), 4);
  bool complete = false;
  const auto records = read_event_records(record, &complete);
  CHECK(complete);
  REQUIRE(records.size() == 1);
  CHECK(records[0].step == -1);
}
