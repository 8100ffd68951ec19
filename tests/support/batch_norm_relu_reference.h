// The fused BatchNorm+ReLU kernels on the host: walks their grid (blocks, threads, the
// rows and 8-channel vectors each thread takes) with the kernels' own split and formulas
// (model/batch_norm_relu_math.h), summing in the order the kernels sum, so a build
// without a GPU checks that arithmetic against ATen. Not bit-exact: the device's last
// reduction (a tree over threads, in double) is a sequential double sum here, and nvcc
// contracts multiply-adds that the host compiler leaves apart.
#pragma once

#include <cstdint>
#include <vector>

namespace dpunet::test {

// An NHWC map as the kernels see it: `rows` = N*H*W rows of `channels` values.
struct NormReluMap {
  int64_t rows = 0, channels = 0;
  std::vector<float> values;
};

struct NormReluLayer {
  std::vector<float> weight, bias, running_mean, running_var;  // running stats are updated
  double momentum = 0.1, eps = 1e-5;
};

struct NormReluForward {
  std::vector<float> y, save_mean, save_invstd;
};
NormReluForward batch_norm_relu_forward_reference(const NormReluMap& x, NormReluLayer& layer, int multiprocessors);

struct NormReluBackward {
  std::vector<float> dx, dweight, dbias;
};
NormReluBackward batch_norm_relu_backward_reference(const NormReluMap& x, const std::vector<float>& dy,
                                                    const NormReluLayer& layer, const NormReluForward& forward,
                                                    int multiprocessors);

}  // namespace dpunet::test
