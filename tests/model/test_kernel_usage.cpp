// KernelUsage: while a recorder is active on the thread, every BatchNorm+ReLU, pooling and
// concatenation of a U-Net counts once, as dpunet's kernel or ATen's; nothing otherwise.
#include <torch/torch.h>
#include "support/catch.h"

#include "model/kernel_usage.h"
#include "model/unet.h"

using dpunet::model::KernelUsage;

TEST_CASE("a kernel usage recorder counts each layer's choice while it is active", "[model]") {
  dpunet::model::UnetOptions o;
  o.base_channels = 8;
  o.depth = 2;
  dpunet::model::Unet net(o);
  const torch::Tensor x = torch::randn({1, 1, 16, 16});
  KernelUsage outer, inner;
  {
    const KernelUsage::Scope recording(outer);
    {
      const KernelUsage::Scope nested(inner);
      net->forward(x);
    }
    net->forward(x);  // the outer recorder is active again
    torch::NoGradGuard no_grad;
    net->forward(x);  // no backward follows: the concatenations are not counted
  }
  net->forward(x);  // no recorder: nothing counted
  // Depth 2: five DoubleConvs of two BatchNorms each, two poolings, two concatenations.
  CHECK(inner.norm_relu.aten == 10);
  CHECK(inner.max_pool.aten == 2);
  CHECK(inner.concat.aten == 2);
  CHECK(outer.norm_relu.aten == 20);
  CHECK(outer.max_pool.aten == 4);
  CHECK(outer.concat.aten == 2);
  CHECK(outer.norm_relu.ours + outer.max_pool.ours + outer.concat.ours == 0);  // the CPU takes ATen's
}
