// A small data-parallel training program that misbehaves on purpose, run under mpirun by
// test_fault_handling.cpp:  fault_probe <mode> <bad rank>
//   ok        nothing goes wrong
//   throw     the bad rank throws an error in its second step
//   exit      the bad rank exits (without MPI_Finalize) in its second step
//   stall     the bad rank stops communicating in its second step (the others time out)
//   mismatch  the bad rank builds a different model
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include <torch/torch.h>

#include "common/error.h"
#include "dist/context.h"
#include "dist/ddp.h"
#include "dist/mpi_communicator.h"

namespace {

void run(int argc, char** argv) {
  DPUNET_CHECK(argc == 3, "usage: fault_probe ok|throw|exit|stall|mismatch <rank>");
  const std::string mode = argv[1];
  const int bad_rank = std::atoi(argv[2]);
  dpunet::dist::Context context(&argc, &argv, dpunet::dist::DevicePreference::kCpu);
  dpunet::dist::MpiCommunicatorOptions options;
  options.timeout = std::chrono::seconds(3);
  dpunet::dist::MpiCommunicator comm(context, options);
  const bool bad = context.rank() == bad_rank;

  torch::manual_seed(0);
  const int64_t width = (mode == "mismatch" && bad) ? 9 : 8;
  auto net = std::make_shared<torch::nn::SequentialImpl>(torch::nn::Linear(16, width), torch::nn::ReLU(),
                                                         torch::nn::Linear(width, 1));
  dpunet::dist::DistributedDataParallel ddp(net, comm);
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.01));
  for (int step = 0; step < 4; ++step) {
    if (bad && step == 1) {
      if (mode == "throw") DPUNET_FAIL("injected failure in step ", step);
      if (mode == "exit") std::exit(3);
      if (mode == "stall") std::this_thread::sleep_for(std::chrono::seconds(60));
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
  } catch (const std::exception& e) {
    return dpunet::dist::report_fatal_error(e.what());
  }
  return 0;
}
