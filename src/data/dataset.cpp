// Dataset: shard discovery, layout and class-name agreement and the global index.
#include "data/dataset.h"

#include <glob.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "common/error.h"
#include "common/file_listing.h"

namespace dpunet::data {
namespace fs = std::filesystem;
namespace {

std::vector<std::string> shards_in_directory(const fs::path& directory) {
  std::vector<std::string> paths;
  for (const auto& entry : fs::directory_iterator(directory)) {
    if (entry.path().extension() != ".h5" || is_hidden(entry.path())) continue;
    fail_on_broken_link(entry);
    if (entry.is_regular_file()) paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace

std::string written_set_of(const std::string& shard) {
  static const std::regex written(R"(^(train|val|fold[0-9]+)-[0-9]{5,}$)");
  std::smatch match;
  const std::string stem = fs::path(shard).stem().string();
  return std::regex_match(stem, match, written) ? match[1].str() : std::string();
}

namespace {

std::vector<std::string> shards_in_index(const fs::path& index_file) {
  std::ifstream in(index_file);
  DPUNET_CHECK(in, index_file.string(), ": cannot read the shard index");
  std::vector<std::string> paths;
  std::map<std::string, int> line_of;  // each shard's file, by its canonical path
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = line.substr(0, line.find('#'));
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    line = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
    const fs::path path(line);
    const fs::path full = path.is_absolute() ? path : index_file.parent_path() / path;
    // A missing shard is said when it is opened (naming this index), so that
    // `inspect --verify` lists it among the bad ones and reads the rest.
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(full, ec);
    if (ec) canonical = full.lexically_normal();
    const auto [listed, fresh] = line_of.emplace(canonical.string(), number);
    DPUNET_CHECK(fresh, index_file.string(), " line ", number, ": ", line, " is listed already (line ", listed->second,
                 "): its samples would be seen twice an epoch");
    paths.push_back(full.string());
  }
  return paths;
}

}  // namespace

std::vector<std::string> glob_paths(const std::string& pattern) {
  // A folder that exists as written is not a pattern: runs/exp[1]/*.h5 means the files
  // of runs/exp[1], so its wildcard characters are escaped.
  std::string escaped = pattern;
  std::error_code ec;
  const fs::path parent = fs::path(pattern).parent_path();
  if (!parent.empty() && fs::is_directory(parent, ec)) {
    std::string folder;
    for (const char c : parent.string()) {
      if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') folder += '\\';
      folder += c;
    }
    escaped = folder + pattern.substr(parent.string().size());
  }
  glob_t matches{};
  const int status = glob(escaped.c_str(), 0, nullptr, &matches);
  std::vector<std::string> paths;
  if (status == 0) {
    for (size_t i = 0; i < matches.gl_pathc; ++i) paths.emplace_back(matches.gl_pathv[i]);
  }
  globfree(&matches);
  std::sort(paths.begin(), paths.end());
  return paths;
}

std::vector<std::string> resolve_shards(const std::string& spec) {
  DPUNET_CHECK(!spec.empty(), "empty dataset path");
  std::vector<std::string> paths;
  std::error_code ec;
  // A path that exists as written is taken as written, whatever characters it holds.
  if (!fs::exists(spec, ec) && spec.find_first_of("*?[") != std::string::npos) {
    paths = glob_paths(spec);
  } else if (fs::is_directory(spec, ec)) {
    paths = shards_in_directory(spec);
  } else {
    DPUNET_CHECK(fs::exists(spec, ec), spec, ": no such file or directory");
    paths = fs::path(spec).extension() == ".txt" ? shards_in_index(spec) : std::vector<std::string>{spec};
  }
  // Usually a first run before the data was made: say how to make it.
  DPUNET_CHECK(!paths.empty(), spec,
               ": the dataset is empty (no .h5 shards found); make shards with `dpunet data synth --out DIR` "
               "(synthetic) or `dpunet data import` (PNG/TIFF images and masks)");
  return paths;
}

void require_listed_shard(const std::string& path, const std::string& spec) {
  std::error_code ec;
  DPUNET_CHECK(fs::path(spec).extension() != ".txt" || fs::exists(path, ec), path, ": no such file (listed in ", spec,
               ")");
}

Dataset::Dataset(const std::string& spec) {
  open(resolve_shards(spec), spec);
}

Dataset::Dataset(const std::vector<std::string>& shard_paths) {
  open(shard_paths, "dataset");
}

void Dataset::open(const std::vector<std::string>& shard_paths, const std::string& spec) {
  DPUNET_CHECK(!shard_paths.empty(), spec, ": the dataset is empty (no shards)");
  double weighted_mean_sum = 0;
  std::vector<double> mean_sum, square_sum;  // per channel, weighted by pixel count
  for (const std::string& path : shard_paths) {
    require_listed_shard(path, spec);
    auto shard = std::make_unique<ShardReader>(path);
    const ShardHeader& h = shard->header();
    if (shards_.empty()) {
      header_ = h;
      header_.samples = 0;
      mean_sum.assign(h.channels, 0.0);
      square_sum.assign(h.channels, 0.0);
    } else {
      DPUNET_CHECK(same_layout(h, header_), "shards disagree: ", shards_.front()->path(),
                   shards_.size() > 1 ? " and the shards after it have " : " has ", describe_layout(header_), " but ",
                   path, " has ", describe_layout(h));
      const std::string names = class_names_conflict(header_, h);
      DPUNET_CHECK(names.empty(), "shards disagree: ", path, " names the classes ", class_names_text(h),
                   " but the shards before it (", shards_.front()->path(), shards_.size() > 1 ? ", ..." : "",
                   ") name them ", class_names_text(header_), " (", names,
                   "): a class id would mean two things. Import the sets with one --class-names");
      // A fully labelled shard joins a sparsely labelled one: the dataset has its label;
      // shards with the default names join named ones: the dataset has their names.
      if (h.ignore_label >= 0) header_.ignore_label = h.ignore_label;
      if (given_class_names(header_).empty()) header_.class_names = h.class_names;
    }
    first_index_.push_back(header_.samples);
    header_.samples += h.samples;
    for (int64_t c = 0; c < h.channels; ++c) mean_sum[c] += static_cast<double>(h.samples) * h.channel_mean[c];
    weighted_mean_sum += static_cast<double>(h.samples);
    shards_.push_back(std::move(shard));
  }
  // The shards' variances about the dataset's mean (each shard's own, plus its mean's
  // distance from the whole's): no difference of two large squares, which would lose a
  // small spread of large values to rounding.
  for (int64_t c = 0; c < header_.channels; ++c) header_.channel_mean[c] = mean_sum[c] / weighted_mean_sum;
  for (const auto& shard : shards_) {
    const ShardHeader& h = shard->header();
    for (int64_t c = 0; c < header_.channels; ++c) {
      const double offset = h.channel_mean[c] - header_.channel_mean[c];
      square_sum[c] += static_cast<double>(h.samples) * (h.channel_std[c] * h.channel_std[c] + offset * offset);
    }
  }
  for (int64_t c = 0; c < header_.channels; ++c) {
    header_.channel_std[c] = std::sqrt(std::max(0.0, square_sum[c] / weighted_mean_sum));
  }
}

std::pair<const ShardReader*, int64_t> Dataset::locate(int64_t index) const {
  DPUNET_CHECK(index >= 0 && index < header_.samples, "sample ", index, " outside the dataset's [0, ", header_.samples,
               ")");
  const auto next = std::upper_bound(first_index_.begin(), first_index_.end(), index);
  const size_t shard = static_cast<size_t>(next - first_index_.begin()) - 1;
  return {shards_[shard].get(), index - first_index_[shard]};
}

std::string Dataset::describe_image(int64_t index) const {
  const auto [shard, local] = locate(index);
  return shard->path() + ": sample " + std::to_string(local) + " of 'images'";
}

void Dataset::read(int64_t index, void* image, uint8_t* mask) const {
  const auto [shard, local] = locate(index);
  shard->read(local, image, mask);
}

const double* Dataset::source_statistics(int64_t index) const {
  const auto [shard, local] = locate(index);
  return shard->source_statistics(local);
}

}  // namespace dpunet::data
