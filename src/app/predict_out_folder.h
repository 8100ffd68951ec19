// Where `dpunet predict` may write its outputs: not among its inputs, and not over the
// files of another prediction.
#pragma once

#include <string>

#include "infer/output_manifest.h"

namespace dpunet::app {

// Predictions (NAME_mask.png, NAME_overlay.png, predictions.h5) written among the inputs
// could replace a ground-truth mask named the same way, and become inputs of the next
// run: refuses an `out` that is the folder of `input` (a folder, a file or a glob, whose
// matches may lie in several) or of `masks`.
void check_out_folder(const std::string& out, const std::string& input, const std::string& masks);

// What an earlier predict left in `out` would mix with this run's files (stale masks of
// other images, an eval.json of another set, one predictions.h5 beside per-rank ones):
// refused unless `overwrite` (the caller then removes them). Files named like predictions
// that no manifest lists (a ground-truth a_mask.png) are refused even so: this run could
// overwrite them.
void check_earlier_outputs(const std::string& out, bool overwrite, const infer::EarlierOutputs& earlier);

}  // namespace dpunet::app
