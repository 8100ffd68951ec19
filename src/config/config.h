// A training run's whole configuration as plain structs with defaults. Parsed in one
// place (load_config), validated there, printed back as YAML (the resolved config that
// is saved into the run directory and into every checkpoint). No torch, no MPI.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpunet::config {

struct RunConfig {
  std::string dir = "runs/quickstart";  // checkpoints, metrics.jsonl, config.yaml
  uint64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda
};

struct ModelConfig {
  int64_t n_channels = 1;
  int64_t n_classes = 3;
  bool bilinear = false;
  int64_t base_channels = 64;
  int64_t depth = 4;
  std::string norm = "batch";          // batch | instance | group | none | sync_batch
  std::string padding = "same";        // same | valid
  std::string checkpointing = "none";  // none | norm_relu | balanced | min_memory | all
  // Decoder convolutions over the skip and upsampled maps apart, not their concatenation:
  // auto (as checkpointing has it: min_memory splits) | true | false
  std::string split_skip_conv = "auto";
  bool fuse_norm_relu = true;       // fused BatchNorm+ReLU kernels where they apply (GPU)
  bool pool_concat_kernels = true;  // max pooling and concatenation kernels where they apply (GPU)
};

struct DataConfig {
  std::string train = "data/synth/train-*.h5";
  std::string val;                        // empty: no validation
  std::string normalization = "dataset";  // dataset | per_image | none
  // `dataset` normalisation's statistics, per channel in stored pixel units. Empty: the
  // training shards' own, filled in when a run starts, so that the saved config (in the
  // checkpoints, exports and RUN/config.yaml) tells prediction how the model's inputs
  // were scaled.
  std::vector<double> channel_mean, channel_std;
  std::string stats_pixel_type;  // the pixel type they were measured on; empty: not known
  int64_t workers = 2;
  int64_t prefetch = 4;
  std::string remainder = "pad";  // pad | drop
};

struct AugmentConfig {
  bool enabled = true;
  int64_t patch_size = 128;  // square patches; 0 takes the whole image
  double flip = 0.5;
  double rotate90 = 0.5;
  double affine = 0.2;
  double max_rotation_degrees = 15;
  double scale_min = 0.85, scale_max = 1.25;
  double elastic = 0.0;
  int64_t elastic_grid = 3;
  double elastic_sigma = 10;
  double brightness = 0.15, brightness_range = 0.25;
  double contrast = 0.15, contrast_range = 0.25;
  double gamma = 0.3, gamma_invert = 0.1, gamma_min = 0.7, gamma_max = 1.5;  // nnU-Net's defaults
  double noise = 0.1, noise_std = 0.1;
  double blur = 0.2, blur_sigma_min = 0.5, blur_sigma_max = 1.0;  // nnU-Net's defaults
  double low_resolution = 0.25, low_resolution_min = 0.5;
  double foreground = 0.33;  // patches placed around a foreground pixel, as nnU-Net oversamples
};

struct TrainConfig {
  int64_t batch_size = 4;    // per rank, per micro-batch
  int64_t accumulation = 1;  // micro-batches per optimizer step
  int64_t steps = 1000;      // optimizer steps in the whole run
};

struct OptimizerConfig {
  std::string name = "adamw";            // adamw | sgd
  std::string implementation = "fused";  // fused | foreach | per_parameter
  double lr = 1e-3;
  double weight_decay = 1e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw
  double momentum = 0.99;                         // sgd, with Nesterov
  double grad_clip = 12.0;                        // global gradient norm after the all-reduce; 0: off
};

struct ScheduleConfig {
  std::string name = "cosine";  // cosine | poly | constant
  int64_t warmup_steps = 50;
  double lr_min = 0.0;  // where cosine and poly decay to
  double poly_exponent = 0.9;
};

struct LossConfig {
  double ce_weight = 1.0;
  double dice_weight = 1.0;
  std::vector<double> class_weights;  // cross-entropy weights, one per class; empty: equal
  bool dice_include_background = false;
  bool global_batch = true;  // the loss of all ranks' batches together, not each rank's
};

struct PrecisionConfig {
  std::string dtype = "fp32";  // fp32 | bf16 | fp16 (bf16/fp16: autocast on CUDA)
  bool channels_last = false;
  bool cudnn_benchmark = true;
  bool deterministic = false;  // GPU: only deterministic algorithms, so runs repeat bit for bit
};

struct ValidationConfig {
  int64_t every_steps = 100;  // 0: at the end of each epoch
  int64_t batch_size = 4;
};

struct CheckpointConfig {
  int64_t every_steps = 100;
  bool every_epoch = true;
  int64_t keep_last = 3;
  bool keep_best = true;
};

struct LoggingConfig {
  int64_t every_steps = 10;
  std::string progress = "auto";  // auto | bar | lines
  bool tensorboard = true;        // RUN/tensorboard event files
};

struct DistributedConfig {
  std::string backend = "auto";  // auto | mpi | nccl
  double first_bucket_mb = 1, bucket_mb = 25;
  std::string wire_dtype = "none";  // none | bf16 | fp16
  double timeout_s = 600;
  bool check_collectives = false;  // compare each collective across ranks first (finds mismatches)
};

struct Config {
  RunConfig run;
  ModelConfig model;
  DataConfig data;
  AugmentConfig augment;
  TrainConfig train;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  LossConfig loss;
  PrecisionConfig precision;
  ValidationConfig validation;
  CheckpointConfig checkpoint;
  LoggingConfig logging;
  DistributedConfig distributed;
};

// Reads `path` (or `yaml_text` named `source` in messages), applies `overrides`
// ("optimizer.lr=3e-4", in order) and validates. Every error names the file, line and
// column, and the key path; unknown keys come with the nearest valid key.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});
// A file that describes weights (predict and export --config): unknown keys are refused,
// each value is checked as it is read and the normalisation statistics across keys, but
// not the training recipe (a file holding only `model: {padding: valid}` need not give a
// patch size that suits it; what reads the model checks what it needs, predict its tile).
Config load_model_config(const std::string& path);
// A config dpunet wrote (inside a checkpoint or an export), perhaps by another version:
// keys this build does not know are skipped and listed in `skipped`, not refused, and the
// checks across keys are left out (each value is still checked as it is read), so older
// checkpoints stay usable when a key is renamed or retired, or a later build refuses
// their recipe.
Config parse_saved_config(const std::string& yaml_text, const std::string& source,
                          std::vector<std::string>* skipped = nullptr);

// The resolved config as YAML, every key present; parse_config(to_yaml(c)) == c.
std::string to_yaml(const Config& config);

// The keys a model needs to be the same to load a checkpoint into it; the differing
// ones between two configs ("model.depth: 4 vs 3").
std::vector<std::string> model_differences(const Config& a, const Config& b);

// The norm a model's weights are stored as: SyncBatchNorm keeps BatchNorm's parameters
// and running statistics under the same names (and normalises as it does in inference).
inline std::string weights_norm(const std::string& norm) {
  return norm == "sync_batch" ? "batch" : norm;
}
// Every key that differs between two configs, in the same form and schema order.
std::vector<std::string> differences(const Config& a, const Config& b);
// Every key with its value, "optimizer.lr: 0.001", in schema order.
std::vector<std::string> key_values(const Config& config);

}  // namespace dpunet::config
