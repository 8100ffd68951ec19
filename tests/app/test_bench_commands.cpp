// `dpunet bench allreduce | ddp | model | data | predict` run to the end on small sizes,
// and the figures each reports agree with one another: bus bandwidth from bytes and
// time, ratios from the times they divide, the tiles an image takes. How fast they are is
// for docs/benchmarks.md, not for a test.
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include "support/catch.h"

#include "support/run_command.h"
#include "support/temp_dir.h"

using dpunet::test::run_command;
using nlohmann::json;

namespace {

// The JSON a bench command prints on stdout; its stderr goes to a file, shown on failure.
json bench(const std::string& command) {
  dpunet::test::TempDir dir;
  const std::string errors = dir / "stderr.txt";
  const auto result = run_command("OMP_NUM_THREADS=1 timeout 240 " + command + " 2>" + errors);
  INFO(command << "\n" << result.output << "\nstderr: " << run_command("cat " + errors).output);
  REQUIRE(result.exit_code == 0);
  return json::parse(result.output);
}

double number(const json& j, const char* key) {
  INFO(key);
  REQUIRE(j.contains(key));
  return j[key].get<double>();
}

// nccl-tests' bus bandwidth of an all-reduce, in GB/s.
double busbw_gbps(double bytes, double microseconds, int world) {
  return bytes / (microseconds * 1e3) * 2.0 * (world - 1) / world;
}

}  // namespace

TEST_CASE("bench allreduce times every size on two ranks, with its bus bandwidth", "[app][e2e]") {
  const json j = bench(DPUNET_MPI_LAUNCHER
                       " 2 " DPUNET_BINARY
                       " bench allreduce --device cpu --backend mpi --min-bytes 1024 --max-bytes 16384 --factor 4 "
                       "--warmup 1");
  CHECK(j["benchmark"] == "allreduce");
  CHECK(j["world_size"] == 2);
  CHECK(j["backend"] == "mpi");
  REQUIRE(j["results"].size() == 3);
  int64_t bytes = 1024;
  for (const json& row : j["results"]) {
    INFO(row.dump());
    CHECK(row["bytes"] == bytes);
    const double backend_us = number(row, "backend_us"), mpi_us = number(row, "mpi_us");
    REQUIRE(backend_us > 0);
    REQUIRE(mpi_us > 0);
    CHECK(number(row, "backend_busbw_gbps") == Approx(busbw_gbps(bytes, backend_us, 2)).epsilon(1e-9));
    CHECK(number(row, "mpi_busbw_gbps") == Approx(busbw_gbps(bytes, mpi_us, 2)).epsilon(1e-9));
    CHECK(number(row, "time_ratio") == Approx(backend_us / mpi_us).epsilon(1e-9));
    bytes *= 4;
  }
  // The next size past --max-bytes ends the sizes before it is computed: a factor that
  // would overflow it measures the one size.
  const json one = bench(DPUNET_BINARY
                         " bench allreduce --device cpu --backend mpi --min-bytes 4 --max-bytes 9223372036854775807 "
                         "--factor 4611686018427387904 --warmup 0");
  REQUIRE(one["results"].size() == 1);
  CHECK(one["results"][0]["bytes"] == 4);
}

TEST_CASE("bench ddp compares the reducer's backward with backward alone and a flat all-reduce", "[app][e2e]") {
  const json j = bench(DPUNET_MPI_LAUNCHER " 2 " DPUNET_BINARY
                                           " bench ddp --device cpu --backend mpi --size 32 --warmup 0 --repeats 2");
  CHECK(j["benchmark"] == "ddp");
  CHECK(j["world_size"] == 2);
  // The reference U-Net's gradients (3 channels in, 2 classes), every one in a bucket.
  const double parameters = number(j, "parameters");
  CHECK(parameters == 31037698);
  CHECK(number(j, "gradient_bytes") == 4 * parameters);
  double bucketed = 0;
  for (const json& n : j["bucket_numels"]) bucketed += n.get<double>();
  CHECK(bucketed == parameters);
  for (const char* key : {"backward_ms", "backward_reducer_ms", "backward_flat_allreduce_ms", "flat_allreduce_ms",
                          "raw_mpi_allreduce_ms", "reducer_allreduce_ms", "checked_allreduce_ms"}) {
    CHECK(number(j, key) > 0);
  }
  CHECK(number(j, "checks_ms_per_collective") ==
        Approx((number(j, "checked_allreduce_ms") - number(j, "reducer_allreduce_ms")) / j["bucket_numels"].size()));
  CHECK(number(j, "exposed_comm_ratio") == Approx(number(j, "exposed_comm_ms") / number(j, "flat_allreduce_ms")));
  CHECK(number(j, "busbw_ratio") == Approx(number(j, "reducer_busbw_gbps") / number(j, "raw_mpi_busbw_gbps")));
  CHECK(number(j, "raw_mpi_busbw_gbps") ==
        Approx(busbw_gbps(number(j, "gradient_bytes"), 1e3 * number(j, "raw_mpi_allreduce_ms"), 2)));
}

TEST_CASE("bench ddp refuses a size the model cannot take before any rank starts MPI", "[app]") {
  for (const auto& [size, expected] : std::vector<std::pair<std::string, std::string>>{
           {"12", "bench ddp --size 12"},
           {"16", "bench ddp --size 16 --batch 1: the depth-4 U-Net's bottom map is 1x1"}}) {
    const auto refused = run_command(DPUNET_BINARY " bench ddp --device cpu --backend mpi --size " + size + " 2>&1");
    INFO(refused.output);
    CHECK(refused.exit_code != 0);
    CHECK_THAT(refused.output, HasSubstr(expected) && !HasSubstr("MPI_ABORT"));
  }
}

TEST_CASE("bench options out of range are refused by name, as a command line that does not parse", "[app]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bench model --depth 0", "--depth: must be a whole number of at least 1, got 0"},
      {"bench model --threads -2", "--threads: must be a whole number of at least 1, got -2"},
      {"bench model --n-classes 0", "--n-classes: must be a whole number of at least 1, got 0"},
      {"bench model --variant fast", "--variant: fast not in {both,plain,checkpointed}"},
      {"bench train --base-channels 0", "--base-channels: must be a whole number of at least 1, got 0"},
      {"bench predict --base-channels -1", "--base-channels: must be a whole number of at least 1, got -1"},
      {"bench allreduce --factor 1", "--factor: must be a whole number of at least 2, got 1"},
      {"bench allreduce --min-bytes 0", "--min-bytes: must be a whole number of at least 4, got 0"}};
  for (const auto& [arguments, message] : cases) {
    const auto refused = run_command(DPUNET_BINARY " " + arguments + " 2>&1");
    INFO(arguments << ": " << refused.output);
    CHECK(refused.exit_code == 105);
    CHECK_THAT(refused.output, HasSubstr(message));
  }
}

TEST_CASE("bench model times the plain and the checkpointed model and divides their figures", "[app][e2e]") {
  const json j = bench(DPUNET_BINARY " bench model --size 32 --base-channels 8 --depth 2 --warmup 1 --repeats 1");
  CHECK(j["benchmark"] == "model");
  const json &plain = j["plain"], &checkpointed = j["checkpointed"];
  CHECK(plain["checkpointing"] == false);
  CHECK(checkpointed["checkpointing"] == true);
  CHECK(j["checkpointed_blocks"] == "balanced");
  for (const json* variant : {&plain, &checkpointed}) {
    CHECK(number(*variant, "forward_ms") > 0);
    CHECK(number(*variant, "forward_backward_ms") > 0);
    CHECK(number(*variant, "peak_bytes_above_baseline") > 0);
  }
  CHECK(number(j, "time_ratio") ==
        Approx(number(checkpointed, "forward_backward_ms") / number(plain, "forward_backward_ms")));
  CHECK(number(j, "memory_ratio") ==
        Approx(number(checkpointed, "peak_bytes_above_baseline") / number(plain, "peak_bytes_above_baseline")));
  CHECK(j["split_skip_conv"] == false);
}

TEST_CASE("bench model's checkpointed child takes the selection it was given", "[app][e2e]") {
  const std::string command = DPUNET_BINARY " bench model --size 32 --base-channels 8 --depth 2 --warmup 1 --repeats 1";
  json j = bench(command + " --policy min_memory");
  CHECK(j["checkpointed_blocks"] == "min_memory");
  CHECK(j["split_skip_conv"] == true);
  CHECK(j["plain"]["split_skip_conv"] == false);
  j = bench(command + " --policy min_memory --split-skip-conv 0 --recompute-norm 0");
  CHECK(j["split_skip_conv"] == false);
  CHECK(j["recompute_norm"] == false);
}

TEST_CASE("bench model measures the unpadded model on a size that tiles, and names those near one that does not",
          "[app][e2e]") {
  // Same padding refuses a size its depth halves to nothing with the same message.
  const auto too_small = run_command(DPUNET_BINARY " bench model --base-channels 8 --depth 2 --size 3 2>&1");
  CHECK(too_small.exit_code != 0);
  CHECK_THAT(too_small.output, HasSubstr("--size 3 does not suit") && HasSubstr("nearest valid sizes: 4"));

  const std::string command = DPUNET_BINARY
      " bench model --base-channels 8 --depth 2 --warmup 1 --repeats 1 --padding valid --policy min_memory";
  const json j = bench(command + " --size 100");
  CHECK(j["model"]["padding"] == "valid");
  CHECK(j["split_skip_conv"] == true);
  CHECK(number(j["checkpointed"], "peak_bytes_above_baseline") > 0);
  const auto refused = run_command(command + " --size 101 2>&1");
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.output, HasSubstr("--size 101") && HasSubstr("100 or 104"));
}

TEST_CASE("bench data reads every augmentation and compression variant", "[app][e2e]") {
  const json j = bench(DPUNET_BINARY " bench data --size 64 --samples 8 --batches 16");
  CHECK(j["benchmark"] == "data");
  CHECK(j["batches_timed"] == 16);
  std::set<std::string> variants;
  for (const json& row : j["results"]) {
    INFO(row.dump());
    CHECK(number(row, "samples_per_s") > 0);
    variants.insert(row["augmentation"].get<std::string>() + "/" + row["compression"].get<std::string>());
  }
  // Each augmentation, raw and compressed, once.
  CHECK(variants.size() == j["results"].size());
  std::set<std::string> expected;
  for (const std::string augmentation : {"none", "flip_rot90", "affine", "elastic", "all", "blur_low_resolution"}) {
    for (const std::string compression : {"none", "gzip4"}) expected.insert(augmentation + "/" + compression);
  }
  CHECK(variants == expected);
  // A --dir kept from an earlier run may hold more shards by the name: only the ones just
  // written are read (two shards of 8 samples, then one of 1).
  dpunet::test::TempDir dir;
  CHECK(bench(DPUNET_BINARY " bench data --size 32 --samples 8 --batches 16 --dir " + dir.path())["samples"] == 8);
  CHECK(bench(DPUNET_BINARY " bench data --size 32 --samples 1 --batch 1 --batches 16 --dir " +
              dir.path())["samples"] == 1);
}

TEST_CASE("bench predict tiles the image as predict does and reports the rates of its time", "[app][e2e]") {
  const json j = bench(DPUNET_BINARY " bench predict --size 64 --tile 32 --overlap 0.5 --base-channels 8 --threads 1");
  CHECK(j["benchmark"] == "predict");
  CHECK(j["tiles"] == 9);  // origins 0, 16 and 32 along each side
  const double seconds = number(j, "seconds");
  REQUIRE(seconds > 0);
  CHECK(number(j, "images_per_s") == Approx(1 / seconds));
  CHECK(number(j, "tiles_per_s") == Approx(9 / seconds));
  CHECK(number(j, "peak_memory_mb") >= 0);
  // An overlap outside [0, 0.9], NaN too, is refused before anything runs.
  for (const std::string overlap : {"nan", "0.95", "-0.1"}) {
    const auto refused =
        dpunet::test::run_command(DPUNET_BINARY " bench predict --size 64 --tile 32 --overlap " + overlap + " 2>&1");
    INFO(refused.output);
    CHECK(refused.exit_code != 0);
    CHECK_THAT(refused.output, HasSubstr("must be a number from 0 to 0.9, got " + overlap));
  }
}
