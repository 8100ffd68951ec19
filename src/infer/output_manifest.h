// Which files of a prediction folder `predict` wrote. Each rank names every file in its
// own manifest (predict-files.txt, or predict-files-rankNNN.txt under mpirun) before it
// creates it, so a killed run's files are listed too, and stamps it (size and
// modification time) once written. A later run replaces exactly those (--overwrite) and
// never a file it cannot prove it wrote: a ground-truth a_mask.png kept in that folder
// has a prediction's name but is in no manifest, and one copied over a prediction no
// longer matches its stamp.
#pragma once

#include <fstream>
#include <string>
#include <vector>

namespace dpunet::infer {

class OutputManifest {
 public:
  // Starts this rank's manifest in `directory` (which must exist), empty.
  OutputManifest(const std::string& directory, int rank, int world_size);
  // Lists `file_name` (a name inside the directory); call before creating the file.
  void add(const std::string& file_name);
  // Stamps `file_name` as written: its size and modification time now.
  void written(const std::string& file_name);
  const std::string& path() const { return path_; }

 private:
  void append(const std::string& line);

  std::string directory_, path_;
  std::ofstream out_;
};

// What earlier predictions left in a folder.
struct EarlierOutputs {
  std::vector<std::string> written;   // files a manifest lists (their temporaries too), and the manifests
  std::vector<std::string> unlisted;  // files named as predictions are (x_mask.png, eval.json, ...) that none lists
  // Manifests of runs that stopped before writing any file they list (an error in the
  // first image): nothing of theirs to keep, so a rerun needs no --overwrite.
  std::vector<std::string> empty;
  // The folder inside `directory` holding the prediction an --overwrite run set aside
  // (set_aside_folder) and did not live to replace, when there is one.
  std::string set_aside;
};

// Where --overwrite moves an earlier prediction's files until the run replacing them
// finishes: a hidden folder in `directory`, so that an error on the way loses nothing.
std::string set_aside_folder(const std::string& directory);

// Paths in `directory`, sorted; both empty when it does not exist.
EarlierOutputs find_earlier_outputs(const std::string& directory);

}  // namespace dpunet::infer
