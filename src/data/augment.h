// Training-time augmentation, applied identically to image and mask (nearest neighbour
// for the mask). Each transform has a probability; all randomness comes from an Rng
// seeded by (seed, epoch, sample), so a sample's augmentation does not depend on the
// number of loader threads or ranks.
#pragma once

#include <cstdint>

#include "data/random.h"
#include "data/sample.h"

namespace dpunet::data {

struct AugmentOptions {
  // Output size; 0 keeps the sample's size. Larger samples are cropped at a random
  // place, smaller ones mirror-padded.
  int64_t patch_height = 0, patch_width = 0;
  // Context the model consumes at each border (valid padding; see model::context_margin):
  // the patch is placed so that its centre, the part that is trained, reaches every
  // source pixel, with mirrored context beyond the source's edges, as predict tiles do.
  int64_t context_margin = 0;
  // nnU-Net's foreground oversampling: with this probability the trained window is placed
  // around a foreground pixel (mask value in [1, classes)): a class drawn uniformly among
  // those in the sample, then one of its pixels, which lands in the window's central half
  // so that rotation and scaling keep it inside. Samples without foreground, and the
  // other draws, are placed anywhere.
  double foreground_probability = 0.0;
  // Masks with unlabelled pixels (values >= classes, the ignore label): a patch not placed
  // around foreground is placed around a labelled pixel instead of anywhere, as nnU-Net
  // does, so that no trained window is wholly unlabelled. Samples labelled everywhere
  // are placed as without it.
  bool sparse_labels = false;
  int64_t classes = 0;                // needed for foreground_probability > 0 and sparse_labels
  double flip_probability = 0.5;      // per axis
  double rotate90_probability = 0.5;  // a random multiple of 90 degrees (180 only for non-square patches)
  // Small rotations and scaling, one resampling pass together with elastic deformation.
  double affine_probability = 0.0;
  double max_rotation_degrees = 15.0;
  double scale_min = 0.85, scale_max = 1.25;
  // The U-Net paper's elastic deformation: Gaussian displacements on a coarse grid,
  // interpolated bicubically to every pixel.
  double elastic_probability = 0.0;
  int elastic_grid = 3;
  double elastic_sigma = 10.0;  // pixels
  // Intensity transforms on the normalised image; each channel draws its own factor, from
  // below 1 or above 1 with equal chance when the range spans 1 (nnU-Net's convention).
  double brightness_probability = 0.0;
  double brightness_range = 0.25;  // multiply by a factor in [1 - r, 1 + r]
  double contrast_probability = 0.0;
  double contrast_range = 0.25;  // scale around the channel's mean, clipped to its former range
  // Gamma curves on the channel's range, keeping its mean and standard deviation; the
  // inverted pass applies the curve to the negated channel.
  double gamma_probability = 0.0;
  double gamma_invert_probability = 0.0;
  double gamma_min = 0.7, gamma_max = 1.5;
  double noise_probability = 0.0;
  double noise_std = 0.1;  // the noise's standard deviation is drawn from U(0, noise_std)
  // nnU-Net's blur and resolution transforms: a Gaussian blur of U(blur_sigma_min,
  // blur_sigma_max) pixels, and the image seen at U(low_resolution_min, 1) times its
  // resolution (nearest-neighbour down, cubic up); when a sample is chosen, each channel
  // is changed with probability 1/2 and draws its own amount.
  double blur_probability = 0.0;
  double blur_sigma_min = 0.5, blur_sigma_max = 1.0;
  double low_resolution_probability = 0.0;
  double low_resolution_min = 0.5;

  // Throws naming the first out-of-range field.
  void validate() const;
};

// Returns the augmented sample at the patch size.
Sample augment(const Sample& sample, const AugmentOptions& options, Rng& rng);

// The two halves of augment(), separately usable (and benchmarked).
Sample spatial_augment(const Sample& sample, const AugmentOptions& options, Rng& rng);
void intensity_augment(Sample& sample, const AugmentOptions& options, Rng& rng);

// The centred [height, width] patch (mirror-padded where the sample is smaller): what
// evaluation and augmentation-free training see.
Sample centre_crop(const Sample& sample, int64_t height, int64_t width);
// Where centre_crop starts along an axis of `size` pixels for a crop of `crop` pixels
// (negative: it starts with mirrored pixels).
inline int64_t centre_crop_offset(int64_t size, int64_t crop) {
  // Rounding toward zero splits odd differences the same way for crops and pads.
  return (size - crop) / 2;
}

}  // namespace dpunet::data
