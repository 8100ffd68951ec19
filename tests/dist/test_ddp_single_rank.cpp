// DistributedDataParallel at world size 1: no collective is launched or waited for (so a
// single-GPU step never blocks the host), and the gradients are exactly plain backward's.
#include <torch/torch.h>
#include "support/catch.h"

#include "dist/communicator.h"
#include "dist/ddp.h"

using namespace dpunet;

namespace {

// A world of one that counts the all-reduces it is asked for.
class LoneCommunicator : public dist::Communicator {
 public:
  int all_reduces = 0;

  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "lone"; }
  c10::Device device() const override { return c10::Device(c10::kCPU); }
  std::unique_ptr<dist::Work> all_reduce_async(const at::Tensor& /*tensor*/, dist::ReduceOp /*op*/) override {
    ++all_reduces;
    return done();
  }
  std::unique_ptr<dist::Work> broadcast_async(const at::Tensor& /*tensor*/, int /*root*/) override { return done(); }
  std::unique_ptr<dist::Work> all_gather_async(const at::Tensor& input, const at::Tensor& output) override {
    output.copy_(input.reshape(output.sizes()));
    return done();
  }
  void barrier() override {}

 private:
  struct Done : dist::Work {
    void wait() override {}
  };
  static std::unique_ptr<dist::Work> done() { return std::make_unique<Done>(); }
};

torch::nn::Sequential make_model() {
  torch::manual_seed(0);
  return torch::nn::Sequential(torch::nn::Linear(8, 16), torch::nn::ReLU(), torch::nn::Linear(16, 4));
}

}  // namespace

TEST_CASE("DDP on one rank launches no collective unless asked, and changes no gradient", "[dist]") {
  const bool communicate = GENERATE(false, true);
  INFO("communicate_when_alone " << communicate);
  auto net = make_model();
  auto reference = make_model();
  LoneCommunicator comm;
  dist::DdpOptions options;
  options.wire_dtype = dist::WireDtype::kBFloat16;  // would round the gradients if it ran
  options.communicate_when_alone = communicate;
  dist::DistributedDataParallel ddp(net.ptr(), comm, options);
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({5, 8});
  for (int step = 0; step < 2; ++step) {
    ddp.zero_grad();
    reference->zero_grad();
    net->forward(x).square().sum().backward();
    ddp.synchronize();
    reference->forward(x).square().sum().backward();
  }
  CHECK(comm.all_reduces == (communicate ? 2 * static_cast<int>(ddp.bucket_numels().size()) : 0));
  for (size_t i = 0; i < net->parameters().size(); ++i) {
    const torch::Tensor plain = reference->parameters()[i].grad();
    // Asked to communicate, the gradients went through the bf16 wire and came back.
    const torch::Tensor expected = communicate ? plain.to(torch::kBFloat16).to(plain.scalar_type()) : plain;
    CHECK(torch::equal(net->parameters()[i].grad(), expected));
  }
}

TEST_CASE("zero_grad zeroes a gradient replaced after the step, and the next backward lands in its bucket", "[dist]") {
  auto net = make_model();
  LoneCommunicator comm;
  dist::DistributedDataParallel ddp(net.ptr(), comm, dist::DdpOptions{});
  const torch::Tensor x = torch::randn({5, 8});
  net->forward(x).sum().backward();
  ddp.synchronize();
  torch::Tensor& grad = net->parameters()[0].mutable_grad();
  grad = grad.clamp(-1e-3, 1e-3);  // a new tensor, outside the bucket
  ddp.zero_grad();
  for (const auto& p : net->parameters()) CHECK(p.grad().abs().max().item<float>() == 0.0f);
  net->forward(x).sum().backward();
  ddp.synchronize();
  auto reference = make_model();
  reference->forward(x).sum().backward();
  for (size_t i = 0; i < net->parameters().size(); ++i) {
    CHECK(torch::equal(net->parameters()[i].grad(), reference->parameters()[i].grad()));
  }
}

TEST_CASE("DDP refuses zero_grad and a new bucket layout between a backward and its synchronize", "[dist]") {
  auto net = make_model();
  LoneCommunicator comm;
  dist::DistributedDataParallel ddp(net.ptr(), comm, dist::DdpOptions{});
  const std::vector<int64_t> layout = ddp.bucket_order();
  const torch::Tensor x = torch::randn({5, 8});
  net->forward(x).sum().backward();
  // The buckets' all-reduces may be in flight: zeroing them would race with the reduction.
  CHECK_THROWS_WITH(ddp.zero_grad(), HasSubstr("zero_grad() between a backward and its synchronize()"));
  ddp.synchronize();
  ddp.zero_grad();

  // Micro-batches accumulated under no_sync before the first step: a new layout would
  // forget they were used (and call them unused at synchronize()).
  auto fresh_net = make_model();
  dist::DistributedDataParallel fresh(fresh_net.ptr(), comm, dist::DdpOptions{});
  {
    auto local_only = fresh.no_sync();
    fresh_net->forward(x).sum().backward();
    CHECK_THROWS_WITH(fresh.restore_bucket_order(layout), HasSubstr("only before the first step"));
  }
  CHECK_THROWS_WITH(fresh.restore_bucket_order(layout), HasSubstr("only before the first step"));
  fresh_net->forward(x).sum().backward();
  fresh.synchronize();  // every parameter counted as used
}

TEST_CASE("A DDP that fails to start leaves no hook on the model's parameters", "[dist]") {
  auto net = make_model();
  // A parameter computed from another tensor has no gradient accumulator to hook; held by
  // a module after the layers, so the layers' hooks are added before it fails.
  auto holder = std::make_shared<torch::nn::Module>();
  holder->register_parameter("derived", torch::ones({2}, torch::requires_grad()) * 2);
  net->register_module("later", holder);
  LoneCommunicator comm;
  // A graph built before holds the layers' gradient accumulators (which the parameters
  // only reference weakly), as a step in flight does: hooks left on them would stay.
  const torch::Tensor x = torch::randn({5, 8});
  torch::Tensor pending = net->forward(x).sum();
  CHECK_THROWS_WITH(dist::DistributedDataParallel(net.ptr(), comm, dist::DdpOptions{}),
                    HasSubstr("'later.derived' is computed from other tensors"));
  // The layers' hooks were added before the failure: a backward would call the freed reducer.
  for (const auto& item : net->named_parameters()) {
    if (item.key() == "later.derived") continue;
    INFO(item.key());
    const auto accumulator = torch::autograd::impl::grad_accumulator(item.value());
    REQUIRE(accumulator != nullptr);
    CHECK(accumulator->post_hooks().empty());
  }
  // (The start laid the weights out anew, in place: that graph is stale.)
  pending = torch::Tensor();
  net->forward(x).sum().backward();
  CHECK(comm.all_reduces == 0);
  auto reference = make_model();
  reference->forward(x).sum().backward();
  const auto expected = reference->named_parameters();
  for (const auto& item : net->named_parameters()) {
    if (item.key() == "later.derived") continue;
    INFO(item.key());
    CHECK(torch::equal(item.value().grad(), expected[item.key()].grad()));
  }
}
