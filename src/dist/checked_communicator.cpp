// CheckedCommunicator: an MPI_Iallgather of a fixed-size fingerprint on a communicator of
// its own, waited for with the collectives' timeout, before each collective is launched.
#include "dist/checked_communicator.h"

#include <algorithm>
#include <map>
#include <vector>

#include <torch/torch.h>

#include "common/error.h"
#include "common/text.h"
#include "dist/context.h"
#include "dist/host_request.h"
#include "dist/mpi_check.h"

namespace dpunet::dist {

namespace {

enum Operation : int64_t { kAllReduce = 1, kBroadcast, kAllGather, kBarrier };

std::string shape_of(const CheckedCommunicator::Fingerprint& f) {
  using F = CheckedCommunicator;
  std::string text = "[";
  for (int64_t d = 0; d < f[F::kDims]; ++d) {
    if (d == 4) {
      text += ", ...";
      break;
    }
    text += (d > 0 ? ", " : "") + std::to_string(f[F::kDim0 + d]);
  }
  return text + "]";
}

std::string describe(const CheckedCommunicator::Fingerprint& f) {
  using F = CheckedCommunicator;
  std::string text = "collective #" + std::to_string(f[F::kSequence]) + ", ";
  const std::string tensor = std::string(c10::toString(static_cast<c10::ScalarType>(f[F::kDtype]))) + " " +
                             shape_of(f) + " (" + std::to_string(f[F::kElements]) + " elements)";
  switch (f[F::kOperation]) {
    case kAllReduce:
      return text + "all_reduce (" + (f[F::kParameter] == static_cast<int64_t>(ReduceOp::kAvg) ? "avg" : "sum") +
             ") of " + tensor;
    case kBroadcast: return text + "broadcast from rank " + std::to_string(f[F::kParameter]) + " of " + tensor;
    case kAllGather:
      return text + "all_gather of " + tensor + " into " + std::to_string(f[F::kParameter]) + " elements";
    default: return text + "barrier";
  }
}

// "ranks 0, 2: ...; rank 1: ...": ranks that agree share one entry.
std::string views(const std::vector<CheckedCommunicator::Fingerprint>& all) {
  std::map<CheckedCommunicator::Fingerprint, std::vector<int>> ranks_of;
  for (size_t r = 0; r < all.size(); ++r) ranks_of[all[r]].push_back(static_cast<int>(r));
  std::vector<std::pair<int, std::string>> entries;  // by first rank
  for (const auto& [view, ranks] : ranks_of) {
    std::string who = ranks.size() == 1 ? "rank " : "ranks ";
    for (size_t k = 0; k < ranks.size() && k < 8; ++k) who += (k > 0 ? ", " : "") + std::to_string(ranks[k]);
    if (ranks.size() > 8) who += ", ... (" + std::to_string(ranks.size()) + " ranks)";
    entries.emplace_back(ranks.front(), who + ": " + describe(view));
  }
  std::sort(entries.begin(), entries.end());
  std::string text;
  for (size_t k = 0; k < entries.size() && k < 8; ++k) text += (k > 0 ? "; " : "") + entries[k].second;
  if (entries.size() > 8) text += "; and " + std::to_string(entries.size() - 8) + " other views";
  return text;
}

}  // namespace

struct CheckedCommunicator::Exchange {
  Fingerprint mine{};
  std::vector<Fingerprint> all;
  MPI_Request request = MPI_REQUEST_NULL;
};

CheckedCommunicator::CheckedCommunicator(const Context& context, std::shared_ptr<Communicator> inner,
                                         std::string timeout_hint)
    : inner_(std::move(inner)),
      comm_(context.world()),
      exchange_(std::make_unique<Exchange>()),
      timeout_hint_(std::move(timeout_hint)) {
  DPUNET_CHECK(inner_ != nullptr, "CheckedCommunicator: no communicator to check");
  // On a GPU, collectives are issued from autograd's device threads too: the exchange's
  // MPI calls then come from a thread other than the one that started MPI. (Every rank
  // runs the same MPI library, so every rank stops here alike.)
  DPUNET_CHECK(!inner_->device().is_cuda() || context.thread_level() >= MPI_THREAD_SERIALIZED,
               "distributed.check_collectives on GPUs needs an MPI with at least MPI_THREAD_SERIALIZED; this one "
               "gives less");
  exchange_->all.resize(static_cast<size_t>(inner_->world_size()));
}

CheckedCommunicator::~CheckedCommunicator() = default;

CheckedCommunicator::Fingerprint CheckedCommunicator::fingerprint(int operation, const at::Tensor& tensor,
                                                                  int64_t parameter) {
  Fingerprint f{};
  f[kSequence] = issued_;
  f[kOperation] = operation;
  if (tensor.defined()) {
    f[kDtype] = static_cast<int64_t>(tensor.scalar_type());
    f[kElements] = tensor.numel();
    f[kDims] = tensor.dim();
    for (int64_t d = 0; d < tensor.dim() && d < 4; ++d) f[kDim0 + d] = tensor.size(d);
    std::string sizes;
    for (const int64_t size : tensor.sizes()) sizes += std::to_string(size) + ",";
    f[kShapeHash] = static_cast<int64_t>(fnv1a(sizes));
  }
  f[kParameter] = parameter;
  return f;
}

void CheckedCommunicator::check(const Fingerprint& mine) {
  DPUNET_CHECK(exchange_ != nullptr, "distributed.check_collectives: an earlier check never completed");
  ++issued_;
  exchange_->mine = mine;
  static_assert(sizeof(Fingerprint) == kFields * sizeof(int64_t), "fingerprints travel as int64 arrays");
  MPI_CHECK(MPI_Iallgather(exchange_->mine.data(), kFields, MPI_INT64_T, exchange_->all.data(), kFields, MPI_INT64_T,
                           comm_.get(), &exchange_->request));
  const std::chrono::milliseconds limit =
      timeout() > std::chrono::milliseconds::zero() ? timeout() : CommunicatorOptions{}.timeout;
  try {
    wait_host_request(exchange_->request, limit, "the check of " + describe(mine) + " (distributed.check_collectives)",
                      timeout_hint_);
  } catch (...) {
    exchange_.release();  // the request may still be live in MPI, which can write into the exchange
    comm_.abandon();
    throw;
  }
  for (const Fingerprint& theirs : exchange_->all) {
    if (theirs == mine) continue;
    // The collectives before this one, which every rank issued alike, may still be in
    // flight (the buckets before this one): a barrier on the same communicator ends after
    // them on every rank, so none is left running into the exit.
    inner_->barrier();
    // Every rank holds every view: each one throws here with the same message.
    DPUNET_FAIL_ON_EVERY_RANK(false,
                              "the ranks are about to issue different collectives (distributed.check_collectives; "
                              "every rank must issue the same ones, in the same order): ",
                              views(exchange_->all));
  }
}

std::unique_ptr<Work> CheckedCommunicator::all_reduce_async(const at::Tensor& tensor, ReduceOp op) {
  std::lock_guard<std::mutex> lock(mutex_);
  check(fingerprint(kAllReduce, tensor, static_cast<int64_t>(op)));
  return inner_->all_reduce_async(tensor, op);
}

std::unique_ptr<Work> CheckedCommunicator::broadcast_async(const at::Tensor& tensor, int root) {
  std::lock_guard<std::mutex> lock(mutex_);
  check(fingerprint(kBroadcast, tensor, root));
  return inner_->broadcast_async(tensor, root);
}

std::unique_ptr<Work> CheckedCommunicator::all_gather_async(const at::Tensor& input, const at::Tensor& output) {
  std::lock_guard<std::mutex> lock(mutex_);
  check(fingerprint(kAllGather, input, output.numel()));
  return inner_->all_gather_async(input, output);
}

void CheckedCommunicator::barrier() {
  std::lock_guard<std::mutex> lock(mutex_);
  check(fingerprint(kBarrier, at::Tensor(), 0));
  inner_->barrier();
}

}  // namespace dpunet::dist
