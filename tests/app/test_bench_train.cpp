// `dpunet bench train` end to end on a small model: its JSON, and how often the model's
// layers took dpunet's own kernels (never on the CPU; always on a GPU in bf16 NHWC).
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>
#include "support/catch.h"

#include "support/own_kernels.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

using dpunet::test::run_command;

namespace {

const char* const kKernels[] = {"fused_norm_relu", "max_pool", "concat_backward"};

// The JSON on stdout; stderr (warnings of the libraries) goes to a file, shown on failure.
nlohmann::json bench_train(const std::string& options, std::string* errors_out = nullptr) {
  dpunet::test::TempDir dir;
  const std::string errors = dir / "stderr.txt";
  const auto result = run_command(DPUNET_BINARY
                                  " bench train --size 64 --batch 2 --steps 1 --warmup 1 "
                                  "--base-channels 8 --depth 2 " +
                                  options + " 2>" + errors);
  std::ifstream in(errors);
  std::stringstream stderr_text;
  stderr_text << in.rdbuf();
  INFO(result.output << stderr_text.str());
  REQUIRE(result.exit_code == 0);
  if (errors_out != nullptr) *errors_out = stderr_text.str();
  return nlohmann::json::parse(result.output);
}

}  // namespace

TEST_CASE("bench train reports its step, and that on the CPU every layer takes ATen's kernels", "[app]") {
  std::string errors;
  const nlohmann::json out = bench_train("--device cpu --checkpointing off", &errors);
  CHECK(out["benchmark"] == "train");
  REQUIRE(out["results"].size() == 1);
  CHECK(out["results"][0]["step_ms"].get<double>() > 0);
  CHECK(out["checkpoint_policy"] == "none");  // no checkpointed step, so no policy
  // Each row is in the log as soon as it is measured, for a run a time limit stops.
  const std::string said = "bench train: row ";
  const size_t at = errors.find(said);
  REQUIRE(at != std::string::npos);
  const auto logged = nlohmann::json::parse(errors.substr(at + said.size(), errors.find('\n', at) - at - said.size()));
  CHECK(logged["step_ms"] == out["results"][0]["step_ms"]);
  for (const char* kernel : kKernels) {
    INFO(kernel << ": " << out["kernels_applied"][kernel].dump());
    CHECK(out["kernels_applied"][kernel]["dpunet"] == 0);
    CHECK(out["kernels_applied"][kernel]["aten"].get<int>() > 0);
  }
}

TEST_CASE("bench train measures a SyncBatchNorm step", "[app]") {
  const nlohmann::json out = bench_train("--device cpu --checkpointing off --norm sync_batch");
  CHECK(out["norm"] == "sync_batch");
  REQUIRE(out["results"].size() == 1);
  CHECK(out["results"][0]["step_ms"].get<double>() > 0);
}

TEST_CASE("bench train counts each variant's kernels: split skip convolutions concatenate nothing", "[app]") {
  const nlohmann::json out = bench_train("--device cpu --checkpointing both --policy min_memory");
  REQUIRE(out["results"].size() == 2);
  const nlohmann::json& plain = out["results"][0];
  const nlohmann::json& min_memory = out["results"][1];
  REQUIRE(min_memory["split_skip_conv"] == true);
  INFO("plain " << plain["kernels_applied"].dump() << ", min_memory " << min_memory["kernels_applied"].dump());
  CHECK(plain["kernels_applied"] == out["kernels_applied"]);
  CHECK(plain["kernels_applied"]["concat_backward"]["aten"].get<int>() > 0);
  CHECK(min_memory["kernels_applied"]["concat_backward"] == nlohmann::json{{"dpunet", 0}, {"aten", 0}});
  CHECK(min_memory["kernels_applied"]["fused_norm_relu"] == plain["kernels_applied"]["fused_norm_relu"]);
}

TEST_CASE("bench train names the peak its MFU is against, and none on a CPU without one", "[app]") {
  nlohmann::json out = bench_train("--device cpu --checkpointing off");
  CHECK(out["gpu_name"] == "");
  CHECK(out["peak_tflops"].is_null());
  CHECK_FALSE(out["results"][0].contains("mfu"));
  out = bench_train("--device cpu --checkpointing off --peak-tflops 2");
  CHECK(out["peak_tflops"] == 2.0);
  CHECK(out["peak_source"] == "--peak-tflops");
  const nlohmann::json& row = out["results"][0];
  CHECK(row["mfu"].get<double>() == Approx(row["achieved_tflops_per_rank"].get<double>() / 2.0));
}

TEST_CASE("bench train feeds the step through the training loader with --data and measures its wait", "[app]") {
  dpunet::test::TempDir dir;
  const auto made = run_command(DPUNET_BINARY " data synth --out " + dir / "data" +
                                " --samples 8 --shards 2 --val-samples 0 --size 48 --channels 2 --classes 2 2>&1");
  REQUIRE(made.exit_code == 0);
  // 64 px patches of 48 px samples (mirror-padded, as training pads them), each variant
  // with its own loader.
  const nlohmann::json out =
      bench_train("--device cpu --checkpointing both --workers 1 --data '" + dir / "data/train-*.h5'");
  CHECK_THAT(out["data"].get<std::string>(), Catch::Matchers::StartsWith("loader: ") &&
                                                 HasSubstr("8 samples of 48x48x2") && HasSubstr("1 workers per rank"));
  // The model takes the shards' channels and classes.
  CHECK(out["n_channels"] == 2);
  CHECK(out["n_classes"] == 2);
  REQUIRE(out["results"].size() == 2);
  for (const auto& row : out["results"]) {
    INFO(row.dump());
    REQUIRE(row["data_wait_ms"].is_number());
    CHECK(row["data_wait_ms"].get<double>() >= 0);
    CHECK(row["step_ms"].get<double>() > 0);
  }
  // Synthetic batches wait for nothing: not a measured zero.
  const nlohmann::json synthetic = bench_train("--device cpu --checkpointing off");
  CHECK(synthetic["data"] == "synthetic, on the device");
  CHECK(synthetic["results"][0]["data_wait_ms"].is_null());
  // Shards that are not there are named as --data's; --workers means nothing without it.
  const auto missing = run_command(DPUNET_BINARY " bench train --device cpu --data " + dir / "nothing-*.h5" + " 2>&1");
  CHECK(missing.exit_code != 0);
  CHECK_THAT(missing.output, HasSubstr("--data: ") && HasSubstr("nothing-*.h5"));
  // The largest batch is the device's question, on synthetic batches.
  const auto search =
      run_command(DPUNET_BINARY " bench train --device cpu --max-batch --data '" + dir / "data/train-*.h5' 2>&1");
  CHECK(search.exit_code != 0);
  CHECK_THAT(search.output, HasSubstr("--max-batch measures the device's capacity on synthetic batches"));
  const auto alone = run_command(DPUNET_BINARY " bench train --device cpu --workers 2 2>&1");
  CHECK(alone.exit_code == 107);
  CHECK_THAT(alone.output, HasSubstr("--workers requires --data"));
}

TEST_CASE("bench train measures a model whose bottom map is one pixel", "[app]") {
  // Depth 4 at 16 px: BatchNorm sees one value per sample at the bottom.
  const auto result = run_command(DPUNET_BINARY
                                  " bench train --size 16 --batch 2 --steps 1 --warmup 1 --base-channels 8 "
                                  "--depth 4 --device cpu --checkpointing off 2>&1");
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  CHECK_THAT(result.output, HasSubstr("\"kernels_applied\""));
}

TEST_CASE("bench train checkpoints the blocks a policy or a list names, and refuses an unknown block", "[app]") {
  nlohmann::json out = bench_train("--device cpu --checkpointing both --blocks down1,up2");
  REQUIRE(out["results"].size() == 2);
  CHECK(out["results"][0]["checkpointed_blocks"] == nlohmann::json::array());
  CHECK(out["results"][1]["checkpointing"] == "blocks down1,up2");
  CHECK(out["results"][1]["checkpointed_blocks"] == nlohmann::json({"down1", "up2"}));
  // Depth 2: balanced keeps the deepest two levels and the last decoder block.
  out = bench_train("--device cpu --checkpointing on --policy balanced");
  CHECK(out["results"][0]["checkpointed_blocks"] == nlohmann::json({"inc"}));
  out = bench_train("--device cpu --checkpointing on --policy all");
  CHECK(out["results"][0]["checkpointed_blocks"] == nlohmann::json({"inc", "down1", "down2", "up1", "up2", "outc"}));
  CHECK(out["results"][0]["split_skip_conv"] == false);
  // min_memory splits the skip convolutions unless told not to; any selection can split.
  out = bench_train("--device cpu --checkpointing both --policy min_memory");
  CHECK(out["results"][0]["split_skip_conv"] == false);  // the plain step
  CHECK(out["results"][1]["checkpointed_blocks"] == nlohmann::json({"inc", "down1", "down2", "up1"}));
  CHECK(out["results"][1]["split_skip_conv"] == true);
  out = bench_train("--device cpu --checkpointing on --policy min_memory --split-skip-conv 0");
  CHECK(out["results"][0]["split_skip_conv"] == false);
  out = bench_train("--device cpu --checkpointing on --blocks inc --split-skip-conv 1");
  CHECK(out["results"][0]["split_skip_conv"] == true);

  const auto bad_split =
      run_command(DPUNET_BINARY " bench train --size 64 --device cpu --checkpointing on --split-skip-conv yes 2>&1");
  CHECK(bad_split.exit_code != 0);
  CHECK_THAT(bad_split.output, HasSubstr("--split-skip-conv") && HasSubstr("yes"));

  const auto refused = run_command(DPUNET_BINARY
                                   " bench train --size 64 --batch 2 --steps 1 --warmup 1 --base-channels 8 --depth 2 "
                                   "--device cpu --checkpointing on --blocks inc,up3 2>&1");
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.output, HasSubstr("no block 'up3'") && HasSubstr("inc down1 down2 up1 up2 outc"));
}

TEST_CASE("bench train's model takes dpunet's kernels in every layer on a GPU in bf16 NHWC", "[gpu]") {
  if (!dpunet::test::own_kernels_runnable()) return;
  nlohmann::json out = bench_train("--device cuda --precision bf16 --checkpointing off");
  for (const char* kernel : kKernels) {
    INFO(kernel << ": " << out["kernels_applied"][kernel].dump());
    CHECK(out["kernels_applied"][kernel]["dpunet"].get<int>() > 0);
    CHECK(out["kernels_applied"][kernel]["aten"] == 0);
  }
  // And in none when they are switched off.
  out = bench_train("--device cuda --precision bf16 --checkpointing off --fuse-norm-relu 0 --pool-concat-kernels 0");
  for (const char* kernel : kKernels) {
    INFO(kernel << ": " << out["kernels_applied"][kernel].dump());
    CHECK(out["kernels_applied"][kernel]["dpunet"] == 0);
  }
}

TEST_CASE("bench commands refuse counts and choices they cannot measure", "[app]") {
  struct Case {
    std::string arguments, named;
  };
  for (const Case& c :
       std::vector<Case>{{"train --steps 0", "--steps: must be a whole number of at least 1, got 0"},
                         {"train --warmup 0", "--warmup: must be a whole number of at least 1, got 0"},
                         {"model --warmup 0", "--warmup: must be a whole number of at least 1, got 0"},
                         {"allreduce --warmup -1", "--warmup: must be a whole number of at least 0, got -1"},
                         {"train --optimizer adam", "--optimizer"},
                         {"train --peak-tflops nan", "--peak-tflops: must be a number above 0, got nan"},
                         {"train --peak-tflops -1", "--peak-tflops: must be a number above 0, got -1"},
                         {"train --device cpu --max-batch", "--max-batch needs a GPU"},
                         {"model --size 1.5", "--size: must be a whole number of at least 1, got 1.5"},
                         {"train --precision fp16", "--precision"},
                         {"train --checkpointing yes", "--checkpointing"},
                         {"train --device cpu --precision bf16", "needs a GPU"},
                         {"ddp --repeats 0", "--repeats"},
                         {"ddp --last-bucket-mb 0", "--last-bucket-mb: must be a number from 0.001 to 4096 MiB, got 0"},
                         {"ddp --bucket-mb -2", "--bucket-mb: must be a number from 0.001 to 4096 MiB, got -2"},
                         {"ddp --bucket-mb 1e300", "--bucket-mb: must be a number from 0.001 to 4096 MiB, got 1e300"},
                         {"ddp --threads 0", "--threads: must be a whole number of at least 1, got 0"},
                         {"predict --threads -2", "--threads: must be a whole number of at least 0, got -2"},
                         {"allreduce --min-bytes 6", "--min-bytes 6 is not a whole number of float32 values"},
                         // The model's shape before it is built: a bottom map BatchNorm cannot
                         // normalise, a size the depth halves to nothing.
                         {"train --device cpu --size 16 --batch 1 --depth 4",
                          "bench train --size 16 --batch 1: the depth-4 U-Net's bottom map is 1x1, which leaves "
                          "BatchNorm one value per channel"},
                         {"train --device cpu --size 64 --depth 7", "bench train --size 64 does not suit this model"},
                         // Block names are checked before the plain child runs (and reach
                         // the children as one word each, with no shell between).
                         {"model --size 32 --depth 2 --base-channels 4 --blocks 'inc, down1'", "no block ' down1'"},
                         {"model --size 32 --depth 2 --base-channels 4 --blocks 'inc;echo INJECTED >&2;'",
                          "no block 'inc;echo INJECTED >&2;'"},
                         {"ddp --device gpu", "--device"},
                         {"predict --batch 0", "--batch"},
                         {"model --batch 0", "--batch"}}) {
    const auto result = run_command(DPUNET_BINARY " bench " + c.arguments + " 2>&1");
    INFO(c.arguments << "\n" << result.output);
    CHECK(result.exit_code != 0);
    CHECK_THAT(result.output, HasSubstr(c.named));
  }
}

TEST_CASE("single-process benchmarks refuse the copies a launcher starts", "[app]") {
  for (const char* bench : {"data --size 32 --samples 8", "predict --size 64 --tile 32", "model --size 32"}) {
    INFO(bench);
    const auto run = run_command(std::string("OMPI_COMM_WORLD_SIZE=2 " DPUNET_BINARY " bench ") + bench + " 2>&1");
    CHECK(run.exit_code != 0);
    CHECK_THAT(run.output, HasSubstr("runs as one process") && HasSubstr("OMPI_COMM_WORLD_SIZE=2"));
  }
}

TEST_CASE("bench train's profile records allocations, and bench/trace_memory.py finds the step's peak", "[app]") {
  dpunet::test::TempDir dir;
  const std::string prefix = dir / "trace";
  const nlohmann::json out =
      bench_train("--device cpu --checkpointing on --policy min_memory --profile '" + prefix + "'");
  const std::string trace = prefix + ".checkpointed.json";
  CHECK(out["results"][0]["profile"] == trace);
  std::ifstream in(trace);
  std::stringstream text;
  text << in.rdbuf();
  CHECK_THAT(text.str(), HasSubstr("\"[memory]\""));

  const auto peaks = run_command(DPUNET_PYTHON " " DPUNET_SOURCE_DIR_SH "/bench/trace_memory.py '" + trace +
                                 "' --unit-bytes 1048576 2>&1");
  INFO(peaks.output);
  REQUIRE(peaks.exit_code == 0);
  // The CPU's peak, in MiB and in the given unit, inside some operator of the step.
  CHECK_THAT(peaks.output, HasSubstr("device type 0 id -1: peak") && HasSubstr("units") && HasSubstr("    in "));
  // Any file that is not a trace, such as the script itself, gets one line naming it.
  const auto refused = run_command(DPUNET_PYTHON " " DPUNET_SOURCE_DIR_SH "/bench/trace_memory.py " DPUNET_SOURCE_DIR_SH
                                                 "/bench/trace_memory.py 2>&1");
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.output, HasSubstr("trace_memory.py: not a Chrome trace") && !HasSubstr("Traceback"));
}
