// Where `dpunet predict` may write its outputs: not among its inputs, and not over the
// files of another prediction.
#pragma once

#include <string>

#include "infer/output_manifest.h"

namespace dpunet::dist {
class Context;
}

namespace dpunet::app {

// Predictions (NAME_mask.png, NAME_overlay.png, predictions.h5) written among the inputs
// could replace a ground-truth mask named the same way, and become inputs of the next
// run: refuses an `out` that is the folder of `input` (a folder, a file or a glob, whose
// matches may lie in several) or of `masks`.
void check_out_folder(const std::string& out, const std::string& input, const std::string& masks);

// What an earlier predict left in `out` would mix with this run's files (stale masks of
// other images, an eval.json of another set, one predictions.h5 beside per-rank ones):
// refused unless `overwrite` (EarlierPrediction then sets them aside). Files named like predictions
// that no manifest lists (a ground-truth a_mask.png) are refused even so: this run could
// overwrite them.
// A set-aside folder (EarlierPrediction) is refused too unless `overwrite`.
void check_earlier_outputs(const std::string& out, bool overwrite, const infer::EarlierOutputs& earlier);

// The earlier prediction a run with --overwrite replaces, kept until the run finishes:
// an error on the way (a mask value that is no class, found at the tenth image) leaves
// it retrievable rather than removed. Its files move into infer::set_aside_folder(out);
// a folder already there holds the prediction before a run that did not finish, and
// stays, while that run's files beside it are removed.
class EarlierPrediction {
 public:
  // Collective: sets aside or removes `earlier` (check_earlier_outputs passed) on every
  // rank before any rank writes.
  EarlierPrediction(const dist::Context& context, std::string out, const infer::EarlierOutputs& earlier);
  // Said when an error ends the run with files set aside.
  ~EarlierPrediction();
  EarlierPrediction(const EarlierPrediction&) = delete;
  EarlierPrediction& operator=(const EarlierPrediction&) = delete;
  // Collective, once every output is written: removes the set-aside files.
  void finished();

 private:
  const dist::Context& context_;
  std::string out_;
  int unwinding_ = 0;
  bool set_aside_ = false, done_ = false;
};

}  // namespace dpunet::app
