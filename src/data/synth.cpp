// The synthetic cell generator and the shard set it writes.
#include "data/synth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "data/random.h"
#include "data/shard_writer.h"

namespace dpunet::data {
namespace {

// Smooth random texture in about [-1, 1]: random values on a grid every `cell` pixels,
// bilinearly interpolated.
void add_value_noise(std::vector<float>& plane, int64_t h, int64_t w, int64_t cell, float amplitude, Rng& rng) {
  const int64_t gh = h / cell + 2, gw = w / cell + 2;
  std::vector<float> grid(static_cast<size_t>(gh * gw));
  for (float& v : grid) v = static_cast<float>(rng.uniform(-1.0, 1.0));
  for (int64_t y = 0; y < h; ++y) {
    const float fy = static_cast<float>(y) / cell;
    const int64_t y0 = static_cast<int64_t>(fy);
    const float ty = fy - y0;
    for (int64_t x = 0; x < w; ++x) {
      const float fx = static_cast<float>(x) / cell;
      const int64_t x0 = static_cast<int64_t>(fx);
      const float tx = fx - x0;
      const float* g = grid.data() + y0 * gw + x0;
      const float top = g[0] + tx * (g[1] - g[0]), bottom = g[gw] + tx * (g[gw + 1] - g[gw]);
      plane[y * w + x] += amplitude * (top + ty * (bottom - top));
    }
  }
}

struct Cell {
  double cy, cx, radius, intensity;
  double harmonic[2], phase[2];  // shape: 2- and 3-fold radial wobble
};

// Distance from the centre relative to the cell's radius at that angle: < 1 inside.
double relative_radius(const Cell& c, double dy, double dx) {
  const double angle = std::atan2(dy, dx);
  const double r = c.radius * (1.0 + c.harmonic[0] * std::cos(2 * angle + c.phase[0]) +
                               c.harmonic[1] * std::cos(3 * angle + c.phase[1]));
  return std::sqrt(dy * dy + dx * dx) / r;
}

void box_blur(std::vector<float>& plane, int64_t h, int64_t w) {
  std::vector<float> tmp(plane.size());
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const float* row = plane.data() + y * w;
      tmp[y * w + x] = (row[std::max<int64_t>(x - 1, 0)] + row[x] + row[std::min(x + 1, w - 1)]) / 3.0f;
    }
  }
  for (int64_t y = 0; y < h; ++y) {
    const float* up = tmp.data() + std::max<int64_t>(y - 1, 0) * w;
    const float* mid = tmp.data() + y * w;
    const float* down = tmp.data() + std::min(y + 1, h - 1) * w;
    for (int64_t x = 0; x < w; ++x) plane[y * w + x] = (up[x] + mid[x] + down[x]) / 3.0f;
  }
}

}  // namespace

void render_synthetic_sample(const SynthOptions& o, int64_t index, std::vector<float>& image,
                             std::vector<uint8_t>& mask) {
  const int64_t h = o.height, w = o.width;
  Rng rng(derive_seed({o.seed, static_cast<uint64_t>(index), 0xCE11ull}));
  std::vector<float> plane(static_cast<size_t>(h * w), 0.2f);
  add_value_noise(plane, h, w, 32, 0.06f, rng);
  add_value_noise(plane, h, w, 6, 0.03f, rng);

  // Cells are painted in order, later ones over earlier ones, so they overlap and touch.
  std::vector<int32_t> owner(static_cast<size_t>(h * w), -1);
  const int64_t count = std::max<int64_t>(2, h * w / 1100);
  std::vector<Cell> cells(count);
  for (int64_t i = 0; i < count; ++i) {
    Cell& c = cells[i];
    c.cy = rng.uniform(-5.0, h + 5.0);
    c.cx = rng.uniform(-5.0, w + 5.0);
    c.radius = rng.uniform(7.0, 17.0);
    c.intensity = rng.uniform(0.5, 0.85);
    for (int k = 0; k < 2; ++k) {
      c.harmonic[k] = rng.uniform(0.0, 0.15);
      c.phase[k] = rng.uniform(0.0, 6.283185307179586);
    }
    const int64_t reach = static_cast<int64_t>(std::ceil(c.radius * 1.35));
    for (int64_t y = std::max<int64_t>(0, c.cy - reach); y < std::min<int64_t>(h, c.cy + reach + 1); ++y) {
      for (int64_t x = std::max<int64_t>(0, c.cx - reach); x < std::min<int64_t>(w, c.cx + reach + 1); ++x) {
        const double r = relative_radius(c, y - c.cy, x - c.cx);
        if (r >= 1.0) continue;
        owner[y * w + x] = static_cast<int32_t>(i);
        // Brighter towards the rim, like a stained membrane, with a darker nucleus.
        const double shade = c.intensity * (0.85 + 0.2 * r * r) - (r < 0.35 ? 0.12 : 0.0);
        plane[y * w + x] = static_cast<float>(shade);
      }
    }
  }

  mask.assign(static_cast<size_t>(h * w), 0);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const int32_t id = owner[y * w + x];
      if (id < 0) continue;
      bool border = false;
      for (int64_t dy = -1; dy <= 1 && !border; ++dy) {
        for (int64_t dx = -1; dx <= 1 && !border; ++dx) {
          const int64_t ny = y + dy, nx = x + dx;
          if (ny < 0 || ny >= h || nx < 0 || nx >= w) continue;
          border = owner[ny * w + nx] != id;
        }
      }
      // Borders separate touching cells: their own class, or background with 2 classes.
      mask[y * w + x] = border ? (o.n_classes >= 3 ? 2 : 0) : 1;
      if (border) plane[y * w + x] *= 0.6f;
    }
  }

  box_blur(plane, h, w);
  image.assign(static_cast<size_t>(o.channels * h * w), 0.0f);
  for (int64_t c = 0; c < o.channels; ++c) {
    const float gain = 1.0f - 0.15f * static_cast<float>(c);
    for (int64_t p = 0; p < h * w; ++p) {
      const float noisy = plane[p] * gain + static_cast<float>(0.03 * rng.normal());
      image[c * h * w + p] = std::clamp(noisy, 0.0f, 1.0f);
    }
  }
}

std::vector<std::string> write_synthetic_dataset(const std::string& directory, const SynthOptions& o) {
  DPUNET_CHECK(o.samples >= 1 && o.shards >= 1 && o.shards <= o.samples, "synth: need 1 <= shards <= samples, got ",
               o.shards, " shards for ", o.samples, " samples");
  DPUNET_CHECK(o.height >= 8 && o.width >= 8 && o.channels >= 1, "synth: images must be at least 8x8 with a channel");
  DPUNET_CHECK(o.n_classes == 2 || o.n_classes == 3, "synth: n_classes must be 2 or 3, got ", o.n_classes);
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  DPUNET_CHECK(!ec, directory, ": cannot create the directory: ", ec.message());

  const std::vector<std::string> names = {"background", "cell", "border"};
  std::vector<std::string> paths;
  std::vector<float> image;
  std::vector<uint8_t> mask;
  std::vector<unsigned char> stored;
  const int bytes = pixel_type_bytes(o.pixel_type);
  for (int s = 0; s < o.shards; ++s) {
    const int64_t begin = o.samples * s / o.shards, end = o.samples * (s + 1) / o.shards;
    char name[64];
    std::snprintf(name, sizeof(name), "%s-%05d.h5", o.prefix.c_str(), s);
    const std::string path = (std::filesystem::path(directory) / name).string();
    ShardHeader header;
    header.samples = end - begin;
    header.channels = o.channels;
    header.height = o.height;
    header.width = o.width;
    header.pixel_type = o.pixel_type;
    header.n_classes = o.n_classes;
    header.class_names.assign(names.begin(), names.begin() + o.n_classes);
    ShardWriter writer(path, header, ShardWriteOptions{o.gzip_level});
    stored.resize(static_cast<size_t>(header.image_values()) * bytes);
    for (int64_t i = begin; i < end; ++i) {
      render_synthetic_sample(o, o.first_index + i, image, mask);
      for (size_t p = 0; p < image.size(); ++p) {
        switch (o.pixel_type) {
          case PixelType::kUInt8: stored[p] = static_cast<uint8_t>(std::lround(image[p] * 255.0f)); break;
          case PixelType::kUInt16:
            reinterpret_cast<uint16_t*>(stored.data())[p] = static_cast<uint16_t>(std::lround(image[p] * 65535.0f));
            break;
          case PixelType::kFloat32: reinterpret_cast<float*>(stored.data())[p] = image[p]; break;
        }
      }
      writer.write(i - begin, stored.data(), mask.data());
    }
    writer.finish();
    paths.push_back(path);
  }
  return paths;
}

}  // namespace dpunet::data
