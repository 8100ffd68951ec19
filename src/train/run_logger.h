// What a run tells its user. Rank 0 prints a line every N steps (or a progress bar with
// ETA on a terminal) and appends one JSON object per log step and per validation to
// RUN/metrics.jsonl, and the same figures to TensorBoard event files in RUN/tensorboard. Other ranks print only
// warnings and errors, tagged with their rank.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace dpunet::train {

class TensorBoardWriter;

struct TrainRecord {
  int64_t step = 0;  // optimizer steps completed
  int64_t total_steps = 0;
  int64_t epoch = 0;
  double loss = 0;  // mean over the steps since the last record, all ranks
  double lr = 0;
  double samples_per_s = 0;    // global
  double data_wait_share = 0;  // of wall time spent waiting for batches
  double step_ms = 0;
  double gpu_memory_gb = -1;  // peak allocated since the previous record; < 0 on CPU
  // Until this run ends (train.steps, or --stop-at-step), at its pace so far.
  double remaining_s = 0;
  double elapsed_s = 0;  // training time of the run so far, over every resume
  // fp16: steps skipped since the previous record (gradients with inf/NaN), and the loss
  // scale now; -1 without a loss scaler.
  int64_t skipped_steps = -1;
  double loss_scale = 0;
};

// The seconds left until `end_step` at the run's pace: its wall time per step since
// `paced_from_step` (`paced_s` seconds ago; validations and checkpoints included), or
// `step_ms` a step before any step has been paced (the first line of a run).
double remaining_seconds(int64_t step, int64_t end_step, int64_t paced_from_step, double paced_s, double step_ms);

struct ValRecord {
  int64_t step = 0;
  int64_t epoch = 0;
  double loss = 0;
  std::vector<double> dice, iou;  // per class
  double mean_dice = 0;           // over foreground classes
  double foreground_dice = 0;     // any foreground vs background
  bool best = false;
  double elapsed_s = 0;  // as TrainRecord's
};

class RunLogger {
 public:
  // `progress`: auto (bar on a terminal), bar or lines.
  // `tensorboard`: also write RUN/tensorboard event files.
  RunLogger(std::string run_dir, int rank, const std::string& progress, bool tensorboard = false);
  ~RunLogger();

  // Opens RUN/metrics.jsonl for appending, and a new TensorBoard event file (rank 0),
  // once the run directory's history agrees with where the run starts (run_history.h).
  void open_metrics();

  void train(const TrainRecord& record);
  void validation(const ValRecord& record);
  void info(const std::string& message);  // rank 0 only
  void warn(const std::string& message);  // any rank, with its rank
  // What the validation line calls each class's Dice (the shards' class names); empty:
  // their numbers. metrics.jsonl and TensorBoard number them always.
  void set_class_names(std::vector<std::string> names) { class_names_ = std::move(names); }

 private:
  void end_bar();
  std::string metrics_path() const;
  void append_metrics_row(const std::string& row);  // one JSON line, flushed and checked

  std::string run_dir_;
  int rank_;
  bool bar_;
  bool bar_open_ = false;
  std::ofstream metrics_;
  bool tensorboard_;
  std::unique_ptr<TensorBoardWriter> events_;
  std::vector<std::string> class_names_;
};

}  // namespace dpunet::train
