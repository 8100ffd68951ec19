// precision.deterministic: the numerics settings it makes for a GPU run (checked on any
// machine), and on a GPU a resumed run equal to one that never stopped ([gpu]).
#include <torch/cuda.h>
#include <torch/torch.h>
#include "support/catch.h"

#include <filesystem>

#include "checkpoint/store.h"
#include "common/remove_tree.h"
#include "config/config.h"
#include "support/train_fixture.h"
#include "train/setup.h"

namespace {

// Puts ATen's global numerics flags back as they were.
struct NumericsFlags {
  at::Context& context = at::globalContext();
  const bool benchmark = context.benchmarkCuDNN(), deterministic_cudnn = context.deterministicCuDNN(),
             deterministic = context.deterministicAlgorithms(), warn_only = context.deterministicAlgorithmsWarnOnly(),
             fill = context.deterministicFillUninitializedMemory();
  ~NumericsFlags() {
    context.setBenchmarkCuDNN(benchmark);
    context.setDeterministicCuDNN(deterministic_cudnn);
    context.setDeterministicAlgorithms(deterministic, warn_only);
    context.setDeterministicFillUninitializedMemory(fill);
  }
};

}  // namespace

TEST_CASE("precision.deterministic turns autotuning off and deterministic algorithms on", "[train]") {
  const NumericsFlags restore;
  auto& context = at::globalContext();
  dpunet::config::Config config = dpunet::config::parse_config("", "a.yaml");
  dpunet::train::configure_gpu_numerics(config);
  CHECK(context.benchmarkCuDNN() == config.precision.cudnn_benchmark);
  CHECK_FALSE(context.deterministicCuDNN());
  CHECK_FALSE(context.deterministicAlgorithms());

  config = dpunet::config::parse_config("precision: {deterministic: true}\n", "a.yaml");
  REQUIRE(config.precision.cudnn_benchmark);  // the default, which deterministic overrides
  dpunet::train::configure_gpu_numerics(config);
  CHECK_FALSE(context.benchmarkCuDNN());
  CHECK(context.deterministicCuDNN());
  CHECK(context.deterministicAlgorithms());
  CHECK_FALSE(context.deterministicAlgorithmsWarnOnly());
  CHECK_FALSE(context.deterministicFillUninitializedMemory());  // no NaN fill of every new tensor

  // And off again, as a later run in the same process may want.
  config = dpunet::config::parse_config("", "a.yaml");
  dpunet::train::configure_gpu_numerics(config);
  CHECK(context.benchmarkCuDNN());
  CHECK_FALSE(context.deterministicCuDNN());
  CHECK_FALSE(context.deterministicAlgorithms());

  // Bilinear up-sampling has no deterministic gradient on GPUs: refused, naming both keys.
  config = dpunet::config::parse_config("precision: {deterministic: true}\nmodel: {bilinear: true}\n", "a.yaml");
  CHECK_THROWS_WITH(dpunet::train::configure_gpu_numerics(config),
                    HasSubstr("precision.deterministic") && HasSubstr("model.bilinear"));
}

TEST_CASE("on a GPU with precision.deterministic, N+M steps equal N, a resume and M, bit for bit", "[gpu][e2e]") {
  if (!torch::cuda::is_available()) {
    DPUNET_SKIP("needs a GPU");
    return;
  }
  dpunet::test::TrainFixture f;
  const std::string config = f.write_config() +
                             " --set run.device=cuda --set precision.deterministic=true --set precision.dtype=bf16"
                             " --set precision.channels_last=true";
  const auto straight = f.train(1, config);
  INFO(straight.output);
  REQUIRE(straight.exit_code == 0);
  const dpunet::checkpoint::CheckpointStore store(f.run_dir());
  std::filesystem::rename(store.path_for_step(8), f.dir() / "straight.ckpt");
  dpunet::remove_tree(f.run_dir());

  const auto first = f.train(1, config + " --stop-at-step 3");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const auto second = f.train(1, config + " --resume auto");
  INFO(second.output);
  REQUIRE(second.exit_code == 0);
  // Resumed, not started afresh (which a deterministic run would also end at the same
  // weights).
  CHECK_THAT(second.output, HasSubstr("resumed from " + store.path_for_step(3) + " at step 3"));
  dpunet::test::require_same_weights(f.dir() / "straight.ckpt", store.path_for_step(8));
}
