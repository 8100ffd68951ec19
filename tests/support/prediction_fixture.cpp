// Prediction test helpers: see prediction_fixture.h.
#include "support/prediction_fixture.h"

#include <hdf5.h>
#include <torch/torch.h>

#include <cstdio>
#include <vector>

#include "checkpoint/safetensors.h"
#include "checkpoint/store.h"
#include "support/catch.h"

namespace dpunet::test {

TrainedModel::TrainedModel() {
  const auto run = f.train(1, f.write_config());
  REQUIRE(run.exit_code == 0);
  checkpoint = checkpoint::CheckpointStore(f.run_dir()).path_for_step(8);
}

torch::Tensor read_prediction(const std::string& file, const std::string& path, torch::ScalarType type) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  hid_t d = H5Dopen2(f, path.c_str(), H5P_DEFAULT);
  REQUIRE(d >= 0);
  hid_t space = H5Dget_space(d);
  std::vector<hsize_t> dims(H5Sget_simple_extent_ndims(space));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  torch::Tensor values = torch::empty(std::vector<int64_t>(dims.begin(), dims.end()), type);
  H5Dread(d, type == torch::kByte ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
          values.data_ptr());
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
  return values;
}

torch::Tensor read_mask(const std::string& file, const std::string& name) {
  return read_prediction(file, name + "/mask", torch::kByte);
}

CommandResult predict_into(const TrainFixture& f, const std::string& models, const std::string& out,
                           const std::string& extra) {
  return run_command(DPUNET_BINARY " predict '" + f.dir() / "data/val-*.h5" + "' " + models + " --out " +
                     f.dir() / out + " --tile 32 --no-png --probabilities " + extra + " 2>&1");
}

torch::Tensor probabilities_of(const TrainFixture& f, const std::string& out, int sample) {
  char name[48];
  std::snprintf(name, sizeof(name), "sample-%06d/probabilities", sample);
  return read_prediction(f.dir() / (out + "/predictions.h5"), name, torch::kFloat);
}

void write_changed_weights(const std::string& from, const std::string& to,
                           const std::function<void(config::Config&)>& change) {
  const auto metadata = checkpoint::read_safetensors_metadata(from);
  config::Config config = config::parse_saved_config(metadata.at("dpunet_config"), from);
  change(config);
  checkpoint::write_safetensors(to, checkpoint::read_safetensors(from),
                                {{"format", "pt"}, {"dpunet_config", config::to_yaml(config)}});
}

}  // namespace dpunet::test
