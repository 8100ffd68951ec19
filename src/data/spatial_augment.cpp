// Spatial augmentation in one resampling pass per sample. A random crop (or mirror pad)
// plus a flip/rotate-by-90 element is a pure index map, computed from two lookup
// tables. Small rotations, scaling and elastic deformation add a bilinear warp (nearest
// for the mask) with mirrored borders, the U-Net paper's overlap-tile convention.
#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <vector>

#include "common/error.h"
#include "data/augment.h"
#include "data/cubic.h"
#include "data/reflect.h"

namespace dpunet::data {
namespace {

// std::floor is a library call on baseline x86-64 (no SSE4.1 round); this is not.
inline int64_t floor_to_int(double v) {
  const auto i = static_cast<int64_t>(v);
  return v < static_cast<double>(i) ? i - 1 : i;
}

// A flip/rotate-by-90 element: output (y, x) reads patch position (a, b) where
// a = reverse_a(transpose ? x : y) and b = reverse_b(transpose ? y : x).
struct Dihedral {
  bool transpose = false, reverse_a = false, reverse_b = false;
};

Dihedral draw_dihedral(const AugmentOptions& o, bool square, Rng& rng) {
  Dihedral d;
  if (rng.chance(o.rotate90_probability)) {
    const uint64_t quarter_turns = square ? 1 + rng.below(3) : 2;
    // One quarter turn maps (y, x) to (x, P-1-y); two to (P-1-y, P-1-x); three to (P-1-x, y).
    d.transpose = quarter_turns % 2 == 1;
    d.reverse_a = quarter_turns >= 2;
    d.reverse_b = quarter_turns <= 2;
  }
  if (rng.chance(o.flip_probability)) d.reverse_a = !d.reverse_a;
  if (rng.chance(o.flip_probability)) d.reverse_b = !d.reverse_b;
  return d;
}

// Top-left corner of the patch in the source. The trained window (the patch less `margin`
// on each side) lies anywhere it fits in the source, or, when the source is smaller,
// anywhere the source fits inside it; the patch's border around it is context, mirrored
// where it falls outside the source.
int64_t draw_offset(int64_t source, int64_t patch, int64_t margin, Rng& rng) {
  const int64_t window = patch - 2 * margin;
  DPUNET_CHECK(window > 0, "augmentation: a patch of ", patch, " leaves nothing inside a context margin of ", margin);
  const int64_t low = std::min<int64_t>(0, source - window), high = std::max<int64_t>(0, source - window);
  return low + static_cast<int64_t>(rng.below(static_cast<uint64_t>(high - low + 1))) - margin;
}

// Like draw_offset, but the trained window holds source position `anchor` in its central
// half. Near an edge, where the window cannot move far enough, it stops at the edge: the
// anchor is then as near the centre as the source allows, still inside the window.
int64_t draw_offset_around(int64_t source, int64_t patch, int64_t margin, int64_t anchor, Rng& rng) {
  const int64_t window = patch - 2 * margin;
  DPUNET_CHECK(window > 0, "augmentation: a patch of ", patch, " leaves nothing inside a context margin of ", margin);
  const int64_t low = std::min<int64_t>(0, source - window), high = std::max<int64_t>(0, source - window);
  const int64_t first = anchor - (window - window / 4) + 1, last = anchor - window / 4;
  if (last < low) return low - margin;
  if (first > high) return high - margin;
  const int64_t from = std::max(low, first), to = std::min(high, last);
  return from + static_cast<int64_t>(rng.below(static_cast<uint64_t>(to - from + 1))) - margin;
}

struct Pixel {
  int64_t y, x;
};

// The pixel after `skip` others (in row-major order) whose mask value is `value`.
Pixel nth_pixel_of(const Sample& in, int value, int64_t skip) {
  for (size_t p = 0; p < in.mask.size(); ++p) {
    if (in.mask[p] == value && skip-- == 0)
      return Pixel{static_cast<int64_t>(p) / in.width, static_cast<int64_t>(p) % in.width};
  }
  DPUNET_FAIL("augmentation: mask value ", value, " counted but not found");
}

// How many pixels of the mask hold each value.
std::array<int64_t, 256> value_counts(const Sample& in) {
  std::array<int64_t, 256> count{};
  for (uint8_t value : in.mask) ++count[value];
  return count;
}

// A pixel of a foreground class (mask value in [1, classes)): the class drawn uniformly
// among those present, so a rare class is found as often as a common one; nullopt when
// the mask has no foreground.
std::optional<Pixel> draw_foreground_pixel(const Sample& in, const std::array<int64_t, 256>& count, int64_t classes,
                                           Rng& rng) {
  std::vector<int> present;
  for (int64_t c = 1; c < std::min<int64_t>(classes, 256); ++c) {
    if (count[c] > 0) present.push_back(static_cast<int>(c));
  }
  if (present.empty()) return std::nullopt;
  const int chosen = present[rng.below(present.size())];
  return nth_pixel_of(in, chosen, static_cast<int64_t>(rng.below(static_cast<uint64_t>(count[chosen]))));
}

// A labelled pixel (mask value below `classes`), uniformly, when the mask also holds
// unlabelled ones; nullopt (drawing nothing) when every pixel is labelled or none is.
std::optional<Pixel> draw_labelled_pixel(const Sample& in, const std::array<int64_t, 256>& count, int64_t classes,
                                         Rng& rng) {
  int64_t labelled = 0;
  for (int64_t c = 0; c < std::min<int64_t>(classes, 256); ++c) labelled += count[c];
  if (labelled == 0 || labelled == static_cast<int64_t>(in.mask.size())) return std::nullopt;
  int64_t skip = static_cast<int64_t>(rng.below(static_cast<uint64_t>(labelled)));
  for (int64_t c = 0;; ++c) {
    if (skip < count[c]) return nth_pixel_of(in, static_cast<int>(c), skip);
    skip -= count[c];
  }
}

Sample make_output(const Sample& in, int64_t height, int64_t width) {
  Sample out;
  out.index = in.index;
  out.channels = in.channels;
  out.height = height;
  out.width = width;
  out.image.resize(static_cast<size_t>(in.channels * height * width));
  out.mask.resize(static_cast<size_t>(height * width));
  return out;
}

Sample crop_and_reorient(const Sample& in, int64_t ph, int64_t pw, int64_t oy, int64_t ox, Dihedral d) {
  std::vector<int64_t> rows(ph), cols(pw);
  for (int64_t i = 0; i < ph; ++i) rows[i] = reflect_index(oy + (d.reverse_a ? ph - 1 - i : i), in.height) * in.width;
  for (int64_t j = 0; j < pw; ++j) cols[j] = reflect_index(ox + (d.reverse_b ? pw - 1 - j : j), in.width);
  Sample out = make_output(in, ph, pw);  // transposition only happens for square patches
  const int64_t source_plane = in.height * in.width, plane = ph * pw;
  const int64_t* const row = rows.data();
  const int64_t* const col = cols.data();
  for (int64_t c = 0; c < in.channels; ++c) {  // channel-major: the output is written in order
    const float* const source = in.image.data() + c * source_plane;
    float* const target = out.image.data() + c * plane;
    for (int64_t y = 0; y < ph; ++y) {
      for (int64_t x = 0; x < pw; ++x) {
        target[y * pw + x] = source[d.transpose ? row[x] + col[y] : row[y] + col[x]];
      }
    }
  }
  const uint8_t* const source_mask = in.mask.data();
  uint8_t* const target_mask = out.mask.data();
  for (int64_t y = 0; y < ph; ++y) {
    for (int64_t x = 0; x < pw; ++x)
      target_mask[y * pw + x] = source_mask[d.transpose ? row[x] + col[y] : row[y] + col[x]];
  }
  return out;
}

// Interpolates a grid x grid array of node values over [height, width] bicubically.
std::vector<float> upsample_bicubic(const std::vector<double>& nodes, int grid, int64_t height, int64_t width) {
  auto node_positions = [grid](int64_t n, int64_t i, int idx[4], double w[4]) {
    const double u = n > 1 ? static_cast<double>(i) * (grid - 1) / static_cast<double>(n - 1) : 0.0;
    const int base = std::min(static_cast<int>(u), grid - 2);
    cubic_weights(u - base, w);
    for (int k = 0; k < 4; ++k) idx[k] = std::clamp(base - 1 + k, 0, grid - 1);
  };
  std::vector<double> rows(static_cast<size_t>(grid * width));  // [grid, width]
  for (int64_t x = 0; x < width; ++x) {
    int idx[4];
    double w[4];
    node_positions(width, x, idx, w);
    for (int g = 0; g < grid; ++g) {
      double v = 0;
      for (int k = 0; k < 4; ++k) v += w[k] * nodes[g * grid + idx[k]];
      rows[g * width + x] = v;
    }
  }
  std::vector<float> field(static_cast<size_t>(height * width));
  for (int64_t y = 0; y < height; ++y) {
    int idx[4];
    double w[4];
    node_positions(height, y, idx, w);
    for (int64_t x = 0; x < width; ++x) {
      double v = 0;
      for (int k = 0; k < 4; ++k) v += w[k] * rows[idx[k] * width + x];
      field[y * width + x] = static_cast<float>(v);
    }
  }
  return field;
}

struct Warp {
  double cos_angle = 1, sin_angle = 0, inverse_scale = 1;
  std::vector<float> dy, dx;  // [ph, pw] elastic displacement in pixels; empty when off
};

Warp draw_warp(const AugmentOptions& o, bool affine, bool elastic, int64_t ph, int64_t pw, Rng& rng) {
  Warp warp;
  if (affine) {
    const double angle = rng.uniform(-o.max_rotation_degrees, o.max_rotation_degrees) * M_PI / 180.0;
    warp.cos_angle = std::cos(angle);
    warp.sin_angle = std::sin(angle);
    warp.inverse_scale = 1.0 / rng.uniform(o.scale_min, o.scale_max);
  }
  if (elastic) {
    const int g = o.elastic_grid;
    std::vector<double> ny(g * g), nx(g * g);
    for (int i = 0; i < g * g; ++i) ny[i] = o.elastic_sigma * rng.normal();
    for (int i = 0; i < g * g; ++i) nx[i] = o.elastic_sigma * rng.normal();
    warp.dy = upsample_bicubic(ny, g, ph, pw);
    warp.dx = upsample_bicubic(nx, g, ph, pw);
  }
  return warp;
}

// Resamples one output pixel. Plain members: a store through the uint8_t mask pointer
// may alias anything, so reading sizes and buffers through the Sample objects would
// reload them for every pixel.
struct WarpKernel {
  int64_t height, width, channels, ph, pw;
  const float* source;
  const uint8_t* source_mask;
  float* target_image;
  uint8_t* target_mask;
  const float* field_y;  // null without elastic deformation
  const float* field_x;
  Dihedral d;
  double half_h, half_w, centre_y, centre_x, cos_s, sin_s;

  void operator()(int64_t y, int64_t x) const {
    int64_t a = d.transpose ? x : y, b = d.transpose ? y : x;
    if (d.reverse_a) a = ph - 1 - a;
    if (d.reverse_b) b = pw - 1 - b;
    const double ry = a - half_h, rx = b - half_w;
    double sy = centre_y + cos_s * ry - sin_s * rx;
    double sx = centre_x + sin_s * ry + cos_s * rx;
    if (field_y != nullptr) {
      sy += field_y[a * pw + b];
      sx += field_x[a * pw + b];
    }
    const int64_t iy = floor_to_int(sy), ix = floor_to_int(sx);
    const float wy = static_cast<float>(sy - static_cast<double>(iy));
    const float wx = static_cast<float>(sx - static_cast<double>(ix));
    int64_t y0, y1, x0, x1;
    if (iy >= 0 && iy + 1 < height && ix >= 0 && ix + 1 < width) {  // most pixels: no mirroring
      y0 = iy * width, y1 = y0 + width, x0 = ix, x1 = ix + 1;
    } else {
      y0 = reflect_index(iy, height) * width, y1 = reflect_index(iy + 1, height) * width;
      x0 = reflect_index(ix, width), x1 = reflect_index(ix + 1, width);
    }
    const int64_t target = y * pw + x;
    for (int64_t c = 0; c < channels; ++c) {
      const float* p = source + c * height * width;
      const float top = p[y0 + x0] + wx * (p[y0 + x1] - p[y0 + x0]);
      const float bottom = p[y1 + x0] + wx * (p[y1 + x1] - p[y1 + x0]);
      target_image[c * ph * pw + target] = top + wy * (bottom - top);
    }
    target_mask[target] = source_mask[(wy < 0.5f ? y0 : y1) + (wx < 0.5f ? x0 : x1)];
  }
};

Sample warp_sample(const Sample& in, int64_t ph, int64_t pw, int64_t oy, int64_t ox, Dihedral d, const Warp& warp) {
  Sample out = make_output(in, ph, pw);
  const double half_h = (ph - 1) / 2.0, half_w = (pw - 1) / 2.0;
  const WarpKernel kernel{in.height,
                          in.width,
                          in.channels,
                          ph,
                          pw,
                          in.image.data(),
                          in.mask.data(),
                          out.image.data(),
                          out.mask.data(),
                          warp.dy.empty() ? nullptr : warp.dy.data(),
                          warp.dx.empty() ? nullptr : warp.dx.data(),
                          d,
                          half_h,
                          half_w,
                          oy + half_h,
                          ox + half_w,
                          warp.cos_angle * warp.inverse_scale,
                          warp.sin_angle * warp.inverse_scale};
  // Output tiles keep the rotated source reads inside a few cache lines.
  constexpr int64_t kTile = 16;
  for (int64_t tile_y = 0; tile_y < ph; tile_y += kTile) {
    for (int64_t tile_x = 0; tile_x < pw; tile_x += kTile) {
      for (int64_t y = tile_y; y < std::min(ph, tile_y + kTile); ++y) {
        for (int64_t x = tile_x; x < std::min(pw, tile_x + kTile); ++x) kernel(y, x);
      }
    }
  }
  return out;
}

}  // namespace

Sample spatial_augment(const Sample& in, const AugmentOptions& o, Rng& rng) {
  const int64_t ph = o.patch_height > 0 ? o.patch_height : in.height;
  const int64_t pw = o.patch_width > 0 ? o.patch_width : in.width;
  // The draws happen in a fixed order, and the same ones for the same options: a sample's
  // augmentation depends only on (seed, epoch, index) and the options. A transform with
  // probability 0 draws nothing, so turning one on shifts the values the later ones get.
  const Dihedral d = draw_dihedral(o, ph == pw, rng);
  std::optional<Pixel> anchor;
  const bool oversample = rng.chance(o.foreground_probability);
  if (oversample || o.sparse_labels) {
    const std::array<int64_t, 256> count = value_counts(in);  // one pass over the mask for both draws
    if (oversample) anchor = draw_foreground_pixel(in, count, o.classes, rng);
    if (!anchor && o.sparse_labels) anchor = draw_labelled_pixel(in, count, o.classes, rng);
  }
  const int64_t oy = anchor ? draw_offset_around(in.height, ph, o.context_margin, anchor->y, rng)
                            : draw_offset(in.height, ph, o.context_margin, rng);
  const int64_t ox = anchor ? draw_offset_around(in.width, pw, o.context_margin, anchor->x, rng)
                            : draw_offset(in.width, pw, o.context_margin, rng);
  const bool affine = rng.chance(o.affine_probability);
  const bool elastic = rng.chance(o.elastic_probability);
  if (!affine && !elastic) return crop_and_reorient(in, ph, pw, oy, ox, d);
  return warp_sample(in, ph, pw, oy, ox, d, draw_warp(o, affine, elastic, ph, pw, rng));
}

Sample centre_crop(const Sample& sample, int64_t height, int64_t width) {
  return crop_and_reorient(sample, height, width, centre_crop_offset(sample.height, height),
                           centre_crop_offset(sample.width, width), Dihedral{});
}

Sample augment(const Sample& sample, const AugmentOptions& options, Rng& rng) {
  Sample out = spatial_augment(sample, options, rng);
  intensity_augment(out, options, rng);
  return out;
}

void AugmentOptions::validate() const {
  const std::pair<const char*, double> probabilities[] = {{"flip", flip_probability},
                                                          {"rotate90", rotate90_probability},
                                                          {"affine", affine_probability},
                                                          {"elastic", elastic_probability},
                                                          {"brightness", brightness_probability},
                                                          {"contrast", contrast_probability},
                                                          {"gamma", gamma_probability},
                                                          {"gamma_invert", gamma_invert_probability},
                                                          {"noise", noise_probability},
                                                          {"foreground", foreground_probability},
                                                          {"blur", blur_probability},
                                                          {"low_resolution", low_resolution_probability}};
  for (const auto& [name, p] : probabilities) {
    DPUNET_CHECK(p >= 0.0 && p <= 1.0, "augmentation: ", name, " probability must be in [0, 1], got ", p);
  }
  DPUNET_CHECK(patch_height >= 0 && patch_width >= 0, "augmentation: patch size must not be negative");
  DPUNET_CHECK(context_margin >= 0, "augmentation: context_margin must not be negative");
  DPUNET_CHECK((foreground_probability == 0 && !sparse_labels) || classes >= 2,
               "augmentation: foreground oversampling and sparse labels need the class count, got ", classes);
  DPUNET_CHECK(scale_min > 0 && scale_min <= scale_max, "augmentation: need 0 < scale_min <= scale_max, got ",
               scale_min, " and ", scale_max);
  DPUNET_CHECK(max_rotation_degrees >= 0 && max_rotation_degrees <= 180,
               "augmentation: max_rotation_degrees must be in [0, 180]");
  DPUNET_CHECK(elastic_grid >= 2, "augmentation: elastic_grid must be at least 2, got ", elastic_grid);
  DPUNET_CHECK(elastic_sigma >= 0, "augmentation: elastic_sigma must not be negative");
  DPUNET_CHECK(brightness_range >= 0 && brightness_range < 1 && contrast_range >= 0 && contrast_range < 1,
               "augmentation: brightness_range and contrast_range must be in [0, 1)");
  DPUNET_CHECK(gamma_min > 0 && gamma_min <= gamma_max, "augmentation: need 0 < gamma_min <= gamma_max");
  DPUNET_CHECK(noise_std >= 0, "augmentation: noise_std must not be negative");
  DPUNET_CHECK(blur_sigma_min > 0 && blur_sigma_min <= blur_sigma_max,
               "augmentation: need 0 < blur_sigma_min <= blur_sigma_max, got ", blur_sigma_min, " and ",
               blur_sigma_max);
  DPUNET_CHECK(low_resolution_min > 0 && low_resolution_min <= 1,
               "augmentation: low_resolution_min must be in (0, 1], got ", low_resolution_min);
}

}  // namespace dpunet::data
