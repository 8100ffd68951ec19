// Checkpoint serialisation, framing and verification.
#include "checkpoint/checkpoint.h"

#include <torch/serialize.h>
#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/finite_weights.h"

namespace dpunet::checkpoint {
namespace {

constexpr char kMagic[8] = {'D', 'P', 'U', 'N', 'E', 'T', 'C', 'K'};
constexpr size_t kHeaderBytes = 8 + 4 + 8 + 4;

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}
template <typename T>
T get(const std::string& in, size_t offset) {
  T value;
  std::memcpy(&value, in.data() + offset, sizeof(value));
  return value;
}

uint32_t crc_of(const char* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (size > 0) {  // zlib takes uInt lengths
    const uInt chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

// A checkpoint this build cannot read but that is not damaged: no reason to skip it.
class NewerFormat : public Error {
 public:
  using Error::Error;
};

// The format version the payload itself records, or 0 when the bytes after the header
// are not this layout's intact payload (their length or CRC-32 differ) or cannot be read.
int64_t payload_format_version(const std::string& bytes) {
  if (bytes.size() - kHeaderBytes != get<uint64_t>(bytes, 12)) return 0;
  if (crc_of(bytes.data() + kHeaderBytes, bytes.size() - kHeaderBytes) != get<uint32_t>(bytes, 20)) return 0;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(bytes.data() + kHeaderBytes, bytes.size() - kHeaderBytes, torch::Device(torch::kCPU));
    c10::IValue v;
    return archive.try_read("meta.format_version", v) && v.isInt() ? v.toInt() : 0;
  } catch (const c10::Error&) {
    return 0;
  }
}

// Checks the frame; returns the payload's offset or throws naming what is wrong.
void verify_frame(const std::string& path, const std::string& bytes) {
  const bool magic = bytes.size() >= 8 && std::memcmp(bytes.data(), kMagic, 8) == 0;
  DPUNET_CHECK(!magic || bytes.size() >= kHeaderBytes, path, ": truncated checkpoint (", bytes.size(),
               " bytes, shorter than its ", kHeaderBytes, "-byte header)");
  if (!magic) {
    // A safetensors file starts with its header's length, then the JSON header itself.
    const bool safetensors = bytes.size() > 8 && bytes[8] == '{';
    DPUNET_FAIL(path, ": not a dpunet checkpoint (no DPUNETCK header)",
                safetensors ? "; it looks like safetensors weights, which predict takes with --weights and train "
                              "with --init-weights"
                            : "");
  }
  const auto version = get<uint32_t>(bytes, 8);
  // The header is outside the checksum: a version no dpunet will reach for years is a
  // flipped bit, and a damaged file, not a newer one (which --resume auto stops at).
  constexpr uint32_t kPlausibleVersions = 1000;
  DPUNET_CHECK(version >= 1 && version <= kPlausibleVersions, path, ": checkpoint format version ", version,
               " (the file is damaged)");
  if (version > kFormatVersion) {
    // Nor is a newer version whose intact payload says it is one this build wrote: a
    // flipped low bit (1 -> 3, 5, 9) would otherwise stop --resume auto at a damaged file.
    const int64_t written_as = payload_format_version(bytes);
    DPUNET_CHECK(written_as < 1 || written_as > kFormatVersion, path, ": checkpoint format version ", version,
                 " in its header, but its contents were written as version ", written_as, " (the file is damaged)");
    throw NewerFormat(detail::concat(path, ": checkpoint format version ", version,
                                     " is newer than this build reads (1 to ", kFormatVersion,
                                     "): use the dpunet that wrote it (", __FILE__, ":", __LINE__, ")"));
  }
  const auto payload = get<uint64_t>(bytes, 12);
  DPUNET_CHECK(bytes.size() - kHeaderBytes == payload, path, ": truncated or padded checkpoint (",
               bytes.size() - kHeaderBytes, " payload bytes, header says ", payload, ")");
  DPUNET_CHECK(crc_of(bytes.data() + kHeaderBytes, payload) == get<uint32_t>(bytes, 20), path,
               ": checkpoint checksum mismatch (the file is damaged)");
}

void write_meta(torch::serialize::OutputArchive& archive, const TrainingState& s) {
  archive.write("meta.step", c10::IValue(s.step));
  archive.write("meta.sampler_epoch", c10::IValue(s.sampler.epoch));
  archive.write("meta.sampler_position", c10::IValue(s.sampler.position));
  archive.write("meta.world_size", c10::IValue(static_cast<int64_t>(s.world_size)));
  archive.write("meta.elapsed_s", c10::IValue(s.elapsed_s));
  archive.write("meta.config", c10::IValue(s.config_yaml));
  archive.write("meta.loss_scale", c10::IValue(s.loss_scale));
  archive.write("meta.loss_scale_clean_steps", c10::IValue(s.loss_scale_clean_steps));
  archive.write("meta.loss_scale_skipped", c10::IValue(s.loss_scale_skipped));
  archive.write("meta.loss_scale_skipped_in_a_row", c10::IValue(s.loss_scale_skipped_in_a_row));
  archive.write("meta.best_score", c10::IValue(s.best_score));
  archive.write("meta.dataset_size", c10::IValue(s.dataset_size));
  archive.write("meta.dataset_description", c10::IValue(s.dataset_description));
  archive.write("meta.val_dataset_description", c10::IValue(s.val_dataset_description));
  archive.write("meta.best_step", c10::IValue(s.best_step));
  archive.write("meta.validation_pending", c10::IValue(s.validation_pending));
  archive.write("meta.step_epoch", c10::IValue(s.step_epoch));
  archive.write("meta.loss_window_sum", c10::IValue(s.loss_window_sum));
  archive.write("meta.loss_window_steps", c10::IValue(s.loss_window_steps));
  archive.write("meta.loss_window_rank_sums", torch::tensor(s.loss_window_rank_sums, torch::kDouble));
  archive.write("meta.score_version", c10::IValue(static_cast<int64_t>(s.score_version)));
  archive.write("meta.format_version", c10::IValue(static_cast<int64_t>(kFormatVersion)));
  archive.write("meta.bucket_order", torch::tensor(s.bucket_order, torch::kLong));
  archive.write("rng.cpu", s.rng_cpu.defined() ? s.rng_cpu : torch::empty({0}, torch::kByte));
  archive.write("rng.cuda", s.rng_cuda.defined() ? s.rng_cuda : torch::empty({0}, torch::kByte));
}

TrainingState read_meta(torch::serialize::InputArchive& archive) {
  TrainingState s;
  c10::IValue v;
  archive.read("meta.step", v), s.step = v.toInt();
  archive.read("meta.sampler_epoch", v), s.sampler.epoch = v.toInt();
  archive.read("meta.sampler_position", v), s.sampler.position = v.toInt();
  archive.read("meta.world_size", v), s.world_size = static_cast<int>(v.toInt());
  archive.read("meta.config", v), s.config_yaml = v.toStringRef();
  archive.read("meta.loss_scale", v), s.loss_scale = v.toDouble();
  archive.read("meta.loss_scale_clean_steps", v), s.loss_scale_clean_steps = v.toInt();
  archive.read("meta.best_score", v), s.best_score = v.toDouble();
  if (archive.try_read("meta.loss_scale_skipped", v)) s.loss_scale_skipped = v.toInt();
  if (archive.try_read("meta.loss_scale_skipped_in_a_row", v)) s.loss_scale_skipped_in_a_row = v.toInt();
  if (archive.try_read("meta.dataset_size", v)) s.dataset_size = v.toInt();
  if (archive.try_read("meta.elapsed_s", v)) s.elapsed_s = v.toDouble();
  if (archive.try_read("meta.dataset_description", v)) s.dataset_description = v.toStringRef();
  if (archive.try_read("meta.val_dataset_description", v)) s.val_dataset_description = v.toStringRef();
  if (archive.try_read("meta.best_step", v)) s.best_step = v.toInt();
  if (archive.try_read("meta.validation_pending", v)) s.validation_pending = v.toBool();
  if (archive.try_read("meta.step_epoch", v)) s.step_epoch = v.toInt();
  if (archive.try_read("meta.loss_window_sum", v)) s.loss_window_sum = v.toDouble();
  if (archive.try_read("meta.loss_window_steps", v)) s.loss_window_steps = v.toInt();
  torch::Tensor rank_sums;
  if (archive.try_read("meta.loss_window_rank_sums", rank_sums)) {
    const torch::Tensor sums = rank_sums.to(torch::kDouble).contiguous();
    s.loss_window_rank_sums.assign(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
  }
  s.score_version = archive.try_read("meta.score_version", v) ? static_cast<int>(v.toInt()) : 1;
  torch::Tensor bucket_order;
  if (archive.try_read("meta.bucket_order", bucket_order)) {
    const torch::Tensor order = bucket_order.to(torch::kLong).contiguous();
    s.bucket_order.assign(order.data_ptr<int64_t>(), order.data_ptr<int64_t>() + order.numel());
  }
  archive.read("rng.cpu", s.rng_cpu);
  archive.read("rng.cuda", s.rng_cuda);
  if (s.rng_cpu.numel() == 0) s.rng_cpu = torch::Tensor();
  if (s.rng_cuda.numel() == 0) s.rng_cuda = torch::Tensor();
  return s;
}

}  // namespace

std::string encode_checkpoint(torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                              const TrainingState& state) {
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  model.save(model_archive);
  optimizer.save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  write_meta(archive, state);
  std::ostringstream payload;
  archive.save_to(payload);
  return payload.str();
}

void write_checkpoint(const std::string& path, const std::string& payload) {
  std::string header(kMagic, 8);
  put<uint32_t>(header, kFormatVersion);
  put<uint64_t>(header, payload.size());
  put<uint32_t>(header, crc_of(payload.data(), payload.size()));
  write_file_atomically(path, {header, payload});
}

void save_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                     const TrainingState& state) {
  write_checkpoint(path, encode_checkpoint(model, optimizer, state));
}

LoadedCheckpoint::LoadedCheckpoint(const std::string& path) : path_(path) {
  const std::string bytes = read_file(path);
  verify_frame(path, bytes);
  crc_ = get<uint32_t>(bytes, 20);
  try {
    // Onto the CPU whatever device wrote it: rank 0 saves from its GPU, and every rank
    // reads; restore_* then places each tensor next to what it belongs to. Read in place:
    // every rank of a node holds the file at once.
    archive_.load_from(bytes.data() + kHeaderBytes, bytes.size() - kHeaderBytes, torch::Device(torch::kCPU));
    c10::IValue written_as;
    if (archive_.try_read("meta.format_version", written_as) && written_as.isInt() &&
        written_as.toInt() > kFormatVersion) {
      // A newer file whose header's version lost a bit: what it holds may mean other things.
      DPUNET_FAIL(path, ": its contents were written as checkpoint format version ", written_as.toInt(),
                  ", newer than this build reads (1 to ", kFormatVersion, "), though its header says ",
                  get<uint32_t>(bytes, 8), " (damaged): use the dpunet that wrote it");
    }
    state_ = read_meta(archive_);
  } catch (const c10::Error& e) {
    DPUNET_FAIL(path, ": unreadable checkpoint contents: ", e.what_without_backtrace());
  }
}

namespace {

// Name and "[sizes] dtype" of every parameter, then every buffer, in the model's order
// (a listing of differences then starts at its first layer).
std::vector<std::pair<std::string, std::string>> tensor_layouts(torch::nn::Module& model) {
  std::vector<std::pair<std::string, std::string>> layouts;
  const auto describe = [](const torch::Tensor& t) { return c10::str(t.sizes(), " ", t.scalar_type()); };
  for (const auto& p : model.named_parameters()) layouts.emplace_back(p.key(), describe(p.value()));
  for (const auto& b : model.named_buffers()) layouts.emplace_back(b.key(), describe(b.value()));
  return layouts;
}

// archive.read(key, ...), with a damaged file's error naming it and the key.
void read_section(torch::serialize::InputArchive& archive, const std::string& key,
                  torch::serialize::InputArchive& section, const std::string& path) {
  try {
    archive.read(key, section);
  } catch (const c10::Error& e) {
    DPUNET_FAIL(path, ": unreadable checkpoint contents: no '", key, "' section (", e.what_without_backtrace(), ")");
  }
}

// The archive's tensors and sections that `module` has no place for, as dotted names
// under `prefix`: LibTorch's load reads the module's own and passes over the rest, so a
// BatchNorm model's running statistics would vanish into a GroupNorm one unseen.
void unexpected_entries(torch::nn::Module& module, torch::serialize::InputArchive& archive, const std::string& prefix,
                        std::vector<std::string>& found) {
  std::set<std::string> known = {"training"};  // every module archive's flag
  for (const auto& p : module.named_parameters(/*recurse=*/false)) known.insert(p.key());
  for (const auto& b : module.named_buffers(/*recurse=*/false)) known.insert(b.key());
  for (const auto& c : module.named_children()) known.insert(c.key());
  for (const std::string& key : archive.keys()) {
    if (known.count(key) == 0) found.push_back(prefix + key);
  }
  for (const auto& c : module.named_children()) {
    torch::serialize::InputArchive section;
    if (archive.try_read(c.key(), section)) unexpected_entries(*c.value(), section, prefix + c.key() + ".", found);
  }
}

}  // namespace

void LoadedCheckpoint::restore_model(torch::nn::Module& model) const {
  torch::serialize::InputArchive model_archive;
  read_section(archive_, "model", model_archive, path_);
  // LibTorch's load replaces each tensor with the archive's whatever its shape; a
  // checkpoint whose tensors disagree with its own config must not pass for this model.
  const auto expected = tensor_layouts(model);
  try {
    model.load(model_archive);
  } catch (const c10::Error& e) {
    DPUNET_FAIL(path_, ": the checkpoint does not fit this model: ", e.what_without_backtrace());
  }
  // The first few: a model of another width differs in every tensor.
  constexpr size_t kListed = 12;
  std::string mismatches;
  size_t count = 0;
  const auto loaded = tensor_layouts(model);  // the same names in the same order: load keeps the model's tensors
  for (size_t i = 0; i < loaded.size(); ++i) {
    const auto& [name, layout] = loaded[i];
    const std::string& want = expected.at(i).second;
    if (layout == want) continue;
    if (++count <= kListed) mismatches += "\n  " + name + ": " + layout + " in the checkpoint, the model has " + want;
  }
  if (count > kListed) mismatches += "\n  and " + std::to_string(count - kListed) + " more";
  DPUNET_CHECK(count == 0, path_, ": the checkpoint does not fit this model (", count,
               count == 1 ? " tensor differs" : " tensors differ", "):", mismatches);
  std::vector<std::string> unexpected;
  unexpected_entries(model, model_archive, "", unexpected);
  std::string listed;
  for (size_t i = 0; i < std::min(unexpected.size(), kListed); ++i) listed += "\n  " + unexpected[i];
  if (unexpected.size() > kListed) listed += "\n  and " + std::to_string(unexpected.size() - kListed) + " more";
  DPUNET_CHECK(unexpected.empty(), path_, ": the checkpoint does not fit this model: ", unexpected.size(),
               " unexpected tensor(s) or layer(s) that the model has none of (another model.norm or depth?):", listed);
  // A NaN weight makes every prediction NaN (and every mask class 0), as --weights says too.
  const std::string non_finite = model::non_finite_tensors(model);
  DPUNET_CHECK(non_finite.empty(), path_, ": the checkpoint's model holds NaN or infinite values in:", non_finite);
}

namespace {

// Each state tensor on its parameter's device and in its layout: LibTorch's load leaves
// them where the archive put them, and the fused kernels need a parameter, its gradient
// and its state laid out alike.
void place_state_like_parameters(torch::optim::Optimizer& optimizer, const std::string& path) {
  std::unordered_map<void*, std::pair<torch::Tensor, size_t>> parameters;  // and its place in the optimizer
  for (auto& group : optimizer.param_groups()) {
    for (auto& p : group.params()) parameters.emplace(p.unsafeGetTensorImpl(), std::make_pair(p, parameters.size()));
  }
  torch::NoGradGuard no_grad;
  for (auto& [key, state] : optimizer.state()) {
    const auto found = parameters.find(key);
    if (found == parameters.end()) continue;
    const auto& [p, place] = found->second;
    // LibTorch matches the state to parameters by place alone, and copy_ would broadcast
    // a state of another shape over its parameter.
    auto like_parameter = [&, place = place](const torch::Tensor& t, const char* what) {
      if (!t.defined()) return t;
      DPUNET_CHECK(t.sizes() == p.sizes(), path, ": the optimizer's ", what, " for parameter ", place, " has shape ",
                   t.sizes(), ", the parameter ", p.sizes(), " (a damaged checkpoint, or another model's)");
      return torch::empty_like(p).copy_(t);
    };
    if (auto* adamw = dynamic_cast<torch::optim::AdamWParamState*>(state.get())) {
      adamw->exp_avg(like_parameter(adamw->exp_avg(), "exp_avg"));
      adamw->exp_avg_sq(like_parameter(adamw->exp_avg_sq(), "exp_avg_sq"));
      adamw->max_exp_avg_sq(like_parameter(adamw->max_exp_avg_sq(), "max_exp_avg_sq"));
    } else if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(state.get())) {
      sgd->momentum_buffer(like_parameter(sgd->momentum_buffer(), "momentum buffer"));
    }
  }
}

}  // namespace

void LoadedCheckpoint::restore_optimizer(torch::optim::Optimizer& optimizer) const {
  torch::serialize::InputArchive optimizer_archive;
  read_section(archive_, "optimizer", optimizer_archive, path_);
  // LibTorch's load also replaces each group's hyper-parameters with the saved ones; the
  // run's config (weight decay, betas, momentum changed for the resumed run) wins instead.
  std::vector<std::unique_ptr<torch::optim::OptimizerOptions>> configured;
  for (auto& group : optimizer.param_groups()) configured.push_back(group.options().clone());
  try {
    optimizer.load(optimizer_archive);
  } catch (const c10::Error& e) {
    DPUNET_FAIL(path_, ": the optimizer state does not fit: ", e.what_without_backtrace());
  }
  DPUNET_CHECK(optimizer.param_groups().size() == configured.size(), path_, ": the checkpoint's optimizer has ",
               optimizer.param_groups().size(), " parameter groups, this run's has ", configured.size());
  for (size_t i = 0; i < configured.size(); ++i) optimizer.param_groups()[i].set_options(std::move(configured[i]));
  place_state_like_parameters(optimizer, path_);
}

bool is_valid_checkpoint(const std::string& path, std::string* why) {
  // A file that cannot be read (permissions, an I/O error of a network filesystem) is not
  // a damaged one: taking it for one would let --resume auto start afresh and set the
  // run's whole history aside. That error stops the caller instead.
  const std::string bytes = read_file(path);
  try {
    verify_frame(path, bytes);
    return true;
  } catch (const NewerFormat&) {
    // Nor is a checkpoint of a newer format: a resume with an older build would set the
    // run's newest checkpoints aside and train their steps again.
    throw;
  } catch (const Error& e) {
    if (why != nullptr) *why = e.what();
    return false;
  }
}

bool has_checkpoint_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  return in.read(magic, sizeof(magic)) && std::memcmp(magic, kMagic, sizeof(magic)) == 0;
}

}  // namespace dpunet::checkpoint
