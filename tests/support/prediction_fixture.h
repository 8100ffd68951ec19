// For end-to-end tests of `dpunet predict`: a briefly trained model, the predict command
// line over its validation shards, and readers of the prediction files it writes.
#pragma once

#include <functional>
#include <string>

#include <torch/types.h>

#include "config/config.h"
#include "support/run_command.h"
#include "support/train_fixture.h"

namespace dpunet::test {

// A model trained for one epoch of the tiny synthetic set; `checkpoint` is its step-8 file.
struct TrainedModel {
  TrainFixture f;
  std::string checkpoint;
  TrainedModel();
};

// One dataset of a prediction file: "NAME/mask" (uint8) or "NAME/probabilities" (float).
torch::Tensor read_prediction(const std::string& file, const std::string& path, torch::ScalarType type);
torch::Tensor read_mask(const std::string& file, const std::string& name);

// Predicts the validation shards into DIR/OUT with class probabilities; `models` are
// the --checkpoint or --weights arguments.
CommandResult predict_into(const TrainFixture& f, const std::string& models, const std::string& out,
                           const std::string& extra = "");
// Sample `sample`'s class probabilities from DIR/OUT/predictions.h5.
torch::Tensor probabilities_of(const TrainFixture& f, const std::string& out, int sample);

// Copies safetensors weights with their saved config changed by `change`.
void write_changed_weights(const std::string& from, const std::string& to,
                           const std::function<void(config::Config&)>& change);

}  // namespace dpunet::test
