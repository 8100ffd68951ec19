// TensorBoard event files: CRC-32C, record framing, steps read back, torn records.
#include "support/catch.h"

#include <filesystem>

#include "common/atomic_file.h"
#include "support/temp_dir.h"
#include "train/tensorboard_events.h"

using dpunet::train::read_event_records;

TEST_CASE("CRC-32C is the Castagnoli checksum TFRecord framing uses", "[train]") {
  CHECK(dpunet::train::crc32c("123456789", 9) == 0xE3069283u);  // the standard check value
  CHECK(dpunet::train::crc32c("", 0) == 0u);
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
  CHECK(records[2].step == 2);
}
