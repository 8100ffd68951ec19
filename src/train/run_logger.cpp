// RunLogger: console lines or bar, and metrics.jsonl.
#include "train/run_logger.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/process_label.h"
#include "train/run_history.h"
#include "train/tensorboard_events.h"

namespace dpunet::train {
namespace {

std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof(text), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  } else {
    std::snprintf(text, sizeof(text), "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  }
  return text;
}

// Open MPI's mpirun hands ranks a pseudo-terminal even when its own output goes to a
// file, so a launcher that knows better says so in DPUNET_STDOUT_IS_TTY (1 or 0). Ranks
// of a plain mpirun cannot tell, and print lines: a bar's carriage returns would fill a
// log file, while lines read fine on a terminal.
bool stdout_is_terminal() {
  if (const char* told = std::getenv("DPUNET_STDOUT_IS_TTY")) return std::string(told) == "1";
  if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) return false;
  return isatty(STDOUT_FILENO) != 0;
}

}  // namespace

double remaining_seconds(int64_t step, int64_t end_step, int64_t paced_from_step, double paced_s, double step_ms) {
  const int64_t left = std::max<int64_t>(0, end_step - step);
  const int64_t paced = step - paced_from_step;
  return static_cast<double>(left) * (paced > 0 ? paced_s / static_cast<double>(paced) : step_ms / 1000.0);
}

RunLogger::RunLogger(std::string run_dir, int rank, const std::string& progress, bool tensorboard)
    : run_dir_(std::move(run_dir)), rank_(rank), tensorboard_(tensorboard) {
  bar_ = progress == "bar" || (progress == "auto" && stdout_is_terminal());
}

void RunLogger::open_metrics() {
  if (rank_ != 0) return;
  const std::string path = metrics_path();
  errno = 0;
  metrics_.open(path, std::ios::app);
  DPUNET_CHECK(metrics_, "cannot write ", path, errno != 0 ? std::string(": ") + std::strerror(errno) : "");
  if (tensorboard_) events_ = std::make_unique<TensorBoardWriter>(run_dir_ + "/" + kTensorBoardFolder);
}

RunLogger::~RunLogger() = default;

std::string RunLogger::metrics_path() const {
  return run_dir_ + "/metrics.jsonl";
}

// A stream that failed once (a full disk) drops every later row without a word: the
// run stops instead, with the curves intact up to here and its checkpoints in place.
void RunLogger::append_metrics_row(const std::string& row) {
  errno = 0;
  metrics_ << row << "\n" << std::flush;
  DPUNET_CHECK(metrics_, metrics_path(), ": cannot append a metrics row (",
               errno != 0 ? std::strerror(errno) : "write failed", "; is the disk full?)");
}

void RunLogger::end_bar() {
  if (bar_open_) std::printf("\n");
  bar_open_ = false;
}

void RunLogger::train(const TrainRecord& r) {
  if (rank_ != 0) return;
  nlohmann::json row = {{"kind", "train"},
                        {"step", r.step},
                        {"epoch", r.epoch},
                        {"loss", r.loss},
                        {"lr", r.lr},
                        {"samples_per_s", r.samples_per_s},
                        {"data_wait", r.data_wait_share},
                        {"step_ms", r.step_ms},
                        {"time_s", r.elapsed_s}};
  if (r.gpu_memory_gb >= 0) row["gpu_memory_gb"] = r.gpu_memory_gb;
  if (r.skipped_steps >= 0) {
    row["skipped_steps"] = r.skipped_steps;
    row["loss_scale"] = r.loss_scale;
  }
  append_metrics_row(row.dump());
  if (events_) {
    Scalars values = {{"train/loss", r.loss},
                      {"train/lr", r.lr},
                      {"train/samples_per_s", r.samples_per_s},
                      {"train/data_wait", r.data_wait_share},
                      {"train/step_ms", r.step_ms}};
    if (r.gpu_memory_gb >= 0) values.emplace_back("train/gpu_memory_gb", r.gpu_memory_gb);
    if (r.skipped_steps >= 0) {
      values.emplace_back("train/skipped_steps", static_cast<double>(r.skipped_steps));
      values.emplace_back("train/loss_scale", r.loss_scale);
    }
    events_->scalars(r.step, values);
  }

  char memory[32] = "";
  if (r.gpu_memory_gb >= 0) std::snprintf(memory, sizeof(memory), " mem %.1fG", r.gpu_memory_gb);
  // Said when it happened (a step or two early in an fp16 run is usual, more is not), or
  // while the scale is below 1, from which it regrows slowly (doubling every 2000 steps).
  char skipped[64] = "";
  if (r.skipped_steps > 0) {
    std::snprintf(skipped, sizeof(skipped), " skipped %lld (fp16 scale %g)", static_cast<long long>(r.skipped_steps),
                  r.loss_scale);
  } else if (r.skipped_steps == 0 && r.loss_scale < 1) {
    std::snprintf(skipped, sizeof(skipped), " fp16 scale %g", r.loss_scale);
  }
  if (bar_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * r.step / std::max<int64_t>(1, r.total_steps));
    std::printf("\r[%s%s] %lld/%lld ETA %s loss %.4f lr %.2e %.1f samples/s data %.0f%%%s%s   ",
                std::string(filled, '=').c_str(), std::string(kWidth - filled, ' ').c_str(),
                static_cast<long long>(r.step), static_cast<long long>(r.total_steps),
                duration_text(r.remaining_s).c_str(), r.loss, r.lr, r.samples_per_s, 100 * r.data_wait_share, memory,
                skipped);
    bar_open_ = true;
  } else {
    std::printf("epoch %lld step %lld/%lld loss %.4f lr %.2e samples/s %.1f data %.0f%% step %.0fms%s%s eta %s\n",
                static_cast<long long>(r.epoch), static_cast<long long>(r.step), static_cast<long long>(r.total_steps),
                r.loss, r.lr, r.samples_per_s, 100 * r.data_wait_share, r.step_ms, memory, skipped,
                duration_text(r.remaining_s).c_str());
  }
  std::fflush(stdout);
}

void RunLogger::validation(const ValRecord& r) {
  if (rank_ != 0) return;
  nlohmann::json row = {
      {"kind", "val"},  {"step", r.step},       {"epoch", r.epoch},         {"loss", r.loss},
      {"dice", r.dice}, {"iou", r.iou},         {"mean_dice", r.mean_dice}, {"foreground_dice", r.foreground_dice},
      {"best", r.best}, {"time_s", r.elapsed_s}};
  // The names the shards give (the lists above are by class id), for plots and readers.
  // A name that is not UTF-8 (bytes from another encoding in a shard) is written with
  // U+FFFD in its place, as predict's eval.json does: dump() would throw at the first
  // validation, and at the same step again on every resume.
  if (!class_names_.empty()) row["class_names"] = class_names_;
  append_metrics_row(row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (events_) {
    // A score that is not defined (NaN: a class, or any foreground, neither in the masks
    // nor predicted) gets no point, as metrics.jsonl writes null for it.
    Scalars values;
    if (std::isfinite(r.loss)) values.emplace_back("val/loss", r.loss);
    if (std::isfinite(r.mean_dice)) values.emplace_back("val/mean_dice", r.mean_dice);
    if (std::isfinite(r.foreground_dice)) values.emplace_back("val/foreground_dice", r.foreground_dice);
    for (size_t k = 0; k < r.dice.size(); ++k) {
      if (std::isfinite(r.dice[k])) values.emplace_back("val/dice_class_" + std::to_string(k), r.dice[k]);
      if (k < r.iou.size() && std::isfinite(r.iou[k]))
        values.emplace_back("val/iou_class_" + std::to_string(k), r.iou[k]);
    }
    events_->scalars(r.step, values);
  }
  end_bar();
  std::string per_class;
  for (size_t k = 0; k < r.dice.size(); ++k) {
    char score[32];
    std::snprintf(score, sizeof(score), ":%.3f", r.dice[k]);
    per_class += " " + (k < class_names_.size() ? class_names_[k] : std::to_string(k)) + score;
  }
  std::printf("validation step %lld: loss %.4f dice%s mean %.4f foreground %.4f%s\n", static_cast<long long>(r.step),
              r.loss, per_class.c_str(), r.mean_dice, r.foreground_dice, r.best ? " (best)" : "");
  std::fflush(stdout);
}

void RunLogger::info(const std::string& message) {
  if (rank_ != 0) return;
  end_bar();
  std::printf("%s\n", message.c_str());
  std::fflush(stdout);
}

void RunLogger::warn(const std::string& message) {
  end_bar();
  std::fprintf(stderr, "dpunet: warning (%s): %s\n", process_label().c_str(), message.c_str());
  std::fflush(stderr);
}

}  // namespace dpunet::train
