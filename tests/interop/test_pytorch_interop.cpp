// Weights move between dpunet and PyTorch: a reference U-Net built and run in Python
// gives the same probabilities through `dpunet predict --weights` (max abs diff <= 1e-4
// in fp32), weights exported by dpunet load into the reference with strict=True, and a
// training-mode step at an odd size (both decoders) gives the reference's output,
// gradients and BatchNorm statistics.
// Skipped with a message where Python torch and safetensors are not available.
#include <hdf5.h>
#include <torch/torch.h>
#include "support/catch.h"

#include <map>

#include "checkpoint/safetensors.h"
#include "checkpoint/store.h"
#include "checkpoint/weights.h"
#include "data/shard_writer.h"
#include "model/unet.h"
#include "support/run_command.h"
#include "support/temp_dir.h"
#include "support/tensor_compare.h"
#include "support/train_fixture.h"

using dpunet::test::run_command;

namespace {

bool python_ready() {
  return run_command(DPUNET_PYTHON " -c 'import torch, safetensors' 2>/dev/null").exit_code == 0;
}

torch::Tensor read_probabilities(const std::string& file) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "sample-000000/probabilities", H5P_DEFAULT);
  torch::Tensor p = torch::empty({2, 64, 64});
  H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data_ptr());
  H5Dclose(d);
  H5Fclose(f);
  return p;
}

}  // namespace

TEST_CASE("a PyTorch reference model predicts the same through dpunet", "[interop][e2e]") {
  if (!python_ready()) {
    DPUNET_SKIP(DPUNET_PYTHON " cannot import torch and safetensors");
    return;
  }
  dpunet::test::TempDir dir;
  const auto made =
      run_command(DPUNET_PYTHON " " DPUNET_SOURCE_DIR_SH "/tests/interop/reference_model.py " + dir.path() + " 2>&1");
  INFO(made.output);
  REQUIRE(made.exit_code == 0);
  const auto io = dpunet::checkpoint::read_safetensors(dir / "io.safetensors");
  REQUIRE(io.size() == 2);
  const torch::Tensor input = io[0].first == "input" ? io[0].second : io[1].second;  // [1, 64, 64]
  const torch::Tensor expected = io[0].first == "input" ? io[1].second : io[0].second;

  // The input as a float32 shard, read back without normalisation.
  dpunet::data::ShardHeader header;
  header.samples = 1;
  header.channels = 1;
  header.height = header.width = 64;
  header.pixel_type = dpunet::data::PixelType::kFloat32;
  header.n_classes = 2;
  dpunet::data::ShardWriter writer(dir / "in.h5", header);
  const std::vector<uint8_t> mask(64 * 64, 0);
  writer.write(0, input.contiguous().data_ptr<float>(), mask.data());
  writer.finish();

  // Weights without a dpunet config get the reference's scaling ([0, 1], no statistics),
  // which leaves a float32 shard as it is.
  const auto predicted =
      run_command(DPUNET_BINARY " predict " + dir / "in.h5" + " --weights " + dir / "weights.safetensors" +
                  " --n-channels 1 --n-classes 2 --tile 64 --probabilities --no-png --out " + dir / "out 2>&1");
  INFO(predicted.output);
  REQUIRE(predicted.exit_code == 0);
  const torch::Tensor ours = read_probabilities(dir / "out/predictions.h5");
  const double difference = (ours - expected).abs().max().item<double>();
  INFO("max abs difference " << difference);
  CHECK(difference <= 1e-4);
}

TEST_CASE("weights exported by dpunet load into the PyTorch reference with strict names", "[interop][e2e]") {
  if (!python_ready()) {
    DPUNET_SKIP(DPUNET_PYTHON " cannot import torch and safetensors");
    return;
  }
  dpunet::test::TrainFixture f;
  const auto trained = f.train(1, f.write_config("model: {n_classes: 3, base_channels: 64, depth: 4}\n") +
                                      " --set train.steps=1 --set schedule.warmup_steps=0");
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  const std::string checkpoint = dpunet::checkpoint::CheckpointStore(f.run_dir()).path_for_step(1);
  REQUIRE(run_command(DPUNET_BINARY " export " + checkpoint + " " + f.dir() / "w.safetensors").exit_code == 0);
  const auto loaded = run_command(DPUNET_PYTHON " " DPUNET_SOURCE_DIR_SH "/tests/interop/reference_model.py --check " +
                                  f.dir() / "w.safetensors" + " 1 3 2>&1");
  INFO(loaded.output);
  CHECK(loaded.exit_code == 0);
  CHECK_THAT(loaded.output, HasSubstr("loaded"));
}

TEST_CASE("a training step at an odd size equals the PyTorch reference's, for both decoders", "[interop][e2e]") {
  if (!python_ready()) {
    DPUNET_SKIP(DPUNET_PYTHON " cannot import torch and safetensors");
    return;
  }
  const bool bilinear = GENERATE(false, true);
  INFO("bilinear " << bilinear);
  dpunet::test::TempDir dir;
  // 37x45: pooling floors 37 -> 18 -> 9 -> 4 -> 2 and the decoder pads unevenly on the way up.
  const auto made = run_command(DPUNET_PYTHON " " DPUNET_SOURCE_DIR_SH "/tests/interop/reference_model.py --train " +
                                dir.path() + (bilinear ? " 1" : " 0") + " 37 45 2>&1");
  INFO(made.output);
  REQUIRE(made.exit_code == 0);
  std::map<std::string, torch::Tensor> step;
  for (auto& [name, tensor] : dpunet::checkpoint::read_safetensors(dir / "step.safetensors")) step[name] = tensor;

  dpunet::model::UnetOptions options;
  options.n_channels = 1;
  options.n_classes = 2;
  options.bilinear = bilinear;
  dpunet::model::Unet net(options);
  dpunet::checkpoint::load_state(*net, dpunet::checkpoint::read_safetensors(dir / "weights.safetensors"),
                                 dir / "weights.safetensors");
  net->train();
  const torch::Tensor output = net->forward(step.at("input"));
  (output * step.at("output_weights")).sum().backward();

  // Within float32 rounding of sums taken in another order, relative to each tensor's scale.
  auto close = [](const torch::Tensor& ours, const torch::Tensor& theirs) {
    return dpunet::test::within_scale(ours, theirs, 1e-4, 1e-7);
  };
  CHECK(close(output.detach(), step.at("output")));
  for (const auto& item : net->named_parameters()) {
    INFO("gradient of " << item.key());
    REQUIRE(step.count("grad." + item.key()) == 1);
    CHECK(close(item.value().grad(), step.at("grad." + item.key())));
  }
  for (const auto& item : net->named_buffers()) {
    INFO("buffer " << item.key());
    REQUIRE(step.count("buffer." + item.key()) == 1);
    CHECK(close(item.value().to(torch::kDouble), step.at("buffer." + item.key()).to(torch::kDouble)));
  }
}
