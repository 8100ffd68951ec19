// N ranks with b samples each must take exactly the step one process takes with N*b:
// same averaged gradients, same updated weights (1e-5 relative), however the gradients
// are bucketed, with checkpointing, with SyncBatchNorm, and with no_sync accumulation.
#include <torch/torch.h>
#include "support/catch.h"

#include <map>
#include <string>
#include <vector>

#include "dist/checked_communicator.h"
#include "dist/ddp.h"
#include "dist/mpi_communicator.h"
#include "dist/sync_batch_norm.h"
#include "support/ddp_fixture.h"
#include "support/mpi_test_context.h"
#include "support/tensor_compare.h"
#include "train/loss.h"

using namespace dpunet;
using dpunet::test::GlobalBatch;

namespace {

constexpr int64_t kPerRank = 2;
constexpr double kTolerance = 1e-5;

struct StepResult {
  std::map<std::string, torch::Tensor> grads;
  std::map<std::string, torch::Tensor> after;  // parameters and buffers after one SGD step
};

// Tiny buckets: many of them, and parameters larger than a bucket.
dist::DdpOptions small_buckets() {
  dist::DdpOptions options;
  options.bucket_caps.first_bytes = 1024;
  options.bucket_caps.bytes = 8 * 1024;
  options.bucket_caps.last_bytes = 1024;
  return options;
}

// `loss_scale` multiplies the loss: ranks that scale theirs differently (and so give a
// same-batch step different gradients) show that each rank's gradient is in the average.
StepResult single_process_step(model::Unet net, const GlobalBatch& batch, double loss_scale = 1.0) {
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1));
  sgd.zero_grad();
  (test::batch_loss(net, batch) * loss_scale).backward();
  StepResult result{test::gradients(*net), {}};
  sgd.step();
  result.after = test::state(*net);
  return result;
}

StepResult ddp_step(model::Unet net, dist::Communicator& comm, const GlobalBatch& share,
                    dist::DdpOptions options = small_buckets(), double loss_scale = 1.0) {
  dist::DistributedDataParallel ddp(net.ptr(), comm, options);
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1));
  (test::batch_loss(net, share) * loss_scale).backward();
  ddp.synchronize();
  StepResult result{test::gradients(*net), {}};
  sgd.step();
  result.after = test::state(*net);
  return result;
}

void require_same(const StepResult& actual, const StepResult& expected, double tolerance = kTolerance) {
  std::string worst;
  const double grad_error = test::max_relative_error(actual.grads, expected.grads, &worst);
  INFO("largest gradient error " << grad_error << " in " << worst);
  REQUIRE(grad_error <= tolerance);
  const double state_error = test::max_relative_error(actual.after, expected.after, &worst);
  INFO("largest error after the step " << state_error << " in " << worst);
  REQUIRE(state_error <= tolerance);
}

}  // namespace

TEST_CASE("DDP step on N ranks equals one process with N times the batch", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  const auto norm = GENERATE(model::Norm::kNone, model::Norm::kInstance);
  // min_memory also splits the skip convolutions: their weights are read twice, in parts.
  const std::string checkpointing = GENERATE("none", "all", "min_memory");
  INFO("norm " << model::to_string(norm) << ", checkpointing " << checkpointing);
  const GlobalBatch batch = test::make_global_batch(kPerRank, comm.world_size());
  auto configure = [&checkpointing](model::Unet& net) {
    if (checkpointing != "none") net->use_checkpointing(true, model::parse_checkpoint_policy(checkpointing));
  };

  model::Unet reference = test::make_small_unet(norm);
  configure(reference);
  const StepResult expected = single_process_step(reference, batch);

  model::Unet net = test::make_small_unet(norm);
  configure(net);
  require_same(ddp_step(net, comm, test::rank_share(batch, comm.rank(), comm.world_size())), expected);
}

TEST_CASE("DDP with the global batch's loss equals one process with N times the batch, and per-rank losses do not",
          "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  if (comm.world_size() < 2) return;
  const GlobalBatch batch = test::make_global_batch(kPerRank, comm.world_size());
  train::LossOptions loss;  // cross-entropy + Dice, as training uses them
  loss.class_weights = GENERATE(std::vector<double>{}, std::vector<double>{0.3, 2.0});
  INFO(loss.class_weights.size() << " class weights");
  model::Unet reference = test::make_small_unet(model::Norm::kNone);
  torch::optim::SGD reference_sgd(reference->parameters(), torch::optim::SGDOptions(0.1));
  train::segmentation_loss(reference->forward(batch.images), batch.labels, loss).backward();
  StepResult expected{test::gradients(*reference), {}};
  reference_sgd.step();
  expected.after = test::state(*reference);

  const GlobalBatch share = test::rank_share(batch, comm.rank(), comm.world_size());
  auto ddp_loss_step = [&](dist::Communicator* ranks) {
    model::Unet net = test::make_small_unet(model::Norm::kNone);
    dist::DistributedDataParallel ddp(net.ptr(), comm, small_buckets());
    torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1));
    train::LossOptions options = loss;
    options.global_batch = ranks;
    train::segmentation_loss(net->forward(share.images), share.labels, options).backward();
    ddp.synchronize();
    StepResult result{test::gradients(*net), {}};
    sgd.step();
    result.after = test::state(*net);
    return result;
  };
  // The output convolution's bias gradient sums the loss gradient over every pixel, and
  // its classes' entries cancel (softmax): float sums in another order (the loss's sums
  // here, over ranks) move it by up to about 2e-5 of its norm.
  constexpr double kDiceTolerance = 1e-4;
  require_same(ddp_loss_step(&comm), expected, kDiceTolerance);
  // Each rank's own loss, averaged, is another objective: its gradients differ by far more.
  CHECK(test::max_relative_error(ddp_loss_step(nullptr).grads, expected.grads) > 10 * kDiceTolerance);
}

TEST_CASE("DDP reduces the gradients of recomputed BatchNorm+ReLU outputs like the plain model's", "[mpi]") {
  // BatchNorm's statistics are per rank, so every rank takes the same batch, and rank r
  // scales its loss by r + 1: the average of the gradients is the one process's times
  // (world + 1) / 2 only if every rank's reached it. The gradients of the first norm and
  // the second convolution of every block come out of norm_relu_conv's node; each must
  // reach the reducer once.
  dist::MpiCommunicator comm(test::mpi_context());
  const GlobalBatch batch = test::make_global_batch(kPerRank, /*world=*/1);
  const StepResult expected =
      single_process_step(test::make_small_unet(model::Norm::kBatch), batch, (comm.world_size() + 1) / 2.0);
  model::Unet net = test::make_small_unet(model::Norm::kBatch);
  net->use_checkpointing(true, model::CheckpointPolicy::kNormRelu);
  REQUIRE(net->recomputes_norm_outputs());
  require_same(ddp_step(net, comm, batch, small_buckets(), comm.rank() + 1.0), expected);
}

TEST_CASE("DDP buckets: small first bucket, reverse registration order, oversize parameters alone", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  model::Unet net = test::make_small_unet(model::Norm::kNone);
  dist::DistributedDataParallel ddp(net.ptr(), comm, small_buckets());
  const auto buckets = ddp.bucket_parameter_names();
  REQUIRE(buckets.size() > 3);
  REQUIRE(buckets.front().front() == "outc.conv.bias");  // the last registered parameter
  // Every parameter once, in reverse registration order; each bucket within its cap (the
  // first and the last 1 KiB, the others 8 KiB) unless it holds one parameter larger
  // than the cap, which then has a bucket of its own.
  std::map<std::string, int64_t> bytes_of;
  std::vector<std::string> registered;
  for (const auto& p : net->named_parameters()) {
    bytes_of[p.key()] = p.value().numel() * p.value().element_size();
    registered.push_back(p.key());
  }
  std::vector<std::string> laid_out;
  int oversize = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    const int64_t cap = i == 0 || i + 1 == buckets.size() ? 1024 : 8 * 1024;
    int64_t bucket_bytes = 0;
    for (const auto& name : buckets[i]) {
      bucket_bytes += bytes_of.at(name);
      laid_out.push_back(name);
      if (bytes_of.at(name) > cap) {
        ++oversize;
        CHECK(buckets[i].size() == 1);
      }
    }
    INFO("bucket " << i << " of " << buckets.size() << ": " << bucket_bytes << " bytes");
    CHECK((bucket_bytes <= cap || buckets[i].size() == 1));
  }
  CHECK(oversize > 0);  // the small U-Net's wider convolutions exceed 8 KiB
  CHECK(laid_out == std::vector<std::string>(registered.rbegin(), registered.rend()));

  int64_t bytes = 0;
  for (const auto& p : net->parameters()) bytes += p.numel() * p.element_size();
  REQUIRE(bytes < (1 << 20));
  dist::DistributedDataParallel defaults(net.ptr(), comm);
  REQUIRE(defaults.bucket_parameter_names().size() == 1);  // all of it fits the 1 MiB tail bucket
}

namespace {

// Registers `head` before `body` but runs body first: backward readies head's gradients
// first, the opposite of reverse registration order.
struct OutOfOrderImpl : torch::nn::Module {
  OutOfOrderImpl() {
    head = register_module("head", torch::nn::Linear(16, 4));
    body = register_module("body", torch::nn::Linear(8, 16));
  }
  torch::Tensor forward(const torch::Tensor& x) { return head(torch::relu(body(x))); }
  torch::nn::Linear head{nullptr}, body{nullptr};
};
TORCH_MODULE(OutOfOrder);

}  // namespace

TEST_CASE("DDP rebuilds its buckets once, in the order gradients became ready", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  torch::manual_seed(0);
  OutOfOrder net, reference;
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < net->parameters().size(); ++i) reference->parameters()[i].copy_(net->parameters()[i]);
  }
  dist::DdpOptions options;
  options.bucket_caps = {/*first_bytes=*/64, /*bytes=*/64, /*last_bytes=*/64};  // a bucket per parameter
  dist::DistributedDataParallel ddp(net.ptr(), comm, options);
  REQUIRE(ddp.bucket_parameter_names().front().front() == "body.bias");  // reverse registration

  // Every rank the same batch, rank r's loss scaled by r + 1: the average is this
  // gradient times (world + 1) / 2 only if every bucket, rebuilt or not, was reduced.
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({3, 8});
  for (int step = 0; step < 3; ++step) {
    ddp.zero_grad();
    reference->zero_grad();
    (net(x).square().sum() * (comm.rank() + 1.0)).backward();
    ddp.synchronize();
    (reference(x).square().sum() * ((comm.world_size() + 1) / 2.0)).backward();
    // The step's gradients survive the move into the new buckets, and later steps reduce
    // into the new layout.
    INFO("step " << step);
    for (size_t i = 0; i < net->parameters().size(); ++i) {
      REQUIRE(torch::allclose(net->parameters()[i].grad(), reference->parameters()[i].grad(), 1e-5, 1e-6));
    }
    const auto buckets = ddp.bucket_parameter_names();
    REQUIRE(buckets.size() == 4);
    REQUIRE(buckets.front().front().rfind("head.", 0) == 0);  // head's gradients come first
    REQUIRE(buckets.back().front().rfind("body.", 0) == 0);
  }

  // A resumed run lays its buckets out as the checkpointed one had them before its first
  // step; an order that is not one of this model's parameters changes nothing.
  OutOfOrder resumed;
  dist::DistributedDataParallel restored(resumed.ptr(), comm, options);
  const auto reverse = restored.bucket_parameter_names();
  const int64_t params = static_cast<int64_t>(resumed->parameters().size());
  CHECK_FALSE(restored.restore_bucket_order({0}));
  CHECK_FALSE(restored.restore_bucket_order(std::vector<int64_t>(static_cast<size_t>(params), 0)));
  CHECK_FALSE(restored.restore_bucket_order({0, 1, 2, params}));
  CHECK(restored.bucket_parameter_names() == reverse);
  REQUIRE(restored.restore_bucket_order(ddp.bucket_order()));
  CHECK(restored.bucket_order() == ddp.bucket_order());
  CHECK(restored.bucket_parameter_names() == ddp.bucket_parameter_names());
  // Its first step finds gradients ready in that order: the layout stays.
  restored.zero_grad();
  (resumed(x).square().sum() * (comm.rank() + 1.0)).backward();
  restored.synchronize();
  CHECK(restored.bucket_parameter_names() == ddp.bucket_parameter_names());
}

namespace {

// MpiCommunicator that counts its all-gathers (SyncBatchNorm's statistics travel in them).
class CountingCommunicator : public dist::Communicator {
 public:
  explicit CountingCommunicator(std::shared_ptr<dist::Communicator> inner) : inner_(std::move(inner)) {}
  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  std::string backend() const override { return inner_->backend(); }
  c10::Device device() const override { return inner_->device(); }
  std::unique_ptr<dist::Work> all_reduce_async(const at::Tensor& t, dist::ReduceOp op) override {
    return inner_->all_reduce_async(t, op);
  }
  std::unique_ptr<dist::Work> broadcast_async(const at::Tensor& t, int root) override {
    return inner_->broadcast_async(t, root);
  }
  std::unique_ptr<dist::Work> all_gather_async(const at::Tensor& input, const at::Tensor& output) override {
    ++all_gathers;
    return inner_->all_gather_async(input, output);
  }
  void barrier() override { inner_->barrier(); }
  int64_t all_gathers = 0;

 private:
  std::shared_ptr<dist::Communicator> inner_;
};

}  // namespace

TEST_CASE("DDP with SyncBatchNorm equals BatchNorm on the whole batch", "[mpi]") {
  const bool checkpointing = GENERATE(false, true);
  // With every collective checked across ranks first (distributed.check_collectives):
  // SyncBatchNorm's all-gathers and the buckets' all-reduces, from autograd's hooks.
  const bool checked = GENERATE(false, true);
  INFO("checkpointing " << checkpointing << ", collectives checked " << checked);
  std::shared_ptr<dist::Communicator> mpi = std::make_shared<dist::MpiCommunicator>(test::mpi_context());
  if (checked) mpi = std::make_shared<dist::CheckedCommunicator>(test::mpi_context(), mpi);
  auto comm = std::make_shared<CountingCommunicator>(mpi);
  const GlobalBatch batch = test::make_global_batch(kPerRank, comm->world_size());
  const GlobalBatch share = test::rank_share(batch, comm->rank(), comm->world_size());
  const StepResult expected = single_process_step(test::make_small_unet(model::Norm::kBatch), batch);
  model::Unet net = test::make_small_unet(model::Norm::kSyncBatch, comm);
  if (checkpointing) net->use_checkpointing(true, model::CheckpointPolicy::kAll);
  // Running statistics come out of the reduction too, so compare them as well (the
  // checkpoint restores buffers after each recomputation; the count below is what shows
  // the recomputation took its statistics from the forward).
  require_same(ddp_step(net, *comm, share), expected);

  // One all-gather per SyncBatchNorm layer and step: a checkpointed block's
  // recomputation in backward reuses its forward's statistics instead of gathering again.
  // (None on one rank, whose own statistics are the batch's.)
  int64_t layers = 0;
  for (const auto& module : net->modules()) layers += module->as<dist::SyncBatchNorm>() != nullptr ? 1 : 0;
  REQUIRE(layers > 0);
  model::Unet fresh = test::make_small_unet(model::Norm::kSyncBatch, comm);
  if (checkpointing) fresh->use_checkpointing(true, model::CheckpointPolicy::kAll);
  comm->all_gathers = 0;
  test::batch_loss(fresh, share).backward();
  CHECK(comm->all_gathers == (comm->world_size() > 1 ? layers : 0));
  // One batch counted by each layer, the recomputation not a second one.
  for (const auto& module : fresh->modules()) {
    if (const auto* norm = module->as<dist::SyncBatchNorm>()) CHECK(norm->num_batches_tracked.item<int64_t>() == 1);
  }
}

TEST_CASE("DDP no_sync accumulation over micro-batches equals one big batch", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  constexpr int kMicroBatches = 3;
  const GlobalBatch batch = test::make_global_batch(kPerRank * kMicroBatches, comm.world_size());
  const StepResult expected = single_process_step(test::make_small_unet(model::Norm::kNone), batch);

  model::Unet net = test::make_small_unet(model::Norm::kNone);
  dist::DistributedDataParallel ddp(net.ptr(), comm, small_buckets());
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1));
  const GlobalBatch share = test::rank_share(batch, comm.rank(), comm.world_size());
  for (int k = 0; k < kMicroBatches; ++k) {
    const GlobalBatch micro = test::rank_share(share, k, kMicroBatches);
    if (k + 1 < kMicroBatches) {
      auto guard = ddp.no_sync();
      (test::batch_loss(net, micro) / kMicroBatches).backward();
    } else {
      (test::batch_loss(net, micro) / kMicroBatches).backward();
    }
  }
  ddp.synchronize();
  StepResult actual{test::gradients(*net), {}};
  sgd.step();
  actual.after = test::state(*net);
  require_same(actual, expected);
}

TEST_CASE("DDP keeps stepping correctly when the optimizer sets gradients to none", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  const GlobalBatch batch = test::make_global_batch(kPerRank, comm.world_size());
  model::Unet reference = test::make_small_unet(model::Norm::kNone);
  model::Unet net = test::make_small_unet(model::Norm::kNone);
  dist::DistributedDataParallel ddp(net.ptr(), comm, small_buckets());
  torch::optim::SGD ref_sgd(reference->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  const GlobalBatch share = test::rank_share(batch, comm.rank(), comm.world_size());
  for (int step = 0; step < 3; ++step) {
    ref_sgd.zero_grad();
    test::batch_loss(reference, batch).backward();
    ref_sgd.step();
    if (step == 1) {
      ddp.zero_grad();
    } else {
      sgd.zero_grad();  // set_to_none: the next backward must find its way back into the buckets
    }
    test::batch_loss(net, share).backward();
    ddp.synchronize();
    sgd.step();
  }
  std::string worst;
  const double error = test::max_relative_error(test::state(*net), test::state(*reference), &worst);
  INFO("largest error " << error << " in " << worst);
  REQUIRE(error <= kTolerance);
}

TEST_CASE("DDP bf16 and fp16 wire compression stay close to the exact average", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  const auto wire = GENERATE(dist::WireDtype::kBFloat16, dist::WireDtype::kFloat16);
  const GlobalBatch batch = test::make_global_batch(kPerRank, comm.world_size());
  model::Unet reference = test::make_small_unet(model::Norm::kNone);
  test::batch_loss(reference, batch).backward();
  const auto expected = test::gradients(*reference);

  model::Unet net = test::make_small_unet(model::Norm::kNone);
  dist::DdpOptions options = small_buckets();
  options.wire_dtype = wire;
  dist::DistributedDataParallel ddp(net.ptr(), comm, options);
  test::batch_loss(net, test::rank_share(batch, comm.rank(), comm.world_size())).backward();
  ddp.synchronize();
  const auto actual = test::gradients(*net);
  double error = 0;
  if (wire == dist::WireDtype::kBFloat16) {
    // bf16 keeps float32's range: every tensor is close on its own.
    std::string worst;
    error = test::max_relative_error(actual, expected, &worst);
    INFO("largest relative gradient error " << error << " in " << worst);
    REQUIRE(error < 1e-2);
  } else {
    // fp16 flushes gradients below ~6e-8 to zero (this model has tensors of 3e-7), as
    // fp16 compression does in any framework: judge the gradient as a whole.
    std::vector<torch::Tensor> mine, exact;
    for (const auto& [name, g] : expected) {
      exact.push_back(g.flatten());
      mine.push_back(actual.at(name).flatten());
    }
    error = test::relative_error(torch::cat(mine), torch::cat(exact));
    INFO("relative error of the whole gradient " << error);
    REQUIRE(error < 2e-3);
  }
  REQUIRE(error > 0);  // the wire really was narrower than float32
}
