// Checkpoints: exact round trip of model, optimizer and state; damage detected before
// loading; the store's latest/best/keep-K rules and its fallback past a damaged file.
#include <torch/torch.h>
#include "support/catch.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/store.h"
#include "common/atomic_file.h"
#include "support/temp_dir.h"
#include "train/optimizer.h"

using dpunet::checkpoint::LoadedCheckpoint;

namespace {

struct Trained {
  torch::nn::Linear model{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
  explicit Trained(int seed) {
    torch::manual_seed(seed);
    model = torch::nn::Linear(4, 3);
    optimizer = std::make_unique<torch::optim::AdamW>(model->parameters(), torch::optim::AdamWOptions(0.1));
  }
  void step() {
    optimizer->zero_grad();
    model->forward(torch::ones({2, 4})).pow(2).sum().backward();
    optimizer->step();
  }
};

// Saves `t` with a filled-in training state; returns the CPU generator state it saved.
torch::Tensor save(const std::string& path, Trained& t, int64_t step) {
  dpunet::checkpoint::TrainingState state;
  state.step = step;
  state.sampler = {3, 40};
  state.world_size = 2;
  state.config_yaml = "model:\n  depth: 2\n";
  state.best_score = 0.5;
  state.dataset_size = 123;
  state.best_step = 7;
  state.step_epoch = 2;
  state.loss_scale = 0.25;
  state.loss_scale_clean_steps = 9;
  state.loss_scale_skipped = 3;
  state.loss_scale_skipped_in_a_row = 2;
  state.rng_cpu = at::detail::getDefaultCPUGenerator().get_state();
  dpunet::checkpoint::save_checkpoint(path, *t.model, *t.optimizer, state);
  return state.rng_cpu;
}

}  // namespace

TEST_CASE("restored optimizer state takes its parameter's layout", "[checkpoint]") {
  // Saved from contiguous weights, resumed into channels_last ones (as a GPU run has).
  dpunet::test::TempDir dir;
  for (const std::string name : {"adamw", "sgd"}) {
    INFO(name);
    torch::manual_seed(0);
    torch::nn::Conv2d saved_model(torch::nn::Conv2dOptions(2, 3, 3));
    dpunet::train::OptimizerSettings settings;
    settings.name = name;
    auto saved_optimizer = dpunet::train::make_optimizer(settings, saved_model->parameters());
    saved_model->forward(torch::ones({1, 2, 5, 5})).square().sum().backward();
    saved_optimizer->step();
    dpunet::checkpoint::save_checkpoint(dir / "c.ckpt", *saved_model, *saved_optimizer, {});

    torch::nn::Conv2d model(torch::nn::Conv2dOptions(2, 3, 3));
    model->weight.set_data(model->weight.data().contiguous(at::MemoryFormat::ChannelsLast));
    auto optimizer = dpunet::train::make_optimizer(settings, model->parameters());
    LoadedCheckpoint(dir / "c.ckpt").restore_optimizer(*optimizer);
    const auto& state = *optimizer->state().at(model->weight.unsafeGetTensorImpl());
    const torch::Tensor& moment = name == "adamw"
                                      ? static_cast<const torch::optim::AdamWParamState&>(state).exp_avg()
                                      : static_cast<const torch::optim::SGDParamState&>(state).momentum_buffer();
    const auto& saved_state = *saved_optimizer->state().at(saved_model->weight.unsafeGetTensorImpl());
    const torch::Tensor& saved_moment =
        name == "adamw" ? static_cast<const torch::optim::AdamWParamState&>(saved_state).exp_avg()
                        : static_cast<const torch::optim::SGDParamState&>(saved_state).momentum_buffer();
    CHECK(moment.strides() == model->weight.strides());
    CHECK(torch::equal(moment, saved_moment));
  }
}

TEST_CASE("optimizer state of another shape than its parameter is refused naming the file", "[checkpoint]") {
  dpunet::test::TempDir dir;
  Trained a(1);
  a.step();
  // One moment of the bias [3] stored as [1]: copied, it would broadcast over the bias.
  auto& state =
      static_cast<torch::optim::AdamWParamState&>(*a.optimizer->state().at(a.model->bias.unsafeGetTensorImpl()));
  state.exp_avg(torch::ones({1}));
  save(dir / "a.ckpt", a, 1);
  Trained b(2);
  CHECK_THROWS_WITH(LoadedCheckpoint(dir / "a.ckpt").restore_optimizer(*b.optimizer),
                    HasSubstr(dir / "a.ckpt") && HasSubstr("the optimizer's exp_avg for parameter 1 has shape [1], "
                                                           "the parameter [3]"));
}

TEST_CASE("a checkpoint restores model, optimizer and state exactly", "[checkpoint]") {
  dpunet::test::TempDir dir;
  Trained a(1);
  a.step();
  a.step();
  torch::randn({7});  // the generator moved on from its seeded state
  const torch::Tensor rng = save(dir / "a.ckpt", a, 2);
  Trained b(2);  // different weights, fresh optimizer
  const LoadedCheckpoint loaded(dir / "a.ckpt");
  loaded.restore_model(*b.model);
  loaded.restore_optimizer(*b.optimizer);
  CHECK(loaded.state().step == 2);
  CHECK(loaded.state().sampler.epoch == 3);
  CHECK(loaded.state().sampler.position == 40);
  CHECK(loaded.state().world_size == 2);
  CHECK(loaded.state().config_yaml == "model:\n  depth: 2\n");
  CHECK(loaded.state().best_score == 0.5);
  CHECK(loaded.state().dataset_size == 123);
  CHECK(loaded.state().best_step == 7);
  CHECK(loaded.state().step_epoch == 2);
  CHECK(loaded.state().loss_scale == 0.25);
  CHECK(loaded.state().loss_scale_clean_steps == 9);
  CHECK(loaded.state().loss_scale_skipped == 3);
  CHECK(loaded.state().loss_scale_skipped_in_a_row == 2);
  REQUIRE(loaded.state().rng_cpu.defined());
  CHECK(torch::equal(loaded.state().rng_cpu, rng));
  // The next step is identical: weights and Adam moments came back bit for bit.
  a.step();
  b.step();
  CHECK(torch::equal(a.model->weight, b.model->weight));
  CHECK(torch::equal(a.model->bias, b.model->bias));
}

TEST_CASE("a checkpoint whose tensors differ in shape from the model's is refused, naming them", "[checkpoint]") {
  dpunet::test::TempDir dir;
  Trained saved(0);
  save(dir / "c.ckpt", saved, 1);
  torch::nn::Linear narrower(4, 2);  // same names, other shapes: LibTorch's load alone would take them
  CHECK_THROWS_WITH(LoadedCheckpoint(dir / "c.ckpt").restore_model(*narrower),
                    HasSubstr(dir / "c.ckpt") && HasSubstr("does not fit this model") &&
                        HasSubstr("weight: [3, 4] Float in the checkpoint, the model has [2, 4] Float"));
  // Every tensor of a model of another width differs: the first twelve are listed.
  torch::nn::Sequential many, other;
  for (int i = 0; i < 10; ++i) {
    many->push_back(torch::nn::Linear(4, 3));
    other->push_back(torch::nn::Linear(4, 2));
  }
  auto optimizer = torch::optim::AdamW(many->parameters(), torch::optim::AdamWOptions(0.1));
  dpunet::checkpoint::TrainingState state;
  state.rng_cpu = at::detail::getDefaultCPUGenerator().get_state();
  dpunet::checkpoint::save_checkpoint(dir / "many.ckpt", *many, optimizer, state);
  CHECK_THROWS_WITH(LoadedCheckpoint(dir / "many.ckpt").restore_model(*other),
                    HasSubstr("(20 tensors differ)") && HasSubstr("\n  and 8 more"));
}

TEST_CASE("a checkpoint holding tensors or layers the model lacks is refused, naming them", "[checkpoint]") {
  dpunet::test::TempDir dir;
  dpunet::checkpoint::TrainingState state;
  state.rng_cpu = at::detail::getDefaultCPUGenerator().get_state();
  auto saved_as = [&](const std::string& name, torch::nn::Module& model) {
    auto optimizer = torch::optim::AdamW(model.parameters(), torch::optim::AdamWOptions(0.1));
    dpunet::checkpoint::save_checkpoint(dir / name, model, optimizer, state);
    return dir / name;
  };
  // A layer more than the model: LibTorch's load reads the nine it knows and stops there.
  torch::nn::Sequential ten, nine;
  for (int i = 0; i < 10; ++i) ten->push_back(torch::nn::Linear(4, 3));
  for (int i = 0; i < 9; ++i) nine->push_back(torch::nn::Linear(4, 3));
  const std::string deeper = saved_as("ten.ckpt", *ten);
  CHECK_THROWS_WITH(LoadedCheckpoint(deeper).restore_model(*nine),
                    HasSubstr(deeper) && HasSubstr("1 unexpected tensor(s) or layer(s)") && HasSubstr("\n  9"));
  // BatchNorm's running statistics beside GroupNorm's same-named weight and bias.
  torch::nn::Sequential batch_norm(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
  torch::nn::Sequential group_norm(torch::nn::Linear(4, 3), torch::nn::GroupNorm(1, 3));
  const std::string normed = saved_as("batch_norm.ckpt", *batch_norm);
  CHECK_THROWS_WITH(LoadedCheckpoint(normed).restore_model(*group_norm),
                    HasSubstr("3 unexpected") && HasSubstr("\n  1.running_mean") && HasSubstr("\n  1.running_var") &&
                        HasSubstr("\n  1.num_batches_tracked"));
  // The same model loads.
  torch::nn::Sequential same(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
  CHECK_NOTHROW(LoadedCheckpoint(normed).restore_model(*same));
}

TEST_CASE("damaged checkpoints are detected before loading", "[checkpoint]") {
  dpunet::test::TempDir dir;
  Trained a(1);
  save(dir / "a.ckpt", a, 1);
  std::string bytes = dpunet::read_file(dir / "a.ckpt");
  SECTION("truncated") {
    dpunet::write_file_atomically(dir / "a.ckpt", bytes.substr(0, bytes.size() / 2));
    CHECK_THROWS_WITH(LoadedCheckpoint(dir / "a.ckpt"), HasSubstr(dir / "a.ckpt") && HasSubstr("truncated"));
  }
  SECTION("a flipped byte") {
    bytes[bytes.size() - 100] ^= 0x40;
    dpunet::write_file_atomically(dir / "a.ckpt", bytes);
    CHECK_THROWS_WITH(LoadedCheckpoint(dir / "a.ckpt"), HasSubstr("checksum mismatch"));
  }
  SECTION("another kind of file") {
    dpunet::write_file_atomically(dir / "a.ckpt", "hello");
    CHECK_THROWS_WITH(LoadedCheckpoint(dir / "a.ckpt"), HasSubstr("not a dpunet checkpoint"));
  }
  std::string why;
  CHECK_FALSE(dpunet::checkpoint::is_valid_checkpoint(dir / "a.ckpt", &why));
  CHECK_THAT(why, HasSubstr(dir / "a.ckpt"));
}

TEST_CASE("a checkpoint of a newer format stops the store instead of passing for a damaged one", "[checkpoint]") {
  dpunet::test::TempDir dir;
  dpunet::checkpoint::CheckpointStore store(dir.path());
  Trained t(1);
  store.commit(
      10, [&](const std::string& path) { save(path, t, 10); }, /*best=*/false, /*keep_last=*/3);
  store.commit(
      20, [&](const std::string& path) { save(path, t, 20); }, /*best=*/false, /*keep_last=*/3);
  // Step 20's file was written by a dpunet of format 1000: its header's version field
  // (bytes 8..11, little-endian) and its contents say so.
  const auto set_header_version = [](std::string& bytes, uint32_t version) {
    for (int i = 0; i < 4; ++i) bytes[8 + i] = static_cast<char>((version >> (8 * i)) & 0xff);
  };
  torch::serialize::OutputArchive newer;
  newer.write("meta.format_version", c10::IValue(int64_t{1000}));
  std::ostringstream newer_payload;
  newer.save_to(newer_payload);
  dpunet::checkpoint::write_checkpoint(store.path_for_step(20), newer_payload.str());
  std::string bytes = dpunet::read_file(store.path_for_step(20));
  set_header_version(bytes, 1000);
  dpunet::write_file_atomically(store.path_for_step(20), bytes);
  std::vector<std::string> warnings;
  CHECK_THROWS_WITH(store.latest_valid([&](const std::string& m) { warnings.push_back(m); }),
                    HasSubstr(store.path_for_step(20)) && HasSubstr("format version 1000 is newer than this build") &&
                        HasSubstr("use the dpunet that wrote it"));
  CHECK(warnings.empty());
  // The rest are a format-1 file (step 10's bytes) with its header damaged.
  bytes = dpunet::read_file(store.path_for_step(10));
  // Version 0 was never written: damage, skipped as any other.
  set_header_version(bytes, 0);
  dpunet::write_file_atomically(store.path_for_step(20), bytes);
  CHECK(*store.latest_valid([&](const std::string& m) { warnings.push_back(m); }) == store.path_for_step(10));
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], HasSubstr("format version 0 (the file is damaged)"));
  // Nor is a version no dpunet will reach: a flipped high bit of version 1 (the header is
  // outside the checksum).
  set_header_version(bytes, 0x80000001u);
  dpunet::write_file_atomically(store.path_for_step(20), bytes);
  CHECK(*store.latest_valid([&](const std::string& m) { warnings.push_back(m); }) == store.path_for_step(10));
  REQUIRE(warnings.size() == 2);
  CHECK_THAT(warnings[1], HasSubstr("format version 2147483649 (the file is damaged)"));
  // Nor is a flipped low bit (1 -> 3) over contents that say version 1.
  set_header_version(bytes, 3);
  dpunet::write_file_atomically(store.path_for_step(20), bytes);
  CHECK(*store.latest_valid([&](const std::string& m) { warnings.push_back(m); }) == store.path_for_step(10));
  REQUIRE(warnings.size() == 3);
  CHECK_THAT(warnings[2], HasSubstr("format version 3 in its header, but its contents were written as version 1 "
                                    "(the file is damaged)"));
  // The other way round: a newer file whose header lost a bit reads as this build's
  // format; its contents say otherwise.
  bytes = dpunet::read_file(store.path_for_step(10));
  const std::string newer_file = dir / "newer.ckpt";
  dpunet::checkpoint::write_checkpoint(newer_file, newer_payload.str());
  CHECK_THROWS_WITH(LoadedCheckpoint(newer_file),
                    HasSubstr(newer_file) && HasSubstr("contents were written as checkpoint format version 1000") &&
                        HasSubstr("though its header says 1 (damaged)"));
}

TEST_CASE("a checkpoint that cannot be read is not taken for a damaged one", "[checkpoint]") {
  // Reading /proc/self/mem from its start fails with EIO, as a failing disk or network
  // filesystem would; a stream's copy of it ends quietly, as if the file were empty.
  dpunet::test::TempDir dir;
  std::filesystem::create_directories(dir / "checkpoints");
  std::filesystem::create_symlink("/proc/self/mem", dir / "checkpoints/step-00000005.ckpt");
  CHECK_THROWS_WITH(
      dpunet::read_file(dir / "checkpoints/step-00000005.ckpt"),
      HasSubstr("cannot read " + dir / "checkpoints/step-00000005.ckpt") && HasSubstr("Input/output error"));
  const dpunet::checkpoint::CheckpointStore store(dir.path());
  std::vector<std::string> warnings;
  CHECK_THROWS_WITH(store.latest_valid([&](const std::string& m) { warnings.push_back(m); }),
                    HasSubstr("Input/output error"));
  CHECK(warnings.empty());
  CHECK(std::filesystem::is_symlink(dir / "checkpoints/step-00000005.ckpt"));  // not set aside
}

TEST_CASE("a checkpoint cut short inside its header says so", "[checkpoint]") {
  dpunet::test::TempDir dir;
  Trained a(1);
  save(dir / "a.ckpt", a, 1);
  dpunet::write_file_atomically(dir / "a.ckpt", dpunet::read_file(dir / "a.ckpt").substr(0, 12));
  CHECK_THROWS_WITH(LoadedCheckpoint(dir / "a.ckpt"),
                    HasSubstr(dir / "a.ckpt") && HasSubstr("truncated checkpoint (12 bytes, shorter than its 24-byte"));
}

TEST_CASE("a checkpoint whose model holds NaN weights is refused, naming them", "[checkpoint]") {
  dpunet::test::TempDir dir;
  Trained a(1);
  {
    torch::NoGradGuard no_grad;
    a.model->bias[1] = std::numeric_limits<float>::quiet_NaN();
  }
  save(dir / "nan.ckpt", a, 1);
  torch::nn::Linear model(4, 3);
  CHECK_THROWS_WITH(
      LoadedCheckpoint(dir / "nan.ckpt").restore_model(*model),
      HasSubstr(dir / "nan.ckpt") && HasSubstr("NaN or infinite values in:\n  bias") && !HasSubstr("weight"));
}

TEST_CASE("a run directory whose best checkpoint is damaged gives its newest valid one, saying why", "[checkpoint]") {
  dpunet::test::TempDir dir;
  dpunet::checkpoint::CheckpointStore store(dir.path());
  Trained t(1);
  store.commit(
      10, [&](const std::string& path) { save(path, t, 10); }, /*best=*/true, /*keep_last=*/3);
  store.commit(
      20, [&](const std::string& path) { save(path, t, 20); }, /*best=*/false, /*keep_last=*/3);
  std::string chosen;
  CHECK(dpunet::checkpoint::resolve_checkpoint_argument(dir.path(), &chosen) == store.path_for_step(10));
  std::filesystem::resize_file(store.path_for_step(10), 100);
  CHECK(dpunet::checkpoint::resolve_checkpoint_argument(dir.path(), &chosen) == store.path_for_step(20));
  CHECK_THAT(chosen, HasSubstr("the newest of") && HasSubstr("its best is damaged") &&
                         HasSubstr("step-00000010.ckpt") && HasSubstr("truncated"));
  std::filesystem::remove(store.path_for_step(10));
  CHECK(dpunet::checkpoint::resolve_checkpoint_argument(dir.path(), &chosen) == store.path_for_step(20));
  CHECK_THAT(chosen, HasSubstr("its best pointer names " + store.path_for_step(10) + ", which does not exist"));
  // The checkpoints folder given as "." from inside it.
  const auto here = std::filesystem::current_path();
  std::filesystem::current_path(store.directory());
  std::string from_inside, error;
  try {
    from_inside = dpunet::checkpoint::resolve_checkpoint_argument(".", &chosen);
  } catch (const std::exception& e) {
    error = e.what();
  }
  const bool same = !from_inside.empty() && std::filesystem::equivalent(from_inside, store.path_for_step(20));
  std::filesystem::current_path(here);
  INFO(error);
  CHECK(same);
  // The best is the newest, and damaged: its damage is said once.
  store.commit(
      30, [&](const std::string& path) { save(path, t, 30); }, /*best=*/true, /*keep_last=*/3);
  std::filesystem::resize_file(store.path_for_step(30), 100);
  CHECK(dpunet::checkpoint::resolve_checkpoint_argument(dir.path(), &chosen) == store.path_for_step(20));
  CHECK_THAT(chosen, HasSubstr("its best is one of the damaged ones") && HasSubstr("step-00000030.ckpt"));
  const size_t said = chosen.find("truncated");
  CHECK(said != std::string::npos);
  CHECK(chosen.find("truncated", said + 1) == std::string::npos);
  // A name that is nothing: said as such, not as a file that cannot be read.
  CHECK_THROWS_WITH(dpunet::checkpoint::resolve_checkpoint_argument(dir / "runs/typo", &chosen),
                    HasSubstr(dir / "runs/typo: no such checkpoint, run directory or file"));
  std::filesystem::create_symlink(dir / "unmounted/step.ckpt", dir / "dangling");
  CHECK_THROWS_WITH(dpunet::checkpoint::resolve_checkpoint_argument(dir / "dangling", &chosen),
                    HasSubstr(dir / "dangling: a link to " + dir / "unmounted/step.ckpt" + ", which does not exist"));
  // Through a link, the OS's way: link/../x is x beside the folder the link names.
  std::filesystem::create_directories(dir / "real/sub");
  std::filesystem::create_symlink(dir / "real/sub", dir / "link");
  std::filesystem::copy_file(store.path_for_step(20), dir / "real/x.ckpt");
  CHECK(dpunet::checkpoint::resolve_checkpoint_argument(dir / "link/../x.ckpt", &chosen) == dir / "link/../x.ckpt");
  // Nothing valid left: one error naming the folder and each checkpoint's damage.
  std::filesystem::resize_file(store.path_for_step(20), 100);
  CHECK_THROWS_WITH(dpunet::checkpoint::resolve_checkpoint_argument(dir.path(), &chosen),
                    HasSubstr(dir.path() + ": no valid checkpoint in " + store.directory()) &&
                        HasSubstr("step-00000020.ckpt") && HasSubstr("truncated"));
}

TEST_CASE("a best or latest pointer names a file beside it, in a copied folder too", "[checkpoint]") {
  dpunet::test::TempDir dir;
  dpunet::checkpoint::CheckpointStore store(dir / "run");
  Trained t(1);
  store.commit(
      10, [&](const std::string& path) { save(path, t, 10); }, /*best=*/true, /*keep_last=*/3);
  // A copy of the checkpoints folder under another name, beside a checkpoints/ folder
  // that goes on (a backup of the run's folder, trained further since).
  std::filesystem::create_directories(dir / "run/ckpts");
  std::filesystem::copy(store.directory(), dir / "run/ckpts");
  store.commit(
      20, [&](const std::string& path) { save(path, t, 20); }, /*best=*/true, /*keep_last=*/3);
  std::string chosen;
  for (const char* pointer : {"best", "latest"}) {
    INFO(pointer);
    CHECK(dpunet::checkpoint::resolve_checkpoint_argument(dir / "run/ckpts/" + pointer, &chosen) ==
          dir / "run/ckpts/step-00000010.ckpt");
    CHECK(dpunet::checkpoint::resolve_checkpoint_argument(dir / "run/checkpoints/" + pointer, &chosen) ==
          store.path_for_step(20));
  }
  // Given from inside the folder, by its name alone.
  const auto here = std::filesystem::current_path();
  std::filesystem::current_path(dir / "run/ckpts");
  std::string from_inside;
  try {
    from_inside = dpunet::checkpoint::resolve_checkpoint_argument("best", &chosen);
  } catch (const std::exception&) {
  }
  std::filesystem::current_path(here);
  CHECK(from_inside == "step-00000010.ckpt");
}

TEST_CASE("an old checkpoint that cannot be pruned is said once, not ignored", "[checkpoint]") {
  dpunet::test::TempDir dir;
  dpunet::checkpoint::CheckpointStore store(dir.path());
  Trained t(1);
  // A folder by a checkpoint's name, not empty: removing it fails as a full or read-only
  // filesystem would.
  std::filesystem::create_directories(store.path_for_step(5) + "/inside");
  std::ostringstream captured;
  struct Restore {
    std::streambuf* old;
    ~Restore() { std::cerr.rdbuf(old); }
  } restore{std::cerr.rdbuf(captured.rdbuf())};
  store.commit(
      10, [&](const std::string& path) { save(path, t, 10); }, /*best=*/false, /*keep_last=*/1);
  CHECK(std::filesystem::exists(store.path_for_step(10)));
  CHECK_THAT(captured.str(), HasSubstr("cannot remove the old checkpoint " + store.path_for_step(5)) &&
                                 HasSubstr("older checkpoints will pile up"));
  // Said once for that file, not at every save after it (step 10's own file goes).
  store.commit(
      20, [&](const std::string& path) { save(path, t, 20); }, /*best=*/false, /*keep_last=*/1);
  const std::string said = captured.str();
  CHECK(said.find("cannot remove") == said.rfind("cannot remove"));
  CHECK_FALSE(std::filesystem::exists(store.path_for_step(10)));
}

TEST_CASE("the store keeps the last K and the best, and resumes past damage", "[checkpoint]") {
  dpunet::test::TempDir dir;
  dpunet::checkpoint::CheckpointStore store(dir.path());
  Trained t(1);
  auto writer = [&](int64_t step) { return [&, step](const std::string& path) { save(path, t, step); }; };
  store.commit(10, writer(10), /*best=*/true, /*keep_last=*/2);
  store.commit(20, writer(20), false, 2);
  store.commit(30, writer(30), false, 2);
  store.commit(40, writer(40), false, 2);
  const auto kept = store.list();
  REQUIRE(kept.size() == 3);  // 30, 40 and the best, 10
  CHECK(kept[0] == store.path_for_step(10));
  CHECK(*store.best() == store.path_for_step(10));
  std::vector<std::string> warnings;
  auto warn = [&](const std::string& m) { warnings.push_back(m); };
  CHECK(*store.latest_valid(warn) == store.path_for_step(40));
  // Damage the newest: resume falls back to the one before and says why.
  std::filesystem::resize_file(store.path_for_step(40), 100);
  CHECK(*store.latest_valid(warn) == store.path_for_step(30));
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], HasSubstr("step-00000040.ckpt") && HasSubstr("truncated"));
  CHECK_FALSE(dpunet::checkpoint::CheckpointStore(dir / "elsewhere").latest_valid(warn));
  // One that cannot be read at all is no damaged one to skip: resume stops with its name
  // instead of going back past it (here a folder by that name; a file without read
  // permission or an I/O error alike).
  std::filesystem::create_directories(store.path_for_step(50));
  CHECK_THROWS_WITH(store.latest_valid(warn), HasSubstr("cannot read " + store.path_for_step(50)));
}

TEST_CASE("a checkpoints folder or pointer that cannot be read stops the store, naming it, as no empty one would",
          "[checkpoint]") {
  // A symbolic link to itself fails as permissions (which root passes), I/O errors and
  // stale NFS handles do: with an error other than "no such file".
  dpunet::test::TempDir dir;
  dpunet::checkpoint::CheckpointStore store(dir.path());
  Trained t(1);
  auto writer = [&](int64_t step) { return [&, step](const std::string& path) { save(path, t, step); }; };
  SECTION("the folder: resume auto would start afresh and set the run's history aside") {
    std::filesystem::create_symlink("checkpoints", dir / "checkpoints");
    auto warn = [](const std::string&) {};
    CHECK_THROWS_WITH(store.latest_valid(warn), HasSubstr("cannot read " + store.directory()));
    CHECK_THROWS_WITH(store.remove_partial_writes(), HasSubstr("cannot read " + store.directory()));
  }
  SECTION("a link to a folder that is not there (a scratch disk not mounted): no empty folder either") {
    std::filesystem::create_symlink(dir / "unmounted/checkpoints", dir / "checkpoints");
    auto warn = [](const std::string&) {};
    CHECK_THROWS_WITH(store.latest_valid(warn),
                      HasSubstr(store.directory() + ": a link to " + dir / "unmounted/checkpoints" +
                                ", which does not exist: mount or restore it"));
  }
  SECTION("a file where the folder should be") {
    dpunet::write_file_atomically(dir / "checkpoints", "not a folder");
    CHECK_THROWS_WITH(store.list(), HasSubstr("cannot list " + store.directory()));
  }
  SECTION("the best pointer: pruning would take the best checkpoint for an ordinary one") {
    store.commit(10, writer(10), /*best=*/true, /*keep_last=*/1);
    std::filesystem::remove(dir / "checkpoints/best");
    std::filesystem::create_symlink("best", dir / "checkpoints/best");
    CHECK_THROWS_WITH(store.commit(20, writer(20), false, 1), HasSubstr("cannot read " + store.directory() + "/best"));
    CHECK(std::filesystem::exists(store.path_for_step(10)));
  }
}

TEST_CASE("pruning never removes the checkpoint just written, nor ones of later steps", "[checkpoint]") {
  dpunet::test::TempDir dir;
  dpunet::checkpoint::CheckpointStore store(dir.path());
  Trained t(1);
  auto writer = [&](int64_t step) { return [&, step](const std::string& path) { save(path, t, step); }; };
  // A run that went to step 50, resumed from step 20's checkpoint.
  for (int64_t step : {10, 20, 30, 40, 50}) store.commit(step, writer(step), false, 10);
  store.commit(25, writer(25), false, 2);
  const std::vector<std::string> expected = {store.path_for_step(20), store.path_for_step(25), store.path_for_step(30),
                                             store.path_for_step(40), store.path_for_step(50)};
  CHECK(store.list() == expected);
}

TEST_CASE("resume takes the highest valid step, and the checkpoint's own best, over stale pointers", "[checkpoint]") {
  dpunet::test::TempDir dir;
  dpunet::checkpoint::CheckpointStore store(dir.path());
  Trained t(1);
  auto writer = [&](int64_t step) { return [&, step](const std::string& path) { save(path, t, step); }; };
  store.commit(10, writer(10), /*best=*/true, 10);
  store.commit(20, writer(20), /*best=*/true, 10);
  // A stop after step 30's file was written, before the pointers were.
  store.commit(30, writer(30), /*best=*/true, 10);
  dpunet::write_file_atomically(dir / "checkpoints/latest", "step-00000020.ckpt\n");
  dpunet::write_file_atomically(dir / "checkpoints/best", "step-00000020.ckpt\n");
  CHECK(*store.latest_valid([](const std::string&) {}) == store.path_for_step(30));
  store.restore_best(30);  // step 30's state says it is the best
  CHECK(*store.best() == store.path_for_step(30));
}

TEST_CASE("the store sets aside later checkpoints and removes unfinished writes", "[checkpoint]") {
  dpunet::test::TempDir dir;
  dpunet::checkpoint::CheckpointStore store(dir.path());
  Trained t(1);
  auto writer = [&](int64_t step) { return [&, step](const std::string& path) { save(path, t, step); }; };
  store.commit(10, writer(10), /*best=*/false, 10);
  store.commit(20, writer(20), /*best=*/true, 10);
  store.commit(30, writer(30), false, 10);
  dpunet::write_file_atomically(store.path_for_step(40) + ".tmp.12345", "half a checkpoint");
  CHECK(store.remove_partial_writes() == 1);
  SECTION("after a step: later checkpoints and the pointers naming them") {
    const auto moved = store.set_aside(10, dir / "aside");
    CHECK(moved == std::vector<std::string>{"latest", "best", "step-00000020.ckpt", "step-00000030.ckpt"});
    CHECK(store.list() == std::vector<std::string>{store.path_for_step(10)});
    CHECK(store.latest() == store.path_for_step(10));  // the newest left
    CHECK_FALSE(store.best());
    store.restore_best(99);  // no such checkpoint: still none
    CHECK_FALSE(store.best());
    store.restore_best(10);
    CHECK(*store.best() == store.path_for_step(10));
    store.restore_best(20);  // a pointer exists: left alone
    CHECK(*store.best() == store.path_for_step(10));
    CHECK(std::filesystem::exists(dir / "aside/step-00000030.ckpt"));
    CHECK(dpunet::read_file(dir / "aside/latest") == "step-00000030.ckpt\n");
  }
  SECTION("all of them, with the pointers, for a fresh start") {
    CHECK(store.set_aside(std::nullopt, dir / "aside").size() == 5);
    CHECK(store.list().empty());
    CHECK_FALSE(store.latest_valid([](const std::string&) {}));
  }
  SECTION("nothing later: nothing moves, no folder") {
    CHECK(store.set_aside(30, dir / "aside").empty());
    CHECK_FALSE(std::filesystem::exists(dir / "aside"));
  }
  CHECK(dpunet::checkpoint::CheckpointStore::step_of("x/step-00000120.ckpt") == 120);
  CHECK_FALSE(dpunet::checkpoint::CheckpointStore::step_of("step-00000120.ckpt.tmp.7"));
}

TEST_CASE("a restored optimizer keeps the hyper-parameters it was built with", "[checkpoint]") {
  dpunet::test::TempDir dir;
  Trained a(1);
  a.step();
  save(dir / "a.ckpt", a, 1);
  Trained b(1);
  auto& options = static_cast<torch::optim::AdamWOptions&>(b.optimizer->param_groups()[0].options());
  options.weight_decay(0.0).betas({0.5, 0.6});
  const LoadedCheckpoint loaded(dir / "a.ckpt");
  loaded.restore_optimizer(*b.optimizer);
  const auto& after = static_cast<torch::optim::AdamWOptions&>(b.optimizer->param_groups()[0].options());
  CHECK(after.weight_decay() == 0.0);
  CHECK(std::get<0>(after.betas()) == 0.5);
  // The moments did come from the checkpoint.
  const auto& state = b.optimizer->state();
  REQUIRE(state.size() == 2);
  for (const auto& [key, value] : state) {
    CHECK(static_cast<torch::optim::AdamWParamState&>(*value).step() == 1);
  }
}

TEST_CASE("a failed atomic write leaves the previous file intact", "[checkpoint]") {
  dpunet::test::TempDir dir;
  dpunet::write_file_atomically(dir / "f", "old");
  CHECK_THROWS_WITH(dpunet::write_file_atomically(dir / "missing/f", "new"), HasSubstr(dir / "missing/f"));
  // The temporary file cannot be created (a directory holds its name): the write fails
  // and the file it would have replaced is untouched.
  std::filesystem::create_directories(dir / ("f.tmp." + std::to_string(getpid())));
  CHECK_THROWS_WITH(dpunet::write_file_atomically(dir / "f", "new"), HasSubstr("cannot write"));
  CHECK(dpunet::read_file(dir / "f") == "old");
}

TEST_CASE("an atomic write goes through a link to the file it names, and keeps the file's permissions",
          "[checkpoint]") {
  dpunet::test::TempDir dir;
  std::filesystem::create_directories(dir / "elsewhere");
  dpunet::write_file_atomically(dir / "elsewhere/metrics.jsonl", "old");
  // A mode no umask gives a new file: kept, not made afresh.
  namespace fs = std::filesystem;
  const fs::perms mode = fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read;
  fs::permissions(dir / "elsewhere/metrics.jsonl", mode);
  fs::create_symlink(dir / "elsewhere/metrics.jsonl", dir / "metrics.jsonl");
  dpunet::write_file_atomically(dir / "metrics.jsonl", "new");
  CHECK(fs::is_symlink(dir / "metrics.jsonl"));
  CHECK(dpunet::read_file(dir / "elsewhere/metrics.jsonl") == "new");
  CHECK(fs::status(dir / "elsewhere/metrics.jsonl").permissions() == mode);
  // A relative link to a file not there yet: the file is made where the link points.
  fs::create_symlink("elsewhere/events.jsonl", dir / "events.jsonl");
  dpunet::write_file_atomically(dir / "events.jsonl", "first");
  CHECK(fs::is_symlink(dir / "events.jsonl"));
  CHECK(dpunet::read_file(dir / "elsewhere/events.jsonl") == "first");
  CHECK(std::distance(fs::directory_iterator(dir / "elsewhere"), {}) == 2);  // no temporary left
}
