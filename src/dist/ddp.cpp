// The gradient reducer: buckets of flat gradient storage, one hook per parameter on its
// gradient accumulator, and all-reduces launched in bucket order as buckets fill.
#include "dist/ddp.h"

#include <c10/util/strides.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include "common/error.h"

namespace dpunet::dist {

struct DistributedDataParallel::Bucket {
  std::vector<size_t> params;
  torch::Tensor buffer;  // [sum of numels], flat, the parameters' dtype and device
  torch::Tensor wire;    // the compressed copy in flight, when compressing
  size_t pending = 0;    // gradients not yet ready this step
  std::unique_ptr<Work> work;
};

namespace {

// Fires after AccumulateGrad has added this step's gradient into param.grad.
class GradientReadyHook : public torch::autograd::FunctionPostHook {
 public:
  GradientReadyHook(DistributedDataParallel* ddp, size_t param) : ddp_(ddp), param_(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    ddp_->on_gradient_ready(param_);
    return outputs;
  }

 private:
  DistributedDataParallel* ddp_;
  size_t param_;
};

std::string shape_text(const torch::Tensor& t) {
  std::string text = "[";
  for (int64_t d = 0; d < t.dim(); ++d) text += (d ? ", " : "") + std::to_string(t.size(d));
  return text + "]";
}

// Ranks must agree on this whole line: a parameter frozen on some ranks only would give
// them different buckets, and all-reduces of different sizes.
std::string describe_tensor(const std::string& kind, const std::string& name, const torch::Tensor& t) {
  return kind + " '" + name + "' " + shape_text(t) + " " + c10::toString(t.scalar_type()) +
         (kind == "parameter" && !t.requires_grad() ? " (frozen)" : "");
}

// A tensor shaped like `param` over buffer[offset, offset + numel). Shares the storage but
// is not an autograd view, so LibTorch's Optimizer::zero_grad (which calls detach_() on
// every gradient) still works on it. It takes the parameter's strides when the parameter
// is dense (channels_last weights get channels_last gradients), because the fused and
// multi-tensor optimizer kernels need a parameter and its gradient laid out alike.
torch::Tensor alias_of(const torch::Tensor& buffer, int64_t offset, const torch::Tensor& param) {
  std::vector<int64_t> strides = param.strides().vec();
  if (!param.is_non_overlapping_and_dense()) {
    const auto contiguous = c10::contiguous_strides(param.sizes());
    strides.assign(contiguous.begin(), contiguous.end());
  }
  return torch::empty({0}, buffer.options())
      .set_(buffer.storage(), buffer.storage_offset() + offset, param.sizes(), strides);
}

torch::ScalarType wire_type(WireDtype wire) {
  return wire == WireDtype::kBFloat16 ? torch::kBFloat16 : torch::kHalf;
}

}  // namespace

DistributedDataParallel::DistributedDataParallel(std::shared_ptr<torch::nn::Module> module, Communicator& comm,
                                                 DdpOptions options)
    : module_(std::move(module)), comm_(comm), options_(options) {
  DPUNET_CHECK(module_ != nullptr, "DistributedDataParallel: no module given");
  std::vector<std::string> description;
  std::vector<torch::Tensor> state;
  for (const auto& item : module_->named_parameters(/*recurse=*/true)) {
    description.push_back(describe_tensor("parameter", item.key(), item.value()));
    state.push_back(item.value());
    if (!item.value().requires_grad()) continue;
    DPUNET_CHECK(item.value().device() == comm_.device(), "DistributedDataParallel: parameter '", item.key(),
                 "' is on ", item.value().device().str(), " but the ", comm_.backend(), " communicator works on ",
                 comm_.device().str());
    names_.push_back(item.key());
    params_.push_back(item.value());
  }
  for (const auto& item : module_->named_buffers(/*recurse=*/true)) {
    description.push_back(describe_tensor("buffer", item.key(), item.value()));
    state.push_back(item.value());
  }
  check_same_on_all_ranks(comm_, description, "model");
  {
    torch::NoGradGuard no_grad;
    broadcast_coalesced(comm_, state, /*root=*/0);
  }

  std::vector<size_t> reverse_order(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) reverse_order[i] = params_.size() - 1 - i;
  build_buckets(reverse_order);
  register_hooks();
}

DistributedDataParallel::~DistributedDataParallel() {
  for (auto& [node, key] : hooks_) node->del_post_hook(key);
}

void DistributedDataParallel::build_buckets(const std::vector<size_t>& order) {
  plan_order_ = order;
  std::vector<ParamSlot> slots;
  for (const auto& p : params_) {
    slots.push_back({static_cast<int64_t>(p.numel() * p.element_size()),
                     std::string(c10::toString(p.scalar_type())) + "@" + p.device().str()});
  }
  buckets_.clear();
  bucket_of_.assign(params_.size(), 0);
  views_.assign(params_.size(), torch::Tensor());
  ready_.assign(params_.size(), false);
  accumulated_.assign(params_.size(), false);
  torch::NoGradGuard no_grad;
  for (auto& members : plan_buckets(slots, order, options_.bucket_caps)) {
    auto bucket = std::make_unique<Bucket>();
    int64_t total = 0;
    for (size_t p : members) total += params_[p].numel();
    bucket->buffer = torch::zeros({total}, params_[members.front()].options());
    int64_t offset = 0;
    for (size_t p : members) {
      bucket_of_[p] = buckets_.size();
      views_[p] = alias_of(bucket->buffer, offset, params_[p]);
      offset += params_[p].numel();
      // Keep a gradient that exists already (resuming mid-accumulation) by moving it in.
      if (params_[p].grad().defined()) views_[p].copy_(params_[p].grad());
      params_[p].mutable_grad() = views_[p];
    }
    bucket->params = std::move(members);
    bucket->pending = bucket->params.size();
    buckets_.push_back(std::move(bucket));
  }
}

void DistributedDataParallel::register_hooks() {
  try {
    for (size_t i = 0; i < params_.size(); ++i) {
      // (The models agree across ranks by now: every rank fails here alike.)
      DPUNET_CHECK(params_[i].is_leaf(), "DistributedDataParallel: parameter '", names_[i],
                   "' is computed from other tensors (not a leaf): it has no gradient of its own to reduce");
      // The variable keeps only a weak reference to its accumulator: hold it, or the hook
      // vanishes with it.
      auto accumulator = torch::autograd::impl::grad_accumulator(params_[i]);
      DPUNET_CHECK(accumulator != nullptr, "DistributedDataParallel: parameter '", names_[i],
                   "' has no gradient accumulator (is it a leaf that requires grad?)");
      const uintptr_t key = accumulator->add_post_hook(std::make_unique<GradientReadyHook>(this, i));
      hooks_.emplace_back(std::move(accumulator), key);
    }
  } catch (...) {
    // The constructor fails, so no destructor removes the hooks added so far: they would
    // call into the freed reducer from a later backward of the model.
    for (auto& [node, key] : hooks_) node->del_post_hook(key);
    hooks_.clear();
    throw;
  }
}

void DistributedDataParallel::bind_gradient(size_t param) {
  torch::Tensor& grad = params_[param].mutable_grad();
  if (grad.defined() && grad.data_ptr() == views_[param].data_ptr()) return;
  // The gradient was replaced (set to none, or assigned): move it back into its bucket.
  torch::NoGradGuard no_grad;
  if (grad.defined()) {
    views_[param].copy_(grad);
  } else {
    views_[param].zero_();
  }
  grad = views_[param];
}

void DistributedDataParallel::on_gradient_ready(size_t param) {
  std::lock_guard<std::mutex> lock(mutex_);
  bind_gradient(param);
  if (no_sync_depth_ > 0) {
    accumulated_[param] = true;
    return;
  }
  DPUNET_CHECK(!ready_[param], "DistributedDataParallel: parameter '", names_[param],
               "' received a second gradient before synchronize(): call synchronize() after every backward, "
               "and do not use a parameter in two checkpointed blocks");
  step_started_ = true;
  ready_[param] = true;
  if (!rebuilt_) ready_order_.push_back(param);
  Bucket& bucket = *buckets_[bucket_of_[param]];
  if (--bucket.pending == 0) launch_ready_buckets();
}

void DistributedDataParallel::launch_ready_buckets() {
  // Always in bucket order: every rank must issue the same collectives in the same order,
  // even when a later bucket fills first.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->pending == 0) launch(*buckets_[next_launch_++]);
}

void DistributedDataParallel::launch(Bucket& bucket) {
  if (!communicates()) return;
  torch::NoGradGuard no_grad;
  if (options_.wire_dtype != WireDtype::kNone && bucket.buffer.is_floating_point()) {
    // Average before narrowing: fp16 would overflow on a large sum. On a GPU one kernel
    // divides in float and rounds into the wire type, with no float temporary of the
    // bucket's size (the CPU's kernel still makes one).
    bucket.wire = torch::empty_like(bucket.buffer, bucket.buffer.options().dtype(wire_type(options_.wire_dtype)));
    torch::div_out(bucket.wire, bucket.buffer, torch::scalar_tensor(static_cast<double>(comm_.world_size())));
    bucket.work = comm_.all_reduce_async(bucket.wire, ReduceOp::kSum);
  } else {
    bucket.work = comm_.all_reduce_async(bucket.buffer, ReduceOp::kAvg);
  }
}

void DistributedDataParallel::finish_unused_parameters() {
  std::vector<std::string> unused;
  for (size_t p = 0; p < params_.size(); ++p) {
    if (ready_[p]) continue;
    // A gradient from an earlier micro-batch of this step (under no_sync) is a use.
    if (!accumulated_[p]) unused.push_back(names_[p]);
    if (!options_.allow_unused_parameters && !accumulated_[p]) continue;
    bind_gradient(p);  // keeps whatever was accumulated earlier (zero when nothing)
    ready_[p] = true;
    --buckets_[bucket_of_[p]]->pending;
  }
  if (unused.empty() || options_.allow_unused_parameters) return;
  std::string list;
  for (size_t i = 0; i < unused.size() && i < 10; ++i) list += (i ? ", " : "") + unused[i];
  if (unused.size() > 10) list += ", ... (" + std::to_string(unused.size()) + " in all)";
  DPUNET_FAIL("DistributedDataParallel: these parameters got no gradient in this step: ", list,
              ". Set allow_unused_parameters if the model skips them on purpose.");
}

void DistributedDataParallel::synchronize() {
  std::lock_guard<std::mutex> lock(mutex_);
  DPUNET_CHECK(no_sync_depth_ == 0, "DistributedDataParallel: synchronize() inside a no_sync() scope");
  // A step in which backward reached no parameter at all still has to take part in the
  // collectives the other ranks issue.
  finish_unused_parameters();
  launch_ready_buckets();
  DPUNET_CHECK(next_launch_ == buckets_.size(), "DistributedDataParallel: ", buckets_.size() - next_launch_,
               " buckets were never started");
  torch::NoGradGuard no_grad;
  for (auto& bucket : buckets_) {
    // On a GPU the host does not wait: the optimizer's kernels queue behind the
    // all-reduces, and the host runs ahead into the next step.
    if (bucket->work) bucket->work->wait_on_stream();
    bucket->work.reset();
    if (bucket->wire.defined()) {
      bucket->buffer.copy_(bucket->wire);
      bucket->wire = torch::Tensor();
    }
    bucket->pending = bucket->params.size();
  }
  std::fill(ready_.begin(), ready_.end(), false);
  std::fill(accumulated_.begin(), accumulated_.end(), false);
  next_launch_ = 0;
  step_started_ = false;
  if (!rebuilt_) rebuild_in_ready_order();
  if (options_.broadcast_buffers && communicates()) {
    std::vector<torch::Tensor> buffers;
    for (const auto& b : module_->buffers(/*recurse=*/true)) buffers.push_back(b);
    if (!buffers.empty()) broadcast_coalesced(comm_, buffers, /*root=*/0);
  }
}

void DistributedDataParallel::rebuild_in_ready_order() {
  rebuilt_ = true;
  std::vector<size_t> order = std::move(ready_order_);
  ready_order_.clear();
  if (!options_.rebuild_buckets) return;
  // Parameters that got no gradient (allowed unused ones) go last, in planned order.
  std::vector<bool> seen(params_.size(), false);
  for (size_t p : order) seen[p] = true;
  for (size_t p : plan_order_) {
    if (!seen[p]) order.push_back(p);
  }
  // Autograd's order can differ between ranks (threads, timing); all must use one.
  if (!communicates()) {
    if (order != plan_order_) build_buckets(order);
    return;
  }
  torch::Tensor shared = torch::tensor(std::vector<int64_t>(order.begin(), order.end()),
                                       torch::TensorOptions().dtype(torch::kLong).device(comm_.device()));
  comm_.broadcast(shared, /*root=*/0);
  shared = shared.cpu();
  const int64_t* agreed = shared.data_ptr<int64_t>();
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<size_t>(agreed[i]);
  if (order == plan_order_) return;
  // The gradients of this step are in the old buckets: build_buckets moves them over.
  build_buckets(order);
}

std::vector<int64_t> DistributedDataParallel::bucket_order() const {
  return std::vector<int64_t>(plan_order_.begin(), plan_order_.end());
}

bool DistributedDataParallel::restore_bucket_order(const std::vector<int64_t>& order) {
  DPUNET_CHECK(!step_started_ && ready_order_.empty() && !rebuilt_ && no_sync_depth_ == 0 &&
                   std::none_of(accumulated_.begin(), accumulated_.end(), [](bool used) { return used; }),
               "DistributedDataParallel: the bucket layout can be restored only before the first step "
               "(and its first backward)");
  std::vector<bool> seen(params_.size(), false);
  std::vector<size_t> planned;
  for (int64_t p : order) {
    if (p < 0 || p >= static_cast<int64_t>(params_.size()) || seen[static_cast<size_t>(p)]) return false;
    seen[static_cast<size_t>(p)] = true;
    planned.push_back(static_cast<size_t>(p));
  }
  if (planned.size() != params_.size()) return false;
  if (planned != plan_order_) {
    std::lock_guard<std::mutex> lock(mutex_);
    build_buckets(planned);
  }
  return true;
}

void DistributedDataParallel::zero_grad() {
  std::lock_guard<std::mutex> lock(mutex_);
  // Its buckets' all-reduces may be in flight, reading and writing them.
  DPUNET_CHECK(!step_started_, "DistributedDataParallel: zero_grad() between a backward and its synchronize()");
  torch::NoGradGuard no_grad;
  for (auto& bucket : buckets_) bucket->buffer.zero_();
  // Zero means zero: a gradient replaced since the step (clipped into a new tensor, say)
  // is dropped, not copied back into its bucket.
  for (size_t p = 0; p < params_.size(); ++p) params_[p].mutable_grad() = views_[p];
  // Micro-batches accumulated under no_sync are gone with their gradients: a parameter
  // only they reached is unused in the step that follows.
  std::fill(accumulated_.begin(), accumulated_.end(), false);
}

DistributedDataParallel::NoSync::NoSync(DistributedDataParallel& ddp) : ddp_(ddp) {
  std::lock_guard<std::mutex> lock(ddp_.mutex_);
  DPUNET_CHECK(!ddp_.step_started_,
               "DistributedDataParallel: no_sync() entered after a synchronised backward "
               "that was not followed by synchronize()");
  ++ddp_.no_sync_depth_;
}

DistributedDataParallel::NoSync::~NoSync() {
  std::lock_guard<std::mutex> lock(ddp_.mutex_);
  --ddp_.no_sync_depth_;
}

std::vector<std::vector<std::string>> DistributedDataParallel::bucket_parameter_names() const {
  std::vector<std::vector<std::string>> names;
  for (const auto& bucket : buckets_) {
    names.emplace_back();
    for (size_t p : bucket->params) names.back().push_back(names_[p]);
  }
  return names;
}

std::vector<int64_t> DistributedDataParallel::bucket_numels() const {
  std::vector<int64_t> numels;
  for (const auto& bucket : buckets_) numels.push_back(bucket->buffer.numel());
  return numels;
}

}  // namespace dpunet::dist
