// Plain description of a U-Net: the reference's arguments plus dpunet's extensions, each
// defaulting to the reference behaviour. Torch-free so config and app code can include it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dpunet::dist {
class Communicator;
}

namespace dpunet::model {

// kSyncBatch: batch statistics over all ranks' batches (needs UnetOptions::communicator).
enum class Norm { kBatch, kInstance, kGroup, kNone, kSyncBatch };
enum class Padding { kSame, kValid };

struct UnetOptions {
  int64_t n_channels = 1;
  int64_t n_classes = 2;
  bool bilinear = false;
  int64_t base_channels = 64;  // width of the first level; level i has base * 2^i
  int64_t depth = 4;           // number of Down (and Up) blocks
  Norm norm = Norm::kBatch;
  Padding padding = Padding::kSame;  // kValid: the 2015 paper's unpadded convolutions
  // BatchNorm and the ReLU after it as one fused step where it can (CUDA, training, NHWC);
  // the same arithmetic to rounding, fewer passes over memory.
  bool fuse_norm_relu = true;
  // dpunet's kernels for the skip connections' max pooling (no indices kept) and the
  // decoder's concatenation (its gradient split in one pass) where they apply (CUDA,
  // NHWC); the same values and gradients as ATen's kernels.
  bool pool_concat_kernels = true;
  // The ranks a kSyncBatch norm reduces over; unused by the other norms.
  std::shared_ptr<dist::Communicator> communicator;
};

Norm parse_norm(const std::string& name);        // "batch" | "instance" | "group" | "none" | "sync_batch"
Padding parse_padding(const std::string& name);  // "same" | "valid"
std::string to_string(Norm norm);
std::string to_string(Padding padding);

// Throws dpunet::Error naming the first bad field.
void validate(const UnetOptions& options);

// Output side length for an input side length, or nullopt when the size cannot be tiled
// (padding valid: every map before a 2x2 pool must be even and every map non-empty).
std::optional<int64_t> output_size(const UnetOptions& options, int64_t input_size);

// Side length of the bottom block's output map (the coarsest) for an input side length
// the model can tile (output_size has a value), else nullopt.
std::optional<int64_t> bottom_size(const UnetOptions& options, int64_t input_size);

// What the model's norm makes of the bottom block's map for height x width inputs, said
// as "the depth-D U-Net's bottom map is HxW, which ...", or empty when all is well (or the
// size cannot be tiled). BatchNorm's training statistics need two values per channel
// (`training_batch` samples, over all ranks for SyncBatchNorm; 0 when not training); InstanceNorm normalises each
// sample's map alone, so a 1x1 map comes out 0 whatever it held, in training and inference alike; GroupNorm does the
// same to a 1x1 map whose groups hold one channel each.
std::string bottom_norm_problem(const UnetOptions& options, int64_t height, int64_t width, int64_t training_batch);

// How many groups GroupNorm splits a map of `channels` into: the usual 32, fewer when the
// width is not a multiple of 32 (their greatest common divisor).
int64_t group_norm_groups(int64_t channels);

// Pixels of context the model consumes at each border: (input - output) / 2, the same for
// every valid input size (0 for same padding). With valid padding a training patch's
// target is its centre, this far in from the patch's edges.
int64_t context_margin(const UnetOptions& options);

// The valid input sizes closest to `input_size` (one below, one above, when they exist).
std::vector<int64_t> nearest_valid_sizes(const UnetOptions& options, int64_t input_size);

// output_size, or an error naming `option` ("--tile 100") with the nearest valid sizes.
int64_t output_size_or_fail(const UnetOptions& options, int64_t input_size, const std::string& option);

}  // namespace dpunet::model
