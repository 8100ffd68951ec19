// `dpunet bench ddp` (under mpirun): how much of the gradient all-reduce the bucketed
// reducer hides behind backward. Times, per step and on the slowest rank: backward alone,
// backward then one flat all-reduce of every gradient, and backward with the reducer;
// then the reducer's bucket all-reduces alone next to raw MPI_Allreduce of the same bytes,
// and the same all-reduces with every one checked across ranks first
// (distributed.check_collectives).
#include <iostream>

#include <torch/cuda.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "app/bench_commands.h"
#include "app/bench_timing.h"
#include "app/cli_checks.h"
#include "common/build_info.h"
#include "dist/checked_communicator.h"
#include "dist/context.h"
#include "dist/ddp.h"
#include "dist/make_communicator.h"
#include "model/unet.h"

namespace dpunet::app {
namespace {

struct BenchDdpArgs {
  std::string backend = "auto";
  std::string device = "cpu";
  int64_t size = 128;
  int64_t batch = 1;
  int threads = 1;
  int warmup = 1;
  int repeats = 5;
  double bucket_mb = 25;
  double first_bucket_mb = 1;
  double last_bucket_mb = 1;
};

struct Bench {
  dist::Context& context;
  dist::Communicator& comm;
  model::Unet net;
  torch::Tensor images, labels;

  void sync() {
    if (comm.device().is_cuda()) torch::cuda::synchronize();
  }
  torch::Tensor loss() { return torch::nn::functional::cross_entropy(net->forward(images), labels); }

  // The slowest rank's time for `timed`, after an untimed `prepare`.
  template <typename Prepare, typename Timed>
  double measure_once(Prepare prepare, Timed timed) {
    auto state = prepare();
    sync();
    comm.barrier();
    const double start = now_ms();
    timed(state);
    sync();
    return slowest_rank(now_ms() - start);
  }

  // Median over `repeats` of measure_once, after `warmup` untimed rounds.
  template <typename Prepare, typename Timed>
  double measure(const BenchDdpArgs& args, Prepare prepare, Timed timed) {
    std::vector<double> times;
    for (int i = 0; i < args.warmup + args.repeats; ++i) {
      const double ms = measure_once(prepare, timed);
      if (i >= args.warmup) times.push_back(ms);
    }
    return median_of(times);
  }
};

void zero_grads(torch::nn::Module& net) {
  torch::NoGradGuard no_grad;
  for (auto& p : net.parameters()) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
}

void run_bench_ddp(const BenchDdpArgs& args) {
  // The reference U-Net (3 channels in, 2 classes) must take the size and leave BatchNorm
  // values to normalise: said before MPI starts, not met as an ATen error in the first step.
  model::UnetOptions shape;
  shape.n_channels = 3;
  shape.n_classes = 2;
  check_bench_input(shape, args.size, args.batch, "bench ddp");
  const auto preference = args.device == "cuda" ? dist::DevicePreference::kCuda : dist::DevicePreference::kCpu;
  dist::Context context(preference);
  auto comm = dist::make_communicator(context, args.backend);
  torch::set_num_threads(args.threads);
  torch::manual_seed(0);
  const auto options = torch::TensorOptions().device(context.device());
  Bench b{context, *comm, model::Unet(/*n_channels=*/3, /*n_classes=*/2),
          torch::randn({args.batch, 3, args.size, args.size}, options),
          torch::randint(0, 2, {args.batch, args.size, args.size}, options.dtype(torch::kLong))};
  b.net->to(context.device());
  std::vector<torch::Tensor> params = b.net->parameters();
  int64_t numel = 0;
  for (const auto& p : params) numel += p.numel();

  dist::DdpOptions ddp_options;
  ddp_options.communicate_when_alone = true;  // the reducer is what is measured
  ddp_options.bucket_caps.bytes = static_cast<int64_t>(args.bucket_mb * (1 << 20));
  ddp_options.bucket_caps.first_bytes = static_cast<int64_t>(args.first_bucket_mb * (1 << 20));
  ddp_options.bucket_caps.last_bytes = static_cast<int64_t>(args.last_bucket_mb * (1 << 20));
  dist::DistributedDataParallel ddp(b.net.ptr(), *comm, ddp_options);

  auto forward = [&] {
    zero_grads(*b.net);
    return b.loss();
  };
  auto backward_alone = [&](torch::Tensor& loss) {
    auto local_only = ddp.no_sync();
    loss.backward();
  };
  double flat_ms = 0;
  auto backward_then_flat = [&](torch::Tensor& loss) {
    backward_alone(loss);
    std::vector<torch::Tensor> grads;
    for (const auto& p : params) grads.push_back(p.grad().reshape({-1}));
    torch::Tensor flat = torch::cat(grads);
    b.sync();
    // The all-reduce's own time: without the barrier, a rank that finished backward first
    // would count its wait for the slower one as communication.
    comm->barrier();
    const double start = now_ms();
    comm->all_reduce(flat, dist::ReduceOp::kAvg);
    b.sync();
    flat_ms = now_ms() - start;
    torch::NoGradGuard no_grad;
    int64_t offset = 0;
    for (auto& p : params) {
      p.mutable_grad().copy_(flat.narrow(0, offset, p.numel()).view(p.sizes()));
      offset += p.numel();
    }
  };
  auto backward_with_reducer = [&](torch::Tensor& loss) {
    loss.backward();
    ddp.synchronize();
  };
  // The three variants take turns within each repeat, so drift in a shared machine's
  // speed falls on all of them alike; the exposed time is taken per repeat.
  std::vector<double> backward_times, flat_step_times, flat_times, reducer_times, exposed_times;
  for (int i = 0; i < args.warmup + args.repeats; ++i) {
    const double alone = b.measure_once(forward, backward_alone);
    const double flat_step = b.measure_once(forward, backward_then_flat);
    const double flat = slowest_rank(flat_ms);
    const double reducer = b.measure_once(forward, backward_with_reducer);
    if (i < args.warmup) continue;
    backward_times.push_back(alone);
    flat_step_times.push_back(flat_step);
    flat_times.push_back(flat);
    reducer_times.push_back(reducer);
    exposed_times.push_back(reducer - alone);
  }
  const double backward_ms = median_of(backward_times);
  const double flat_step_ms = median_of(flat_step_times);
  const double flat_allreduce_ms = median_of(flat_times);
  const double reducer_step_ms = median_of(reducer_times);
  const double exposed_ms = median_of(exposed_times);

  // The reducer's collectives alone: the same buckets, all launched, then all waited,
  // averaging as the reducer does (raw MPI_Allreduce below only sums).
  std::vector<torch::Tensor> buckets;
  for (int64_t n : ddp.bucket_numels()) buckets.push_back(torch::ones({n}, options));
  auto all_buckets = [&](dist::Communicator& through) {
    std::vector<std::unique_ptr<dist::Work>> works;
    for (auto& t : buckets) works.push_back(through.all_reduce_async(t, dist::ReduceOp::kAvg));
    for (auto& w : works) w->wait();
  };
  dist::CheckedCommunicator checked(context, comm);
  std::vector<double> bucket_times, checked_times;  // taking turns, as above
  for (int i = 0; i < args.warmup + args.repeats; ++i) {
    const double plain = b.measure_once([] { return 0; }, [&](int) { all_buckets(*comm); });
    const double with_checks = b.measure_once([] { return 0; }, [&](int) { all_buckets(checked); });
    if (i < args.warmup) continue;
    bucket_times.push_back(plain);
    checked_times.push_back(with_checks);
  }
  const double buckets_ms = median_of(bucket_times), checked_ms = median_of(checked_times);
  std::vector<float> host(numel, 1.0f);
  const double raw_mpi_ms = b.measure(
      args, [] { return 0; },
      [&](int) {
        MPI_CHECK(
            MPI_Allreduce(MPI_IN_PLACE, host.data(), static_cast<int>(numel), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
      });

  if (!context.is_root()) return;
  const double bytes = numel * 4.0;
  const int n = context.world_size();
  nlohmann::json out = {{"benchmark", "ddp"},
                        {"backend", comm->backend()},
                        {"device", comm->device().str()},
                        {"world_size", n},
                        {"threads", args.threads},
                        {"input", {args.batch, 3, args.size, args.size}},
                        {"parameters", numel},
                        {"gradient_bytes", bytes},
                        {"bucket_numels", ddp.bucket_numels()},
                        {"backward_ms", backward_ms},
                        {"backward_flat_allreduce_ms", flat_step_ms},
                        {"flat_allreduce_ms", flat_allreduce_ms},
                        {"backward_reducer_ms", reducer_step_ms},
                        {"exposed_comm_ms", exposed_ms},
                        {"exposed_comm_ratio", exposed_ms / flat_allreduce_ms},
                        {"reducer_allreduce_ms", buckets_ms},
                        {"checked_allreduce_ms", checked_ms},
                        {"checks_ms_per_collective", (checked_ms - buckets_ms) / std::max<size_t>(buckets.size(), 1)},
                        {"raw_mpi_allreduce_ms", raw_mpi_ms},
                        {"reducer_busbw_gbps", allreduce_busbw_gbps(bytes, buckets_ms, n)},
                        {"raw_mpi_busbw_gbps", allreduce_busbw_gbps(bytes, raw_mpi_ms, n)},
                        {"busbw_ratio", raw_mpi_ms / buckets_ms},
                        {"torch_version", build_info().torch_version},
                        {"nccl_version", build_info().nccl_version}};
  std::cout << out.dump(2) << std::endl;
}

// The bounds distributed.bucket_mb has in a config: a cap in whole bytes that fits in int64.
CLI::Validator bucket_megabytes() {
  return number_from(0.001, 4096, "from 0.001 to 4096 MiB");
}

}  // namespace

void add_bench_ddp_command(CLI::App& bench) {
  auto args = std::make_shared<BenchDdpArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "ddp", "Exposed communication of the bucketed reducer over one U-Net backward (run under mpirun)");
  cmd->add_option("--backend", args->backend, "auto, mpi or nccl")->capture_default_str();
  cmd->add_option("--device", args->device, "cpu or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--size", args->size, "Input height and width")->capture_default_str()->check(at_least(1));
  cmd->add_option("--batch", args->batch, "Per-rank batch")->capture_default_str()->check(at_least(1));
  cmd->add_option("--threads", args->threads, "Intra-op CPU threads per rank")
      ->capture_default_str()
      ->check(at_least(1));
  cmd->add_option("--warmup", args->warmup, "Untimed steps per variant")->capture_default_str()->check(at_least(0));
  cmd->add_option("--repeats", args->repeats, "Timed steps per variant (median reported)")
      ->capture_default_str()
      ->check(at_least(1));
  cmd->add_option("--bucket-mb", args->bucket_mb, "Bucket size in MiB")
      ->capture_default_str()
      ->check(bucket_megabytes());
  cmd->add_option("--first-bucket-mb", args->first_bucket_mb, "First bucket size in MiB")
      ->capture_default_str()
      ->check(bucket_megabytes());
  cmd->add_option("--last-bucket-mb", args->last_bucket_mb, "Last bucket size in MiB")
      ->capture_default_str()
      ->check(bucket_megabytes());
  cmd->callback([args] { run_bench_ddp(*args); });
}

}  // namespace dpunet::app
