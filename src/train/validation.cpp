// validate().
#include "train/validation.h"

#include <torch/torch.h>

#include <cstring>

#include "data/augment.h"

namespace dpunet::train {

ValidationResult validate(const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                          const data::Dataset& dataset, const ValidationOptions& o, const LossOptions& loss_options,
                          const c10::Device& device, int rank, int world_size, dist::Communicator& comm) {
  torch::NoGradGuard no_grad;
  // Ranks evaluate different numbers of batches: no collective inside the loop.
  const auto& h = dataset.header();
  LossOptions local_loss = loss_options;
  local_loss.global_batch = nullptr;
  local_loss.ignore_label = h.ignore_label;  // the validation shards' own
  ConfusionCounts counts(o.n_classes, h.ignore_label);
  // loss_sums added over batches, in float64; zeros on a rank with no sample.
  torch::Tensor sums = torch::zeros({loss_sums_size(local_loss, o.n_classes)}, torch::kDouble).to(device);
  const int64_t patch_h = o.patch_size > 0 ? o.patch_size : h.height;
  const int64_t patch_w = o.patch_size > 0 ? o.patch_size : h.width;
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
    if (o.valid_padding) target = centre_crop_masks(target, logits.size(2));
    sums += loss_sums(logits, target, local_loss).to(torch::kDouble);
    counts.add(logits, target);
  }
  counts.all_reduce(comm, device);
  comm.all_reduce(sums, dist::ReduceOp::kSum);
  return {counts, loss_from_sums(sums, local_loss, o.n_classes).item<double>()};
}

}  // namespace dpunet::train
