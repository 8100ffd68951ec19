// check_out_folder, check_earlier_outputs and EarlierPrediction.
#include "app/predict_out_folder.h"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <set>
#include <utility>

#include "common/error.h"
#include "common/remove_tree.h"
#include "data/dataset.h"
#include "dist/context.h"
#include "dist/mpi_check.h"

namespace dpunet::app {
namespace {

// The folders `input` (a folder, a file or a glob) names its files in: a glob's matches
// may lie in several ('scans/*/*.png').
std::set<std::string> input_folders(const std::string& input) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(input, ec)) return {input};
  const auto parent_of = [](const std::string& path) {
    const fs::path parent = fs::path(path).parent_path();
    return parent.empty() ? std::string(".") : parent.string();
  };
  std::set<std::string> folders;
  if (!fs::exists(input, ec) && input.find_first_of("*?[") != std::string::npos) {
    for (const std::string& path : data::glob_paths(input)) folders.insert(parent_of(path));
  }
  if (folders.empty()) folders.insert(parent_of(input));
  return folders;
}

}  // namespace

void check_out_folder(const std::string& out, const std::string& input, const std::string& masks) {
  std::error_code ec;
  std::set<std::string> folders = input_folders(input);
  if (!masks.empty()) folders.insert(masks);
  for (const std::string& folder : folders) {
    DPUNET_CHECK(!std::filesystem::equivalent(out, folder, ec), "predict: --out ", out,
                 " is the folder of the inputs or masks (", folder,
                 "); predictions written there could replace masks and be read as inputs next time: choose another "
                 "folder");
  }
}

void check_earlier_outputs(const std::string& out, bool overwrite, const infer::EarlierOutputs& earlier) {
  const auto listing = [](const std::vector<std::string>& files) {
    return files.front() + (files.size() > 1 ? " and " + std::to_string(files.size() - 1) + " more" : "");
  };
  DPUNET_CHECK(earlier.unlisted.empty(), "predict: --out ", out, " holds ", listing(earlier.unlisted),
               ", named like this command's outputs but not written by it as they are now (no "
               "predict-files*.txt there lists them, or they changed since, as the files of a folder copied without "
               "their times do: cp -a keeps them; a ground-truth mask? a prediction of an older dpunet?). This run "
               "could overwrite them, so it does not start, even with --overwrite: choose another --out, or move "
               "those files");
  DPUNET_CHECK(earlier.set_aside.empty() || overwrite, "predict: --out ", out, " holds ", earlier.set_aside,
               ", the prediction that an --overwrite run set aside and did not finish replacing (the prediction files "
               "beside it are that run's). Pass --overwrite to replace them all (the set-aside files go once the new "
               "run finishes), or go back to them: delete the unfinished run's files (listed in predict-files*.txt) "
               "and move the set-aside ones back into ",
               out, " (the folder left empty counts for nothing)");
  DPUNET_CHECK(earlier.written.empty() || overwrite, "predict: --out ", out, " already holds ", earlier.written.size(),
               " file(s) of an earlier prediction (", listing(earlier.written),
               "); they would mix with this run's. Choose another --out, or pass --overwrite to remove them first");
}

EarlierPrediction::EarlierPrediction(const dist::Context& context, std::string out,
                                     const infer::EarlierOutputs& earlier)
    : context_(context), out_(std::move(out)), unwinding_(std::uncaught_exceptions()) {
  namespace fs = std::filesystem;
  // Asked of every rank before any moves a file: --out may be a node's own scratch, and
  // a folder made by one rank below must not be taken by another for an unfinished run's.
  const bool kept_from_before = context.any_rank(!earlier.set_aside.empty());
  const bool any_written = context.any_rank(!earlier.written.empty());
  if (!any_written && !context.any_rank(!earlier.empty.empty())) {
    set_aside_ = kept_from_before;
    return;
  }
  set_aside_ = true;
  const std::string folder = infer::set_aside_folder(out_);
  // Every rank moves or removes what it saw before any rank moved a file (a listing taken
  // now could find a manifest whose files another rank moved, and take it for an empty
  // one); a file another rank took first is gone.
  const auto gone = [](const std::string& file) {
    std::error_code ec;
    return !fs::exists(fs::symlink_status(file, ec));
  };
  for (const std::string& file : earlier.empty) {
    std::error_code ec;
    fs::remove(file, ec);
    DPUNET_CHECK(!ec || gone(file), file, ": cannot remove it: ", ec.message());
  }
  if (kept_from_before) {
    // What lies beside the set-aside folder is the unfinished run's: replaced, while the
    // prediction before it stays set aside until this run finishes.
    for (const std::string& file : earlier.written) {
      std::error_code ec;
      fs::remove(file, ec);
      DPUNET_CHECK(!ec || gone(file), file, ": cannot remove it: ", ec.message());
    }
  } else if (any_written) {
    std::error_code ec;
    fs::create_directories(folder, ec);
    DPUNET_CHECK(!ec, folder, ": cannot create the folder to set the earlier prediction aside in: ", ec.message());
    for (const std::string& file : earlier.written) {
      const std::string target = (fs::path(folder) / fs::path(file).filename()).string();
      fs::rename(file, target, ec);
      DPUNET_CHECK(!ec || gone(file), file, ": cannot move it into ", folder, ": ", ec.message());
    }
    if (context.is_root()) {
      std::printf("predict: the earlier prediction's files are set aside in %s until this run finishes\n",
                  folder.c_str());
      std::fflush(stdout);
    }
  }
  // No rank writes before every rank has cleared what it sees, so that no late move takes
  // a new file.
  MPI_CHECK(MPI_Barrier(context.world()));
}

EarlierPrediction::~EarlierPrediction() {
  if (!set_aside_ || done_ || std::uncaught_exceptions() <= unwinding_) return;
  const std::string folder = infer::set_aside_folder(out_);
  std::error_code ec;
  if (!std::filesystem::exists(folder, ec)) return;
  std::fprintf(stderr,
               "predict: the prediction this run was to replace is kept in %s; a rerun with --overwrite replaces it "
               "once that run finishes\n",
               folder.c_str());
  std::fflush(stderr);
}

void EarlierPrediction::finished() {
  done_ = true;
  if (!set_aside_) return;
  // Every rank's files are written before the earlier ones go. Rank 0 removes the folder,
  // then any other rank that still sees one (its node's own --out).
  MPI_CHECK(MPI_Barrier(context_.world()));
  const std::string folder = infer::set_aside_folder(out_);
  const auto remove = [&] {
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::symlink_status(folder, ec))) return;
    if (remove_tree(folder)) return;
    std::fprintf(stderr, "predict: warning: could not remove %s, the earlier prediction this run replaced\n",
                 folder.c_str());
  };
  if (context_.is_root()) remove();
  MPI_CHECK(MPI_Barrier(context_.world()));
  if (!context_.is_root() && context_.local_rank() == 0) remove();
}

}  // namespace dpunet::app
