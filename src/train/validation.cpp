// validate().
#include "train/validation.h"

#include <torch/torch.h>

#include <cstring>
#include <utility>

#include "data/augment.h"

namespace dpunet::train {
namespace {

// Marks the pixels of centre crops [B, crop_h, crop_w] of [height, width] images that
// the crop mirrored in from beyond the image's edges: their labels repeat pixels scored
// already, near the edges, and would weigh those twice.
void mark_mirrored(torch::Tensor& target, int64_t height, int64_t width, int64_t unscored) {
  for (const auto& [dim, size] : {std::pair<int64_t, int64_t>{1, height}, {2, width}}) {
    const int64_t crop = target.size(dim);
    const int64_t offset = data::centre_crop_offset(size, crop);
    if (offset >= 0) continue;  // a crop inside the image
    target.slice(dim, 0, -offset).fill_(unscored);
    target.slice(dim, size - offset, crop).fill_(unscored);
  }
}

}  // namespace

ValidationResult validate(const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                          const data::Dataset& dataset, const ValidationOptions& o, const LossOptions& loss_options,
                          const c10::Device& device, int rank, int world_size, dist::Communicator& comm) {
  torch::NoGradGuard no_grad;
  // Ranks evaluate different numbers of batches: no collective inside the loop.
  const auto& h = dataset.header();
  const int64_t patch_h = o.patch_size > 0 ? o.patch_size : h.height;
  const int64_t patch_w = o.patch_size > 0 ? o.patch_size : h.width;
  const bool mirrored = patch_h > h.height || patch_w > h.width;
  // The validation shards' own ignore label; images smaller than the patch need one for
  // their mirrored pixels: the first value past the classes when the shards have none.
  const int64_t ignore_label = h.ignore_label >= 0 ? h.ignore_label : (mirrored ? o.n_classes : -1);
  LossOptions local_loss = loss_options;
  local_loss.global_batch = nullptr;
  local_loss.ignore_label = ignore_label;
  ConfusionCounts counts(o.n_classes, ignore_label);
  // loss_sums added over batches, in float64; zeros on a rank with no sample.
  torch::Tensor sums = torch::zeros({loss_sums_size(local_loss, o.n_classes)}, torch::kDouble).to(device);
  std::vector<int64_t> mine;
  for (int64_t i = rank; i < dataset.size(); i += world_size) mine.push_back(i);
  std::vector<unsigned char> scratch;
  for (size_t start = 0; start < mine.size(); start += static_cast<size_t>(o.batch_size)) {
    const int64_t count = std::min<int64_t>(o.batch_size, static_cast<int64_t>(mine.size() - start));
    torch::Tensor images = torch::empty({count, h.channels, patch_h, patch_w}, torch::kFloat);
    torch::Tensor masks = torch::empty({count, patch_h, patch_w}, torch::kByte);
    for (int64_t b = 0; b < count; ++b) {
      const data::Sample crop =
          data::centre_crop(data::load_sample(dataset, mine[start + b], o.normalization, scratch), patch_h, patch_w);
      std::memcpy(images[b].data_ptr<float>(), crop.image.data(), crop.image.size() * sizeof(float));
      std::memcpy(masks[b].data_ptr<uint8_t>(), crop.mask.data(), crop.mask.size());
    }
    const torch::Tensor logits = forward(images.to(device));
    torch::Tensor target = masks.to(device).to(torch::kLong);
    if (mirrored) mark_mirrored(target, h.height, h.width, ignore_label);
    if (o.valid_padding) target = centre_crop_masks(target, logits.size(2));
    sums += loss_sums(logits, target, local_loss).to(torch::kDouble);
    counts.add(logits, target);
  }
  counts.all_reduce(comm, device);
  comm.all_reduce(sums, dist::ReduceOp::kSum);
  return {counts, loss_from_sums(sums, local_loss, o.n_classes).item<double>()};
}

}  // namespace dpunet::train
