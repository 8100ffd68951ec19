// The kernels of model/batch_norm_relu_kernels.cu, one loop per level of their grid.
#include "support/batch_norm_relu_reference.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "model/batch_norm_relu_math.h"

namespace dpunet::test {
namespace {

using model::cuda::Affine;
using model::cuda::kNormThreads;
using model::cuda::kNormVector;

struct Sums {
  std::vector<double> first, second;
};

// What statistics_partial / backward_partial and the finalize kernels add up per
// channel: each thread (a row offset r of its block) sums `term` over its rows in float,
// the block adds its threads' sums in row-offset order (write_block_partial), and the
// blocks' partials are added in double. `term(row, channel, first, second)` adds one
// value's contribution.
template <typename Term>
Sums reduce(int64_t rows, int64_t channels, int multiprocessors, Term term) {
  const model::cuda::ReductionSplit s = model::cuda::reduction_split(rows, channels, multiprocessors);
  Sums sums{std::vector<double>(channels, 0.0), std::vector<double>(channels, 0.0)};
  for (int block = 0; block < s.blocks; ++block) {
    const int64_t begin = block * s.chunk;
    const int64_t end = std::min(rows, begin + s.chunk);
    std::vector<float> block_first(channels, 0.f), block_second(channels, 0.f);
    for (int r = 0; r < s.rows_per_pass; ++r) {
      std::vector<float> first(channels, 0.f), second(channels, 0.f);
      for (int64_t row = begin + r; row < end; row += s.rows_per_pass) {
        for (int64_t c = 0; c < channels; ++c) term(row, c, first[c], second[c]);
      }
      for (int64_t c = 0; c < channels; ++c) {
        block_first[c] += first[c];
        block_second[c] += second[c];
      }
    }
    for (int64_t c = 0; c < channels; ++c) {
      sums.first[c] += block_first[c];
      sums.second[c] += block_second[c];
    }
  }
  return sums;
}

// The apply kernels' walk: thread t of the grid starts at vector t and strides by the
// grid's size, with the coefficients of the channels its first vector holds.
// `apply(value_index, channel_of_its_first_vector)` writes one value.
template <typename Apply>
void for_each_applied(int64_t rows, int64_t channels, int multiprocessors, Apply apply) {
  const int64_t vectors = rows * channels / kNormVector;
  const int64_t threads = int64_t{model::cuda::apply_blocks(vectors, channels, multiprocessors)} * kNormThreads;
  for (int64_t t = 0; t < threads; ++t) {
    const int64_t c0 = (t * kNormVector) % channels;
    for (int64_t v = t; v < vectors; v += threads) {
      for (int k = 0; k < kNormVector; ++k) apply(v * kNormVector + k, c0 + k);
    }
  }
}

std::vector<Affine> affines(const NormReluLayer& layer, const NormReluForward& forward) {
  std::vector<Affine> a;
  for (size_t c = 0; c < layer.weight.size(); ++c) {
    a.push_back(model::cuda::affine(forward.save_mean[c], forward.save_invstd[c], layer.weight[c], layer.bias[c]));
  }
  return a;
}

}  // namespace

NormReluForward batch_norm_relu_forward_reference(const NormReluMap& x, NormReluLayer& layer, int multiprocessors) {
  const int64_t channels = x.channels;
  const std::vector<float> shift(x.values.begin(), x.values.begin() + channels);  // the first row
  const Sums sums = reduce(x.rows, channels, multiprocessors, [&](int64_t row, int64_t c, float& sum, float& squares) {
    const float d = x.values[row * channels + c] - shift[c];
    sum += d;
    squares = std::fma(d, d, squares);
  });
  NormReluForward out;
  for (int64_t c = 0; c < channels; ++c) {
    const auto s =
        model::cuda::channel_statistics(sums.first[c], sums.second[c], shift[c], static_cast<double>(x.rows), layer.eps,
                                        layer.momentum, layer.running_mean[c], layer.running_var[c]);
    out.save_mean.push_back(s.save_mean);
    out.save_invstd.push_back(s.save_invstd);
    layer.running_mean[c] = s.running_mean;
    layer.running_var[c] = s.running_var;
  }
  const std::vector<Affine> a = affines(layer, out);
  out.y.assign(x.values.size(), 0.f);
  for_each_applied(x.rows, channels, multiprocessors, [&](int64_t i, int64_t c) {
    const float z = model::cuda::pre_relu(x.values[i], a[c]);
    out.y[i] = model::cuda::relu_passes(z) ? z : 0.f;
  });
  return out;
}

NormReluBackward batch_norm_relu_backward_reference(const NormReluMap& x, const std::vector<float>& dy,
                                                    const NormReluLayer& layer, const NormReluForward& forward,
                                                    int multiprocessors) {
  const int64_t channels = x.channels;
  const std::vector<Affine> a = affines(layer, forward);
  const Sums sums = reduce(x.rows, channels, multiprocessors, [&](int64_t row, int64_t c, float& sum, float& dot) {
    const int64_t i = row * channels + c;
    const float grad = model::cuda::masked_gradient(x.values[i], dy[i], a[c]);
    sum += grad;
    dot = std::fma(grad, model::cuda::normalised(x.values[i], forward.save_mean[c], forward.save_invstd[c]), dot);
  });
  NormReluBackward out;
  std::vector<model::cuda::BackwardGains> gains;
  const float inv_rows = 1.0f / static_cast<float>(x.rows);
  for (int64_t c = 0; c < channels; ++c) {
    out.dbias.push_back(static_cast<float>(sums.first[c]));
    out.dweight.push_back(static_cast<float>(sums.second[c]));
    gains.push_back(model::cuda::backward_gains(forward.save_mean[c], forward.save_invstd[c], layer.weight[c],
                                                out.dweight[c], out.dbias[c], inv_rows));
  }
  out.dx.assign(x.values.size(), 0.f);
  for_each_applied(x.rows, channels, multiprocessors, [&](int64_t i, int64_t c) {
    out.dx[i] = model::cuda::input_gradient(x.values[i], dy[i], a[c], gains[c]);
  });
  return out;
}

}  // namespace dpunet::test
