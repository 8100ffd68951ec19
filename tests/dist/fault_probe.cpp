// A small data-parallel training program that misbehaves on purpose, run under mpirun by
// test_fault_handling.cpp:  fault_probe <mode> <bad rank>
//   ok        nothing goes wrong
//   throw     the bad rank throws an error in its second step
//   exit      the bad rank exits (without MPI_Finalize) in its second step
//   stall     the bad rank stops communicating in its second step (the others time out)
//   stall-inline  the same, with collectives made on the caller's thread (as without
//                 MPI_THREAD_MULTIPLE), where the others block inside MPI
//   mismatch  the bad rank builds a different model
//   extra-collective  the bad rank issues one more all-reduce in the middle of its second
//                     backward (the buckets of the last layer in flight), with the
//                     collectives checked across ranks (distributed.check_collectives)
//   suspend   the bad rank holds back 2 s in its second step, saying so, while the others
//             wait in an all-reduce (the test suspends the whole job meanwhile)
//   nccl-stall  (one rank, one GPU) an NCCL all-reduce queued behind a stream that never
//               runs on: the host must not block on it, and the watchdog must end the run
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <torch/torch.h>

#include "common/error.h"
#include "dist/checked_communicator.h"
#include "dist/context.h"
#include "dist/ddp.h"
#include "dist/make_communicator.h"
#include "dist/mpi_communicator.h"

#ifdef DPUNET_WITH_NCCL
#include <cuda_runtime.h>

#include <c10/cuda/CUDAStream.h>
#endif

namespace {

#ifdef DPUNET_WITH_NCCL
// Holds the stream it is queued on for good: nothing after it on that stream ever runs.
void CUDART_CB block_forever(void*) {
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

void stall_nccl(int argc, char** argv) {
  dpunet::dist::Context context(&argc, &argv, dpunet::dist::DevicePreference::kCuda);
  dpunet::dist::CommunicatorOptions options;
  options.timeout = std::chrono::seconds(1);
  options.abort_grace = std::chrono::seconds(2);
  auto comm = dpunet::dist::make_communicator(context, "nccl", options);
  const torch::Tensor t = torch::ones({1024}, torch::TensorOptions().device(comm->device()));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(comm->device().index()).stream();
  DPUNET_CHECK(cudaLaunchHostFunc(stream, block_forever, nullptr) == cudaSuccess, "cudaLaunchHostFunc failed");
  comm->all_reduce_async(t, dpunet::dist::ReduceOp::kSum)->wait_on_stream();
  std::printf("queued without blocking\n");
  std::fflush(stdout);
  // Blocks for good; the watchdog reports the stall and ends the process.
  DPUNET_CHECK(cudaStreamSynchronize(stream) == cudaSuccess, "cudaStreamSynchronize failed");
  comm->raise_pending_failure();
  DPUNET_FAIL("the stalled all-reduce was not reported");
}
#endif

void run(int argc, char** argv) {
  DPUNET_CHECK(argc == 3,
               "usage: fault_probe ok|throw|exit|stall|stall-inline|mismatch|extra-collective|suspend|"
               "nccl-stall <rank>");
  std::string mode = argv[1];
  const int bad_rank = std::atoi(argv[2]);
  if (mode == "nccl-stall") {
#ifdef DPUNET_WITH_NCCL
    return stall_nccl(argc, argv);
#else
    DPUNET_FAIL("nccl-stall needs a build with NCCL");
#endif
  }
  dpunet::dist::Context context(&argc, &argv, dpunet::dist::DevicePreference::kCpu);
  dpunet::dist::MpiCommunicatorOptions options;
  options.timeout = std::chrono::seconds(3);
  if (mode == "stall-inline") {
    options.background_thread = false;
    mode = "stall";
  }
  auto mpi = std::make_shared<dpunet::dist::MpiCommunicator>(context, options);
  std::shared_ptr<dpunet::dist::Communicator> checked;
  if (mode == "extra-collective") checked = std::make_shared<dpunet::dist::CheckedCommunicator>(context, mpi);
  dpunet::dist::Communicator& comm = checked ? *checked : *mpi;
  const bool bad = context.rank() == bad_rank;

  torch::manual_seed(0);
  const int64_t width = (mode == "mismatch" && bad) ? 9 : 8;
  auto net = std::make_shared<torch::nn::SequentialImpl>(torch::nn::Linear(16, width), torch::nn::ReLU(),
                                                         torch::nn::Linear(width, 1));
  dpunet::dist::DdpOptions ddp_options;
  if (mode == "extra-collective") {
    // One bucket per parameter: the last layer's are reduced while backward goes on.
    ddp_options.bucket_caps.first_bytes = ddp_options.bucket_caps.bytes = ddp_options.bucket_caps.last_bytes = 4;
  }
  dpunet::dist::DistributedDataParallel ddp(net, comm, ddp_options);
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.01));
  bool extra_now = false;
  if (mode == "extra-collective" && bad) {
    // The first layer's gradient comes last in backward, after the last layer's buckets.
    net->parameters().front().register_hook([&](const torch::Tensor& grad) {
      if (extra_now) comm.all_reduce(torch::ones({3}), dpunet::dist::ReduceOp::kSum);
      return grad;
    });
  }
  for (int step = 0; step < 4; ++step) {
    extra_now = bad && step == 1;
    if (bad && step == 1) {
      if (mode == "throw") DPUNET_FAIL("injected failure in step ", step);
      if (mode == "exit") std::exit(3);
      if (mode == "stall") std::this_thread::sleep_for(std::chrono::seconds(60));
      if (mode == "suspend") {
        std::fprintf(stderr, "holding back\n");
        std::fflush(stderr);
        std::this_thread::sleep_for(std::chrono::seconds(2));
      }
    }
    net->forward(torch::randn({8, 16})).square().mean().backward();
    ddp.synchronize();
    sgd.step();
  }
  comm.barrier();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    run(argc, argv);
  } catch (const dpunet::AgreedError& e) {
    return dpunet::dist::report_agreed_error(e);
  } catch (const std::exception& e) {
    return dpunet::dist::report_fatal_error(e.what());
  }
  return 0;
}
