// MpiCommunicator: blocking MPI collectives (MPI's tuned algorithms) run in issue order
// on one worker thread; Work::wait() waits with the stall timeout on the caller's side.
#include "dist/mpi_communicator.h"

#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/torch.h>

#include "common/awake_time.h"
#include "common/exception_message.h"
#include "common/process_label.h"
#include "common/text.h"
#include "dist/context.h"
#include "dist/mpi_check.h"
#include "dist/mpi_datatypes.h"

namespace dpunet::dist {

// One collective: `run` makes the blocking MPI call, on the worker or inline.
struct MpiTask {
  std::string name;
  std::function<void()> run;
  std::mutex mutex;
  std::condition_variable finished;
  bool done = false;
  std::exception_ptr error;

  void execute() {
    std::exception_ptr failure;
    try {
      run();
    } catch (const Error& e) {
      // The MPI call's own message names the call and rank; the collective is the task.
      failure = std::make_exception_ptr(Error(name + ": " + e.what()));
    } catch (const std::exception& e) {
      // An ATen error (a tensor op around the call): it knows neither.
      failure = std::make_exception_ptr(Error(name + " [" + process_label() + "]: " + exception_message(e)));
    } catch (...) {
      failure = std::current_exception();
    }
    run = nullptr;  // drops the tensors it held
    std::lock_guard<std::mutex> lock(mutex);
    error = failure;
    done = true;
    finished.notify_all();
  }
};

// Shared with the worker thread, which may outlive the communicator when it has to be
// abandoned inside a collective that will never complete (the job is then aborting).
struct MpiQueue {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::shared_ptr<MpiTask>> tasks;
  bool stopping = false;
  bool stalled = false;  // a wait timed out: the worker may be stuck in MPI for good
  bool exited = false;   // serve() has returned

  void serve() {
    for (;;) {
      std::shared_ptr<MpiTask> task;
      {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return stopping || !tasks.empty(); });
        if (tasks.empty()) {
          exited = true;
          changed.notify_all();
          return;
        }
        task = std::move(tasks.front());
        tasks.pop_front();
      }
      task->execute();
    }
  }
};

namespace {

class MpiWork : public Work {
 public:
  MpiWork(std::shared_ptr<MpiTask> task, std::shared_ptr<MpiQueue> queue, std::chrono::milliseconds timeout,
          std::string timeout_hint, std::function<void()> finish)
      : task_(std::move(task)),
        queue_(std::move(queue)),
        timeout_(timeout),
        timeout_hint_(std::move(timeout_hint)),
        finish_(std::move(finish)) {}

  void wait() override {
    {
      std::unique_lock<std::mutex> lock(task_->mutex);
      if (!wait_for_awake(task_->finished, lock, timeout_, [&] { return task_->done; })) {
        if (queue_) {
          std::lock_guard<std::mutex> queue_lock(queue_->mutex);
          queue_->stalled = true;
        }
        DPUNET_FAIL(task_->name, " has not completed after ", timeout_.count() / 1000.0, " s [", process_label(),
                    "]: another rank stopped or is issuing different collectives", parenthesised(timeout_hint_));
      }
      if (task_->error) std::rethrow_exception(task_->error);
    }
    if (finish_) {
      auto finish = std::move(finish_);
      finish_ = nullptr;
      finish();
    }
  }

 private:
  std::shared_ptr<MpiTask> task_;
  std::shared_ptr<MpiQueue> queue_;
  std::chrono::milliseconds timeout_;
  std::string timeout_hint_;
  std::function<void()> finish_;
};

// A plain loop on this thread: ATen's div_ could start an intra-op thread team from the
// communicator's thread, which would compete with backward's threads for the cores.
void divide_serially(const at::Tensor& contiguous, int divisor) {
  // By a power of two, multiplying by the reciprocal gives the quotient bit for bit (both
  // round the same exact value) at a quarter of a division's cost; other divisors divide.
  const bool power_of_two = (divisor & (divisor - 1)) == 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, contiguous.scalar_type(), "divide_serially", [&] {
    // The count is read once: in the loop's condition it is reloaded after every store
    // (the stores might alias it), which keeps the loop scalar, as slow as MPI's sum.
    // In float for bf16/fp16, as ATen divides them: the divisor itself would round in 16
    // bits above 256 (bf16) or 2048 (fp16).
    using math_t = at::opmath_type<scalar_t>;
    scalar_t* data = contiguous.data_ptr<scalar_t>();
    const int64_t count = contiguous.numel();
    if (power_of_two) {
      const auto reciprocal = static_cast<math_t>(1.0 / divisor);
      for (int64_t i = 0; i < count; ++i) data[i] = static_cast<scalar_t>(static_cast<math_t>(data[i]) * reciprocal);
    } else {
      const auto n = static_cast<math_t>(divisor);
      for (int64_t i = 0; i < count; ++i) data[i] = static_cast<scalar_t>(static_cast<math_t>(data[i]) / n);
    }
  });
}

int checked_count(int64_t count, const std::string& what) {
  DPUNET_CHECK(count <= INT_MAX, "MPI communicator: ", what, " of ", count,
               " elements exceeds MPI's int count; split it");
  return static_cast<int>(count);
}

void check_cpu_contiguous(const at::Tensor& tensor, const char* op) {
  DPUNET_CHECK(tensor.device().is_cpu(), "MPI communicator: ", op, " needs a CPU tensor, got one on ",
               tensor.device().str());
  DPUNET_CHECK(tensor.is_contiguous(), "MPI communicator: ", op, " needs a contiguous tensor");
}

std::string describe(const char* op, const at::Tensor& tensor) {
  return ::dpunet::detail::concat(op, " (", c10::toString(tensor.scalar_type()), ", ", tensor.numel(), " elements)");
}

}  // namespace

MpiCommunicator::MpiCommunicator(const Context& context, MpiCommunicatorOptions options)
    : options_(options), timeout_(options.timeout), queue_(std::make_shared<MpiQueue>()) {
  MPI_CHECK(MPI_Comm_dup(context.world(), &comm_));
  MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  MPI_CHECK(MPI_Comm_size(comm_, &world_size_));
  half_ops_ = std::make_unique<HalfSumOps>();
  if (options_.background_thread && context.thread_level() >= MPI_THREAD_MULTIPLE) {
    worker_ = std::thread([queue = queue_] { queue->serve(); });
    return;
  }
  StallWatchdog::Options watch;
  watch.timeout = options_.timeout;
  watch.timeout_hint = options_.timeout_hint;
  watch.poll_interval = std::chrono::milliseconds(100);
  watch.grace = std::chrono::milliseconds(0);  // nothing to abort, nobody else to raise it
  watch.label = process_label();
  watch.consequence = "this rank ends now";
  // No MPI from the watchdog's thread (the context may be FUNNELED): the launcher ends
  // the other ranks when this one exits non-zero.
  watch.last_resort = [label = watch.label](const std::string& message) {
    print_fatal_error(label, message);
    std::_Exit(1);
  };
  inline_watchdog_ = std::make_unique<StallWatchdog>(std::move(watch));
}

MpiCommunicator::~MpiCommunicator() {
  bool abandon = std::uncaught_exceptions() > 0;
  {
    std::lock_guard<std::mutex> lock(queue_->mutex);
    abandon = abandon || queue_->stalled;
    // Unwinding: queued collectives may never be matched by the other ranks.
    if (abandon) queue_->tasks.clear();
    queue_->stopping = true;
  }
  queue_->changed.notify_all();
  if (worker_.joinable()) {
    if (!abandon) {
      // Collectives still queued (a Work dropped unwaited) finish only if the other ranks
      // issue theirs: wait as long as any collective may take now (set_timeout's). Past that, the worker may
      // sit in MPI for good, and finalising MPI around it is undefined: the job ends.
      std::unique_lock<std::mutex> lock(queue_->mutex);
      if (!wait_for_awake(queue_->changed, lock, timeout_, [&] { return queue_->exited; })) {
        queue_->tasks.clear();
        queue_->stalled = true;
        abandon = true;
        lock.unlock();
        print_fatal_error(process_label(),
                          "MPI communicator: collectives still running at shutdown did not "
                          "complete within the timeout; ending the job");
        abort_all_ranks(/*exit_code=*/1);
      }
    }
    if (abandon) {
      worker_.detach();  // it may sit in MPI until the job is aborted
      return;
    }
    worker_.join();
  }
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

namespace {

// `inline_watchdog`: set when there is no worker, to watch the call made here.
std::unique_ptr<Work> submit(const std::shared_ptr<MpiQueue>& queue, StallWatchdog* inline_watchdog,
                             std::chrono::milliseconds timeout, const std::string& timeout_hint, std::string name,
                             std::function<void()> run, std::function<void()> finish = nullptr) {
  auto task = std::make_shared<MpiTask>();
  task->name = std::move(name);
  task->run = std::move(run);
  const bool threaded = inline_watchdog == nullptr;
  if (threaded) {
    {
      std::lock_guard<std::mutex> lock(queue->mutex);
      queue->tasks.push_back(task);
    }
    queue->changed.notify_one();
  } else {
    inline_watchdog->raise_if_failed();
    inline_watchdog->watch(
        task->name,
        [task](std::string*) {
          std::lock_guard<std::mutex> lock(task->mutex);
          return task->done ? StallWatchdog::State::kDone : StallWatchdog::State::kPending;
        },
        timeout);
    task->execute();
  }
  return std::make_unique<MpiWork>(std::move(task), threaded ? queue : nullptr, timeout, timeout_hint,
                                   std::move(finish));
}

}  // namespace

std::unique_ptr<Work> MpiCommunicator::all_reduce_async(const at::Tensor& tensor, ReduceOp op) {
  check_cpu_contiguous(tensor, "all_reduce");
  // MPI defines no sum of C booleans (and NCCL would add them as bytes, past 1).
  DPUNET_CHECK(tensor.scalar_type() != c10::kBool,
               "MPI communicator: all_reduce of bool tensors is not defined; "
               "reduce them as integers");
  const bool floating = tensor.is_floating_point();
  DPUNET_CHECK(op != ReduceOp::kAvg || floating, "MPI communicator: all_reduce average needs a floating tensor, got ",
               c10::toString(tensor.scalar_type()));
  const MPI_Datatype type = mpi_datatype(tensor.scalar_type());
  const MPI_Op sum = half_ops_->sum_for(tensor.scalar_type());
  MPI_Comm comm = comm_;
  // Large tensors go in pieces, each summed and (for an average) divided while it is
  // still in cache; every rank splits the same count the same way. Dividing here, on the
  // worker, also keeps the division off the thread that waits. A piece's count is an
  // int for MPI.
  const int64_t piece = std::min<int64_t>(
      INT_MAX, options_.max_message_bytes > 0 ? std::max<int64_t>(1, options_.max_message_bytes / tensor.element_size())
                                              : std::max<int64_t>(1, tensor.numel()));
  const int divisor = op == ReduceOp::kAvg ? world_size_ : 1;
  auto run = [tensor, piece, divisor, type, sum, comm] {
    const torch::Tensor flat = tensor.view({-1});
    int64_t start = 0;
    do {
      const int64_t count = std::min(piece, flat.numel() - start);
      torch::Tensor part = flat.narrow(0, start, count);
      MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, part.data_ptr(), static_cast<int>(count), type, sum, comm));
      // Sum, then divide: exact for sums that are exact, unlike scaling every input first.
      if (divisor > 1) divide_serially(part, divisor);
      start += count;
    } while (start < flat.numel());
  };
  return submit(queue_, inline_watchdog_.get(), timeout_, options_.timeout_hint, describe("all_reduce", tensor),
                std::move(run));
}

std::unique_ptr<Work> MpiCommunicator::broadcast_async(const at::Tensor& tensor, int root) {
  check_cpu_contiguous(tensor, "broadcast");
  DPUNET_CHECK(root >= 0 && root < world_size_, "MPI communicator: broadcast root ", root, " is not a rank of ",
               world_size_);
  MPI_Comm comm = comm_;
  // In pieces of at most INT_MAX bytes (MPI counts in int): a model's coalesced state of
  // one dtype can pass 2 GiB.
  auto run = [tensor, root, comm] {
    auto* bytes = static_cast<char*>(tensor.data_ptr());
    const int64_t total = static_cast<int64_t>(tensor.nbytes());
    for (int64_t start = 0; start < total; start += INT_MAX) {
      const int count = static_cast<int>(std::min<int64_t>(INT_MAX, total - start));
      MPI_CHECK(MPI_Bcast(bytes + start, count, MPI_BYTE, root, comm));
    }
  };
  return submit(queue_, inline_watchdog_.get(), timeout_, options_.timeout_hint, describe("broadcast", tensor),
                std::move(run));
}

std::unique_ptr<Work> MpiCommunicator::all_gather_async(const at::Tensor& input, const at::Tensor& output) {
  check_cpu_contiguous(input, "all_gather");
  check_cpu_contiguous(output, "all_gather");
  DPUNET_CHECK(output.numel() == input.numel() * world_size_ && output.scalar_type() == input.scalar_type(),
               "MPI communicator: all_gather output must hold world_size (", world_size_, ") x ", input.numel(),
               " elements of the input's type, got ", output.numel());
  const int bytes = checked_count(input.nbytes(), "all_gather");
  MPI_Comm comm = comm_;
  auto run = [input, output, bytes, comm] {
    MPI_CHECK(MPI_Allgather(input.data_ptr(), bytes, MPI_BYTE, output.data_ptr(), bytes, MPI_BYTE, comm));
  };
  return submit(queue_, inline_watchdog_.get(), timeout_, options_.timeout_hint, describe("all_gather", input),
                std::move(run));
}

void MpiCommunicator::barrier() {
  MPI_Comm comm = comm_;
  submit(queue_, inline_watchdog_.get(), timeout_, options_.timeout_hint, "barrier", [comm] {
    MPI_CHECK(MPI_Barrier(comm));
  })->wait();
}

}  // namespace dpunet::dist
