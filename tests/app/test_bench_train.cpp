// `dpunet bench train` end to end on a small model: its JSON, and which of dpunet's own
// kernels the model's maps take (none on the CPU; all of them on a GPU in bf16 NHWC).
#include <torch/cuda.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/own_kernels.h"
#include "support/run_command.h"

using dpunet::test::run_command;

namespace {

nlohmann::json bench_train(const std::string& options) {
  const auto result = run_command(DPUNET_BINARY
                                  " bench train --size 64 --batch 2 --steps 1 --warmup 0 "
                                  "--base-channels 8 --depth 2 --checkpointing off " +
                                  options + " 2>&1");
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  const size_t start = result.output.find('{');
  REQUIRE(start != std::string::npos);
  return nlohmann::json::parse(result.output.substr(start));
}

}  // namespace

TEST_CASE("bench train reports its step and that the CPU takes ATen's kernels", "[app]") {
  const nlohmann::json out = bench_train("--device cpu");
  CHECK(out["benchmark"] == "train");
  REQUIRE(out["results"].size() == 1);
  CHECK(out["results"][0]["step_ms"].get<double>() > 0);
  for (const char* kernel : {"fused_norm_relu", "max_pool", "concat_backward"}) {
    INFO(kernel);
    CHECK(out["kernels_applied"][kernel] == false);
  }
}

TEST_CASE("bench train's model takes every one of dpunet's kernels on a GPU in bf16 NHWC", "[gpu]") {
  if (!dpunet::test::own_kernels_runnable()) return;
  nlohmann::json out = bench_train("--device cuda --precision bf16");
  for (const char* kernel : {"fused_norm_relu", "max_pool", "concat_backward"}) {
    INFO(kernel);
    CHECK(out["kernels_applied"][kernel] == true);
  }
  // And none when they are switched off.
  out = bench_train("--device cuda --precision bf16 --fuse-norm-relu 0 --pool-concat-kernels 0");
  for (const char* kernel : {"fused_norm_relu", "max_pool", "concat_backward"}) {
    INFO(kernel);
    CHECK(out["kernels_applied"][kernel] == false);
  }
}
