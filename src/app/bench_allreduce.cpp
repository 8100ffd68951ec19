// `dpunet bench allreduce` (under mpirun): time and bus bandwidth of the communicator's
// all-reduce for sizes from 1 KB to 256 MB, next to raw MPI_Allreduce of the same bytes.
#include <algorithm>
#include <climits>
#include <iostream>

#include <torch/cuda.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "app/bench_commands.h"
#include "app/bench_timing.h"
#include "app/cli_checks.h"
#include "common/build_info.h"
#include "dist/context.h"
#include "dist/make_communicator.h"

namespace dpunet::app {
namespace {

struct BenchAllreduceArgs {
  std::string backend = "auto";
  std::string device = "auto";
  int64_t min_bytes = int64_t{1} << 10;
  int64_t max_bytes = int64_t{256} << 20;
  int64_t factor = 4;
  int warmup = 2;
};

// Enough repetitions to time small messages, few for large ones.
int repetitions(int64_t bytes) {
  return static_cast<int>(std::clamp<int64_t>((int64_t{64} << 20) / bytes, 3, 200));
}

// On a GPU the repetitions are queued back to back and the device synchronised once, as
// nccl-tests times them: a host wait per all-reduce would time its polling instead of
// small messages. On CPU, wait_on_stream() is the blocking wait.
double time_backend(dist::Communicator& comm, const torch::Tensor& data, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) comm.all_reduce_async(data, dist::ReduceOp::kSum)->wait_on_stream();
  if (data.is_cuda()) torch::cuda::synchronize();
  comm.raise_pending_failure();
  comm.barrier();
  const double start = now_ms();
  for (int i = 0; i < reps; ++i) comm.all_reduce_async(data, dist::ReduceOp::kSum)->wait_on_stream();
  if (data.is_cuda()) torch::cuda::synchronize();
  const double elapsed = now_ms() - start;
  comm.raise_pending_failure();
  return slowest_rank(elapsed / reps);
}

// MPI counts elements in int: past 2^31 - 1 floats (8 GiB) the message goes in pieces,
// as the MPI communicator sends it.
void raw_mpi_allreduce(std::vector<float>& host) {
  const int64_t total = static_cast<int64_t>(host.size());
  for (int64_t start = 0; start < total; start += INT_MAX) {
    const int count = static_cast<int>(std::min<int64_t>(INT_MAX, total - start));
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, host.data() + start, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
  }
}

double time_raw_mpi(std::vector<float>& host, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) raw_mpi_allreduce(host);
  MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
  const double start = now_ms();
  for (int i = 0; i < reps; ++i) raw_mpi_allreduce(host);
  return slowest_rank((now_ms() - start) / reps);
}

void run_bench_allreduce(const BenchAllreduceArgs& args) {
  DPUNET_CHECK(args.min_bytes >= 4 && args.max_bytes >= args.min_bytes && args.factor >= 2,
               "bench allreduce: need 4 <= --min-bytes <= --max-bytes and --factor >= 2");
  DPUNET_CHECK(args.min_bytes % 4 == 0, "bench allreduce: --min-bytes ", args.min_bytes,
               " is not a whole number of float32 values (4 bytes each)");
  const auto preference = args.device == "cpu"    ? dist::DevicePreference::kCpu
                          : args.device == "cuda" ? dist::DevicePreference::kCuda
                                                  : dist::DevicePreference::kAuto;
  DPUNET_CHECK(args.device == "auto" || args.device == "cpu" || args.device == "cuda",
               "bench allreduce: --device must be auto, cpu or cuda, got '", args.device, "'");
  dist::Context context(preference);
  auto comm = dist::make_communicator(context, args.backend);
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t bytes = args.min_bytes;;) {
    const int64_t count = bytes / 4;
    const int reps = repetitions(bytes);
    const torch::Tensor data = torch::ones({count}, torch::TensorOptions().device(comm->device()));
    std::vector<float> host(count, 1.0f);
    const double backend_ms = time_backend(*comm, data, args.warmup, reps);
    const double mpi_ms = time_raw_mpi(host, args.warmup, reps);
    const int n = context.world_size();
    rows.push_back({{"bytes", count * 4},
                    {"repetitions", reps},
                    {"backend_us", backend_ms * 1e3},
                    {"backend_busbw_gbps", allreduce_busbw_gbps(count * 4.0, backend_ms, n)},
                    {"mpi_us", mpi_ms * 1e3},
                    {"mpi_busbw_gbps", allreduce_busbw_gbps(count * 4.0, mpi_ms, n)},
                    {"time_ratio", backend_ms / mpi_ms}});
    // The next size would pass --max-bytes (asked so, it cannot overflow).
    if (bytes > args.max_bytes / args.factor) break;
    bytes *= args.factor;
  }
  if (!context.is_root()) return;
  nlohmann::json out = {{"benchmark", "allreduce"},
                        {"backend", comm->backend()},
                        {"device", comm->device().str()},
                        {"world_size", context.world_size()},
                        {"dtype", "float32"},
                        {"torch_version", build_info().torch_version},
                        {"nccl_version", build_info().nccl_version},
                        {"results", rows}};
  std::cout << out.dump(2) << std::endl;
}

}  // namespace

void add_bench_allreduce_command(CLI::App& bench) {
  auto args = std::make_shared<BenchAllreduceArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "allreduce", "All-reduce time and bus bandwidth, the communicator next to raw MPI_Allreduce (run under mpirun)");
  cmd->add_option("--backend", args->backend, "auto, mpi or nccl")->capture_default_str();
  cmd->add_option("--device", args->device, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--min-bytes", args->min_bytes, "Smallest message")->capture_default_str()->check(at_least(4));
  cmd->add_option("--max-bytes", args->max_bytes, "Largest message")->capture_default_str()->check(at_least(4));
  cmd->add_option("--factor", args->factor, "Size step")->capture_default_str()->check(at_least(2));
  cmd->add_option("--warmup", args->warmup, "Untimed all-reduces per size")->capture_default_str()->check(at_least(0));
  cmd->callback([args] { run_bench_allreduce(*args); });
}

}  // namespace dpunet::app
