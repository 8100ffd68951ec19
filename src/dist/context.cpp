// MPI start-up and shut-down, local rank and device choice.
#include "dist/context.h"

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "common/launched_copies.h"
#include "common/process_label.h"
#include "dist/core_share.h"
#include "dist/cuda_device.h"
#include "dist/gpu_choice.h"
#include "dist/mpi_check.h"

namespace dpunet::dist {

Context::Context(int* argc, char*** argv, DevicePreference device) {
  init(argc, argv, device);
}

Context::Context(DevicePreference device) {
  init(nullptr, nullptr, device);
}

void Context::init(int* argc, char*** argv, DevicePreference device) {
  int initialized = 0;
  MPI_CHECK(MPI_Initialized(&initialized));
  if (initialized) {
    MPI_CHECK(MPI_Query_thread(&thread_level_));
  } else {
    // The communicator's thread shares cores with compute: while it waits for a peer it
    // should yield the core rather than spin (Open MPI; a user's own setting wins).
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", /*overwrite=*/0);
    MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &thread_level_));
    owns_mpi_ = true;
  }
  // Errors come back as codes that MPI_CHECK turns into exceptions, not as aborts.
  MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  DPUNET_CHECK(thread_level_ >= MPI_THREAD_FUNNELED, "MPI provides thread level ", thread_level_,
               ", dpunet needs MPI_THREAD_FUNNELED or better [", process_label(), "]");
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  remember_world_rank(rank_);
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size_));
  // A launcher whose process manager this MPI does not speak starts every copy as rank 0
  // of 1: each would train alone, on the same GPU, into the same run directory.
  const LaunchedCopies copies = launched_copies();
  DPUNET_CHECK(world_size_ > 1 || copies.count <= 1, "MPI started this process as rank 0 of 1, but ", copies.variable,
               "=", copies.count,
               " says the launcher started several: the launcher and the MPI library dpunet was built with do not "
               "connect (under srun, give the --mpi plugin this MPI needs, e.g. srun --mpi=pmix for Open MPI; or "
               "start the ranks with this MPI's own mpirun). One process started by hand inside a multi-task srun "
               "step inherits that count: start it with srun -n 1, or unset ",
               copies.variable, " [", host_name(), "]");

  MPI_Comm node = MPI_COMM_NULL;
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  MPI_CHECK(MPI_Comm_size(node, &local_size_));
  node_leader_ = rank_;
  MPI_CHECK(MPI_Bcast(&node_leader_, 1, MPI_INT, 0, node));
  int gpu_peer = 0;
  try {
    cpu_share_ = cpu_share_on_node(node);
    gpu_peer = rank_among_same_gpus(node);
  } catch (...) {
    MPI_Comm_free(&node);
    throw;
  }
  MPI_CHECK(MPI_Comm_free(&node));
  host_ = host_name();

  const int gpus = device == DevicePreference::kCpu ? 0 : usable_gpu_count();
  // These are printed after "dpunet: error (rank R on HOST):", which names the rank.
  DPUNET_CHECK(device != DevicePreference::kCuda || built_with_cuda(),
               "device cuda was asked for, but this dpunet was ",
               "built without CUDA (no CUDA toolkit, or a CPU-only LibTorch, when it was configured)");
  DPUNET_CHECK(device != DevicePreference::kCuda || gpus > 0, "device cuda was asked for but no GPU is visible");
  // With device auto, every rank must land on the same kind of device: a node that sees
  // no GPU would pick the MPI backend while the others start NCCL, and their first
  // collectives would never meet.
  const int has_gpu = gpus > 0 ? 1 : 0;
  int any_gpu = 0;
  MPI_CHECK(MPI_Allreduce(&has_gpu, &any_gpu, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  // A rank told to use the CPU (one whose config failed, about to stop) is not asked.
  DPUNET_CHECK(device == DevicePreference::kCpu || has_gpu == any_gpu,
               "this rank sees no GPU, but other ranks do: check CUDA_VISIBLE_DEVICES and the GPUs of ", host_,
               ", or run every rank on CPU (run.device cpu)");
  if (gpus > 0) {
    const int index = gpu_peer % gpus;
    // Before anything else touches CUDA, or every rank opens a context on GPU 0.
    set_current_cuda_device(index);
    device_ = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
}

bool Context::any_rank(bool flag) const {
  const int mine = flag ? 1 : 0;
  int any = 0;
  MPI_CHECK(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  return any != 0;
}

Context::~Context() {
  if (!owns_mpi_) return;
  // Unwinding from an error: finalising now would wait for ranks that are waiting for
  // us. main's handler prints the error and aborts every rank instead.
  if (std::uncaught_exceptions() > 0) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();  // a destructor must not throw: nothing to check against
}

void abort_all_ranks(int exit_code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  int size = 1;
  if (initialized && !finalized) MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (initialized && !finalized && size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

void print_fatal_error(const std::string& label, const std::string& message) {
  // What was printed before the failure comes first where both streams share a file.
  std::fflush(stdout);
  std::fprintf(stderr, "dpunet: error (%s): %s\n", label.c_str(), message.c_str());
  std::fflush(stderr);
}

int report_fatal_error(const char* message) {
  print_fatal_error(process_label(), message);
  abort_all_ranks(/*exit_code=*/1);
  return 1;
}

int report_agreed_error(const AgreedError& error) {
  if (error.rank_specific() || world_rank_or_unknown() <= 0) print_fatal_error(process_label(), error.what());
  // Every rank is here: they finish MPI together, as at a normal end.
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
  return 1;
}

}  // namespace dpunet::dist
