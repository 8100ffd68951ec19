// NcclCommunicator: bootstrap over MPI, collectives on a side stream, and a watchdog that
// sees every collective through to completion, so that waiting never has to block the
// host to notice an asynchronous error or a stall.
#include "dist/nccl_communicator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include "common/process_label.h"
#include "dist/context.h"
#include "dist/cuda_check.h"
#include "dist/mpi_check.h"
#include "dist/stall_watchdog.h"

namespace dpunet::dist {

struct NcclState {
  ncclComm_t comm = nullptr;
  // Held while the communicator is used or aborted: the watchdog aborts from its own
  // threads, and an aborted communicator is freed. A launch blocked on its peers holds
  // it past a stall's abort; the watchdog's last resort then ends the process.
  std::mutex mutex;
  bool aborted = false;
  int rank = 0;
  int world_size = 1;
  c10::Device device{c10::kCUDA, 0};
  std::optional<c10::cuda::CUDAStream> stream;
  std::unique_ptr<StallWatchdog> watchdog;
  // Milliseconds of the collectives launched now; atomic, not under `mutex`, which a
  // launch blocked on its peers may hold.
  std::atomic<int64_t> timeout_ms{0};

  // Aborting is the only way out of a collective that will not complete. Runs on a
  // thread of the watchdog's, which has no current device yet.
  void abort() {
    std::lock_guard<std::mutex> lock(mutex);
    cudaSetDevice(device.index());
    if (comm != nullptr && !aborted) ncclCommAbort(comm);
    aborted = true;
  }
  ~NcclState() {
    // While unwinding from an error, on the way to main's report and exit, collectives
    // still in flight may never finish (another rank stopped), and an abort or destroy
    // that blocks on them would hold the report back until the other ranks' timeouts;
    // nor is a finished communicator destroyed then, as recent NCCL's destroy waits for
    // the node's other ranks, which are not destroying theirs. The process's exit frees
    // it instead.
    const bool unwinding = std::uncaught_exceptions() > 0;
    // ncclCommDestroy waits for unfinished collectives: a stalled one would hang it, so
    // a communicator that failed, or still has collectives in flight, is aborted. In
    // normal use they are let finish first.
    bool unfinished = false;
    if (watchdog) {
      if (!unwinding) watchdog->wait_until_idle();
      unfinished = watchdog->failure().has_value() || watchdog->pending() > 0;
      watchdog.reset();  // its thread polls the communicator
    }
    if (unwinding) return;
    std::lock_guard<std::mutex> lock(mutex);
    if (comm == nullptr || aborted) return;
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm, &async);
    if (unfinished || (async != ncclSuccess && async != ncclInProgress)) {
      ncclCommAbort(comm);
    } else {
      ncclCommDestroy(comm);
    }
  }
};

namespace {

struct Event {
  cudaEvent_t event = nullptr;
  Event() { CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming)); }
  ~Event() {
    if (event != nullptr) cudaEventDestroy(event);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
};

ncclDataType_t nccl_type(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat: return ncclFloat32;
    case c10::kDouble: return ncclFloat64;
    case c10::kHalf: return ncclFloat16;
    case c10::kBFloat16: return ncclBfloat16;
    case c10::kInt: return ncclInt32;
    case c10::kLong: return ncclInt64;
    case c10::kByte: return ncclUint8;
    case c10::kChar: return ncclInt8;
    case c10::kBool: return ncclUint8;
    default: DPUNET_FAIL("NCCL communicator: tensors of type ", c10::toString(type), " are not supported");
  }
}

// Where a collective's launch stands. It is watched from before the launch: a blocking
// NCCL call can wait on the host for its peers (connections are set up lazily inside
// the first collective that needs them), and a peer that never arrives must show as a
// stall there too.
enum class LaunchStage { kLaunching, kLaunched, kAbandoned };

// The watchdog's view of one collective: pending while it launches, done when its event
// is (or when its launch failed, which the caller was told), failed on a CUDA error or
// an asynchronous NCCL error.
StallWatchdog::Poll poll_collective(NcclState* state, std::shared_ptr<Event> done,
                                    std::shared_ptr<std::atomic<LaunchStage>> launch) {
  return [state, done = std::move(done), launch = std::move(launch)](std::string* error) {
    const LaunchStage stage = launch->load();
    if (stage == LaunchStage::kAbandoned) return StallWatchdog::State::kDone;
    // The watchdog's thread has no current device: without this its first CUDA call
    // would open a context on GPU 0, taking memory on another rank's GPU.
    const cudaError_t set = cudaSetDevice(state->device.index());
    if (set != cudaSuccess) {
      *error = cudaGetErrorString(set);
      return StallWatchdog::State::kFailed;
    }
    const cudaError_t query = stage == LaunchStage::kLaunched ? cudaEventQuery(done->event) : cudaErrorNotReady;
    if (query == cudaSuccess) return StallWatchdog::State::kDone;
    if (query != cudaErrorNotReady) {
      // CUDA's errors are sticky: any kernel on this GPU may have caused it, not only NCCL.
      *error = std::string("CUDA error on this GPU, perhaps from another kernel: ") + cudaGetErrorString(query);
      return StallWatchdog::State::kFailed;
    }
    // No lock: it reads an atomic, and the communicator outlives every poll (polls stop
    // at the first failure, before the abort; the state's destructor stops the watchdog
    // before it frees the communicator). A caller blocked in a launch is no obstacle.
    ncclResult_t async = ncclSuccess;
    const ncclResult_t status = ncclCommGetAsyncError(state->comm, &async);
    if (status != ncclSuccess) async = status;
    if (async == ncclSuccess || async == ncclInProgress) return StallWatchdog::State::kPending;
    *error = ncclGetErrorString(async);
    return StallWatchdog::State::kFailed;
  };
}

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<NcclState> state, std::string name, std::shared_ptr<Event> done,
           std::vector<at::Tensor> keep)
      : state_(std::move(state)), name_(std::move(name)), done_(std::move(done)), keep_(std::move(keep)) {}

  // Blocks the host until the event fires; the watchdog raises stalls and errors.
  void wait() override {
    if (!done_) return;
    for (;;) {
      state_->watchdog->raise_if_failed();
      const cudaError_t query = cudaEventQuery(done_->event);
      if (query == cudaSuccess) break;
      DPUNET_CHECK(query == cudaErrorNotReady, name_, ": waiting for it failed: ", cudaGetErrorString(query), " [",
                   process_label(), "]");
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    wait_on_stream();
  }

  void wait_on_stream() override {
    if (!done_) return;
    state_->watchdog->raise_if_failed();
    // Work the caller queues next runs after the result is in place; the watchdog holds
    // the event until it fires.
    const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(state_->device.index());
    CUDA_CHECK(cudaStreamWaitEvent(current.stream(), done_->event, 0));
    done_.reset();
    keep_.clear();
  }

 private:
  std::shared_ptr<NcclState> state_;
  std::string name_;  // the collective, for messages
  std::shared_ptr<Event> done_;
  std::vector<at::Tensor> keep_;
};

void check_device_tensor(const NcclState& state, const at::Tensor& t, const char* op) {
  DPUNET_CHECK(t.device() == state.device, "NCCL communicator: ", op, " needs a tensor on ", state.device.str(),
               ", got one on ", t.device().str());
  DPUNET_CHECK(t.is_contiguous(), "NCCL communicator: ", op, " needs a contiguous tensor");
}

// Orders `launch` after the caller's stream, records completion, hands the collective to
// the watchdog, and keeps the tensors' memory from being reused by the caching allocator
// until the side stream is done.
template <typename Launch>
std::unique_ptr<Work> enqueue(const std::shared_ptr<NcclState>& state, const std::string& name,
                              std::vector<at::Tensor> tensors, Launch launch) {
  std::unique_lock<std::mutex> lock(state->mutex);
  state->watchdog->raise_if_failed();  // the communicator is aborted only after a failure
  c10::cuda::CUDAGuard guard(state->device);
  const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(state->device.index());
  Event ready;
  auto done = std::make_shared<Event>();
  auto stage = std::make_shared<std::atomic<LaunchStage>>(LaunchStage::kLaunching);
  state->watchdog->watch("NCCL " + name, poll_collective(state.get(), done, stage),
                         std::chrono::milliseconds(state->timeout_ms.load()));
  try {
    CUDA_CHECK(cudaEventRecord(ready.event, compute.stream()));
    CUDA_CHECK(cudaStreamWaitEvent(state->stream->stream(), ready.event, 0));
    NCCL_CHECK(launch(state->comm, state->stream->stream()));
    CUDA_CHECK(cudaEventRecord(done->event, state->stream->stream()));
  } catch (const Error& e) {
    stage->store(LaunchStage::kAbandoned);
    DPUNET_FAIL("NCCL ", name, ": ", e.what());  // which collective, not only which call
  }
  stage->store(LaunchStage::kLaunched);
  for (const auto& t : tensors) c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), *state->stream);
  return std::make_unique<NcclWork>(state, name, std::move(done), std::move(tensors));
}

// NCCL takes one GPU per rank and fails at start-up ("Duplicate GPU detected") when two
// ranks share one: more ranks on a node than it has GPUs, or CUDA_VISIBLE_DEVICES giving
// several ranks the same one. Compared by node and PCI location, as NCCL itself does, so
// ranks that each see their own GPU as device 0 (srun --gpus-per-task) are fine, and
// MIG slices of one GPU (distinct UUIDs, which some virtualised drivers also report as
// all zeros) count as the GPU they are. Every rank sees the same table and stops with
// the same message.
void check_one_gpu_per_rank(const Context& context) {
  struct Identity {
    int node;       // compared rather than host names, which may repeat across nodes (containers)
    int pci[3];     // domain, bus, device
    char host[64];  // for the message
  };
  Identity mine{};
  mine.node = context.node_leader();
  std::snprintf(mine.host, sizeof(mine.host), "%s", context.host().c_str());
  cudaDeviceProp properties{};
  CUDA_CHECK(cudaGetDeviceProperties(&properties, context.device().index()));
  mine.pci[0] = properties.pciDomainID;
  mine.pci[1] = properties.pciBusID;
  mine.pci[2] = properties.pciDeviceID;
  std::vector<Identity> all(static_cast<size_t>(context.world_size()));
  MPI_CHECK(MPI_Allgather(&mine, sizeof(Identity), MPI_BYTE, all.data(), sizeof(Identity), MPI_BYTE, context.world()));
  for (size_t a = 0; a < all.size(); ++a) {
    for (size_t b = a + 1; b < all.size(); ++b) {
      if (all[a].node != all[b].node || std::memcmp(all[a].pci, all[b].pci, sizeof(all[a].pci)) != 0) {
        continue;
      }
      char bus_id[32];
      std::snprintf(bus_id, sizeof(bus_id), "%04x:%02x:%02x.0", static_cast<unsigned>(all[a].pci[0]),
                    static_cast<unsigned>(all[a].pci[1]), static_cast<unsigned>(all[a].pci[2]));
      DPUNET_FAIL_ON_EVERY_RANK(
          false, "ranks ", a, " and ", b, " on ", std::string(all[a].host, strnlen(all[a].host, 64)),
          " share one GPU (PCI ", bus_id,
          "; MIG slices of one GPU count as one), and NCCL needs a GPU per "
          "rank: start at most as many ranks per node as it has GPUs (the launcher does), or give each rank "
          "its own in CUDA_VISIBLE_DEVICES");
    }
  }
}

std::string describe(const char* op, const at::Tensor& t) {
  return ::dpunet::detail::concat(op, " (", c10::toString(t.scalar_type()), ", ", t.numel(), " elements)");
}

}  // namespace

NcclCommunicator::NcclCommunicator(const Context& context, CommunicatorOptions options)
    : state_(std::make_shared<NcclState>()) {
  DPUNET_CHECK(context.device().is_cuda(), "NCCL communicator needs a GPU, but ", process_label(), " runs on ",
               context.device().str());
  state_->rank = context.rank();
  state_->world_size = context.world_size();
  state_->device = context.device();
  state_->timeout_ms = options.timeout.count();
  c10::cuda::CUDAGuard guard(state_->device);
  state_->stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/true, state_->device.index());

  StallWatchdog::Options watch;
  watch.timeout = options.timeout;
  watch.timeout_hint = options.timeout_hint;
  watch.grace = options.abort_grace;
  watch.label = process_label();
  // Weak: the state owns the watchdog. An abort that outlives the communicator keeps
  // the state alive until it returns.
  watch.abort_transport = [weak = std::weak_ptr<NcclState>(state_)] {
    if (auto state = weak.lock()) state->abort();
  };
  // No MPI on the watchdog's thread (the context may be FUNNELED): the launcher (mpirun,
  // srun) ends the other ranks when this one exits non-zero.
  watch.last_resort = [label = watch.label](const std::string& message) {
    print_fatal_error(label, message);
    std::_Exit(1);
  };
  state_->watchdog = std::make_unique<StallWatchdog>(std::move(watch));

  // Start-up waits for every rank: one that never arrives (stuck before it, on another
  // node) would hold this one in ncclCommInitRank for good. Watched like a collective, it
  // ends the job with a message after the timeout (and the grace, as nothing can be
  // aborted yet); at least 5 minutes, as ranks arrive as unevenly as they load their
  // data and checkpoints.
  auto started = std::make_shared<std::atomic<bool>>(false);
  state_->watchdog->watch(
      "NCCL start-up (the GPU check, the unique id's broadcast and ncclCommInitRank)",
      [started](std::string*) {
        return started->load() ? StallWatchdog::State::kDone : StallWatchdog::State::kPending;
      },
      std::max<std::chrono::milliseconds>(options.timeout, kStartupTimeout));
  check_one_gpu_per_rank(context);
  ncclUniqueId id;
  if (context.rank() == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, context.world()));
  // Into a local first: the watchdog's abort reads state_->comm under the mutex, and
  // may do so while the start-up is still under way.
  ncclComm_t comm = nullptr;
  NCCL_CHECK(ncclCommInitRank(&comm, state_->world_size, id, state_->rank));
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    // The watchdog gave up on the start-up meanwhile, and its abort found no communicator:
    // this one is aborted here (the destructor skips an aborted state's).
    if (state_->aborted) {
      ncclCommAbort(comm);
      DPUNET_FAIL("NCCL start-up finished only after its timeout had ended it [", process_label(), "]");
    }
    state_->comm = comm;
  }
  started->store(true);
}

NcclCommunicator::~NcclCommunicator() = default;

int NcclCommunicator::rank() const {
  return state_->rank;
}
int NcclCommunicator::world_size() const {
  return state_->world_size;
}
c10::Device NcclCommunicator::device() const {
  return state_->device;
}

std::unique_ptr<Work> NcclCommunicator::all_reduce_async(const at::Tensor& tensor, ReduceOp op) {
  check_device_tensor(*state_, tensor, "all_reduce");
  DPUNET_CHECK(tensor.scalar_type() != c10::kBool,
               "NCCL communicator: all_reduce of bool tensors is not defined; reduce them as integers");
  DPUNET_CHECK(op != ReduceOp::kAvg || tensor.is_floating_point(),
               "NCCL communicator: all_reduce average needs a floating tensor");
  const ncclRedOp_t nccl_op = op == ReduceOp::kAvg ? ncclAvg : ncclSum;
  const ncclDataType_t type = nccl_type(tensor.scalar_type());
  return enqueue(state_, describe("all_reduce", tensor), {tensor}, [&](ncclComm_t comm, cudaStream_t stream) {
    return ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(), type, nccl_op, comm, stream);
  });
}

std::unique_ptr<Work> NcclCommunicator::broadcast_async(const at::Tensor& tensor, int root) {
  check_device_tensor(*state_, tensor, "broadcast");
  DPUNET_CHECK(root >= 0 && root < state_->world_size, "NCCL communicator: broadcast root ", root, " is not a rank of ",
               state_->world_size);
  return enqueue(state_, describe("broadcast", tensor), {tensor}, [&](ncclComm_t comm, cudaStream_t stream) {
    return ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), tensor.nbytes(), ncclUint8, root, comm, stream);
  });
}

std::unique_ptr<Work> NcclCommunicator::all_gather_async(const at::Tensor& input, const at::Tensor& output) {
  check_device_tensor(*state_, input, "all_gather");
  check_device_tensor(*state_, output, "all_gather");
  DPUNET_CHECK(output.numel() == input.numel() * state_->world_size && output.scalar_type() == input.scalar_type(),
               "NCCL communicator: all_gather output must hold world_size (", state_->world_size, ") x ", input.numel(),
               " elements of the input's type, got ", output.numel());
  return enqueue(state_, describe("all_gather", input), {input, output}, [&](ncclComm_t comm, cudaStream_t stream) {
    return ncclAllGather(input.data_ptr(), output.data_ptr(), input.nbytes(), ncclUint8, comm, stream);
  });
}

void NcclCommunicator::barrier() {
  const at::Tensor token = torch::zeros({1}, torch::TensorOptions().device(state_->device));
  all_reduce_async(token, ReduceOp::kSum)->wait();
  CUDA_CHECK(cudaStreamSynchronize(c10::cuda::getCurrentCUDAStream(state_->device.index()).stream()));
  state_->watchdog->raise_if_failed();
}

std::chrono::milliseconds NcclCommunicator::timeout() const {
  return std::chrono::milliseconds(state_->timeout_ms.load());
}

void NcclCommunicator::set_timeout(std::chrono::milliseconds timeout) {
  state_->timeout_ms = timeout.count();
}

void NcclCommunicator::raise_pending_failure() {
  state_->watchdog->raise_if_failed();
}

}  // namespace dpunet::dist
