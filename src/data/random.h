// A small, fully specified random generator for the data pipeline. The standard
// library's distributions differ between implementations; shuffles and augmentations
// must not, or a run would not replay exactly on another machine. Integer and uniform
// draws (shuffles, crops, flips) are exact everywhere; normal draws and the transforms
// that use log, sin, pow or exp may differ in the last bit under another C library.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>

namespace dpunet::data {

// SplitMix64 finaliser: a good 64-bit mix, used to derive seeds.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// One seed from several integers, e.g. (seed, epoch, sample).
inline uint64_t derive_seed(std::initializer_list<uint64_t> parts) {
  uint64_t h = 0x6A09E667F3BCC909ull;
  for (uint64_t p : parts) h = mix64(h ^ mix64(p));
  return h;
}

// xoshiro256** seeded through SplitMix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : state_) s = seed = mix64(seed);
  }

  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double low, double high) { return low + (high - low) * uniform(); }
  // Uniform integer in [0, n), unbiased (rejection sampling).
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x = next();
    while (x >= limit) x = next();
    return x % n;
  }
  bool chance(double probability) { return probability > 0 && uniform() < probability; }
  // Standard normal (Box-Muller; one value per call keeps the stream simple).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // Two independent standard normals from one Box-Muller draw: half the cost per value,
  // for filling whole images with noise.
  void normal_pair(float& a, float& b) {
    const double u1 = 1.0 - uniform();
    const double angle = 6.283185307179586 * uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    a = static_cast<float>(radius * std::cos(angle));
    b = static_cast<float>(radius * std::sin(angle));
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace dpunet::data
