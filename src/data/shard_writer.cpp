// ShardWriter: HDF5 datasets chunked one sample per chunk, optional deflate.
#include "data/shard_writer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "data/h5_attributes.h"

namespace dpunet::data {
namespace {

hid_t file_type_of(PixelType type) {
  switch (type) {
    case PixelType::kUInt8: return H5T_STD_U8LE;
    case PixelType::kUInt16: return H5T_STD_U16LE;
    case PixelType::kFloat32: return H5T_IEEE_F32LE;
  }
  return H5T_STD_U8LE;
}

H5Handle make_dataset(hid_t file, const char* name, const std::vector<hsize_t>& dims, hid_t type, int gzip_level,
                      const std::string& context) {
  H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  H5_CHECK(space.get(), context);
  H5Handle properties(H5Pcreate(H5P_DATASET_CREATE));
  H5_CHECK(properties.get(), context);
  std::vector<hsize_t> chunk = dims;
  chunk[0] = 1;  // one sample per chunk: a random read touches exactly one chunk
  H5_CHECK(H5Pset_chunk(properties.get(), static_cast<int>(chunk.size()), chunk.data()), context);
  if (gzip_level > 0) H5_CHECK(H5Pset_deflate(properties.get(), static_cast<unsigned>(gzip_level)), context);
  H5Handle dataset(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, properties.get(), H5P_DEFAULT));
  H5_CHECK(dataset.get(), context);
  return dataset;
}

void write_slab(hid_t dataset, int64_t index, const std::vector<hsize_t>& sample_dims, hid_t memory_type,
                const void* data, const std::string& context) {
  std::vector<hsize_t> start(sample_dims.size() + 1, 0), count(sample_dims.size() + 1, 1);
  start[0] = static_cast<hsize_t>(index);
  for (size_t d = 0; d < sample_dims.size(); ++d) count[d + 1] = sample_dims[d];
  H5Handle file_space(H5Dget_space(dataset));
  H5_CHECK(file_space.get(), context);
  H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
           context);
  H5Handle memory_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
  H5_CHECK(memory_space.get(), context);
  H5_CHECK(H5Dwrite(dataset, memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, data), context);
}

}  // namespace

ShardWriter::ShardWriter(std::string path, ShardHeader header, ShardWriteOptions options)
    : path_(std::move(path)),
      temporary_path_(path_ + ".partial"),
      header_(std::move(header)),
      statistics_given_(!header_.channel_mean.empty()) {
  DPUNET_CHECK(header_.samples > 0 && header_.channels > 0 && header_.height > 0 && header_.width > 0, path_,
               ": a shard needs at least one sample and positive C, H, W");
  DPUNET_CHECK(header_.n_classes >= 2 && header_.n_classes <= 256, path_, ": n_classes must be in [2, 256], got ",
               header_.n_classes);
  DPUNET_CHECK(header_.ignore_label == -1 || (header_.ignore_label >= header_.n_classes && header_.ignore_label <= 255),
               path_, ": the ignore label must be a mask value that is not a class, in [", header_.n_classes,
               ", 255], got ", header_.ignore_label);
  DPUNET_CHECK(options.gzip_level >= 0 && options.gzip_level <= 9, path_, ": gzip level must be 0-9, got ",
               options.gzip_level);
  if (header_.class_names.empty()) {
    for (int c = 0; c < header_.n_classes; ++c) header_.class_names.push_back("class" + std::to_string(c));
  }
  DPUNET_CHECK(static_cast<int>(header_.class_names.size()) == header_.n_classes, path_, ": ",
               header_.class_names.size(), " class names for ", header_.n_classes, " classes");
  check_sample_size(header_, path_);
  sum_.assign(header_.channels, 0.0);
  sum_squares_.assign(header_.channels, 0.0);
  shift_.assign(header_.channels, 0.0);

  silence_hdf5_errors();
  auto guard = hdf5_guard();
  file_ = H5Handle(H5Fcreate(temporary_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  H5_CHECK(file_.get(), temporary_path_);
  const auto n = static_cast<hsize_t>(header_.samples);
  const auto c = static_cast<hsize_t>(header_.channels), h = static_cast<hsize_t>(header_.height),
             w = static_cast<hsize_t>(header_.width);
  try {
    images_ = make_dataset(file_.get(), kImagesDataset, {n, c, h, w}, file_type_of(header_.pixel_type),
                           options.gzip_level, temporary_path_);
    masks_ = make_dataset(file_.get(), kMasksDataset, {n, h, w}, H5T_STD_U8LE, options.gzip_level, temporary_path_);
  } catch (...) {
    // No destructor runs for a constructor that throws: drop the partial file here (a
    // sample beyond HDF5's 4 GiB chunk limit, say).
    images_.reset();
    masks_.reset();
    file_.reset();
    std::remove(temporary_path_.c_str());
    throw;
  }
}

ShardWriter::~ShardWriter() {
  if (file_.valid()) {  // not finished: drop the partial file
    images_.reset();
    masks_.reset();
    file_.reset();
    std::remove(temporary_path_.c_str());
  }
}

void ShardWriter::write(int64_t index, const void* image, const uint8_t* mask, const double* source_statistics) {
  DPUNET_CHECK(file_.valid(), path_, ": write after finish");
  DPUNET_CHECK(index >= 0 && index < header_.samples, path_, ": sample index ", index, " outside [0, ", header_.samples,
               ")");
  for (int64_t p = 0; p < header_.pixels(); ++p) {
    if (header_.valid_mask_value(mask[p])) continue;
    DPUNET_FAIL(path_, ": sample ", index, ": pixel (", p / header_.width, ", ", p % header_.width,
                "): ", invalid_mask_value(header_, mask[p]));
  }
  const std::string non_finite = find_non_finite(header_, image);
  DPUNET_CHECK(non_finite.empty(), path_, ": sample ", index, ": image ", non_finite,
               "; shards hold finite values (NaN would reach every weight the first time it is trained on)");
  const std::vector<hsize_t> image_dims = {static_cast<hsize_t>(header_.channels), static_cast<hsize_t>(header_.height),
                                           static_cast<hsize_t>(header_.width)};
  const std::vector<hsize_t> mask_dims = {static_cast<hsize_t>(header_.height), static_cast<hsize_t>(header_.width)};
  auto guard = hdf5_guard();
  silence_hdf5_errors();
  write_slab(images_.get(), index, image_dims, native_type_of(header_.pixel_type), image, temporary_path_);
  write_slab(masks_.get(), index, mask_dims, H5T_NATIVE_UINT8, mask, temporary_path_);
  if (!statistics_given_) accumulate_statistics(image);
  if (source_statistics != nullptr) {
    const auto pairs = static_cast<size_t>(header_.channels * 2);
    source_statistics_.resize(static_cast<size_t>(header_.samples) * pairs);
    std::copy(source_statistics, source_statistics + pairs,
              source_statistics_.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(index) * pairs));
    ++sources_given_;
  }
  ++written_;
}

void ShardWriter::write_source_statistics() {
  DPUNET_CHECK(sources_given_ == header_.samples, path_, ": source statistics given for ", sources_given_, " of ",
               header_.samples, " samples; give them for every sample or none");
  const hsize_t dims[3] = {static_cast<hsize_t>(header_.samples), static_cast<hsize_t>(header_.channels), 2};
  H5Handle space(H5Screate_simple(3, dims, nullptr));
  H5_CHECK(space.get(), temporary_path_);
  H5Handle dataset(H5Dcreate2(file_.get(), kSourceStatisticsDataset, H5T_IEEE_F64LE, space.get(), H5P_DEFAULT,
                              H5P_DEFAULT, H5P_DEFAULT));
  H5_CHECK(dataset.get(), temporary_path_);
  H5_CHECK(H5Dwrite(dataset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, source_statistics_.data()),
           temporary_path_);
}

void ShardWriter::accumulate_statistics(const void* image) {
  const int64_t pixels = header_.pixels();
  for (int64_t c = 0; c < header_.channels; ++c) {
    if (written_ == 0) {
      // The first sample's mean: its first pixel could be a border far from the rest.
      double first_sum = 0;
      for (int64_t p = 0; p < pixels; ++p) first_sum += pixel_value(image, header_.pixel_type, c * pixels + p);
      shift_[c] = first_sum / static_cast<double>(pixels);
    }
    double sum = 0, squares = 0;
    for (int64_t p = 0; p < pixels; ++p) {
      const double v = pixel_value(image, header_.pixel_type, c * pixels + p) - shift_[c];
      sum += v;
      squares += v * v;
    }
    sum_[c] += sum;
    sum_squares_[c] += squares;
  }
}

void ShardWriter::finish() {
  DPUNET_CHECK(file_.valid(), path_, ": finish called twice");
  DPUNET_CHECK(written_ == header_.samples, path_, ": ", written_, " of ", header_.samples,
               " samples written before finish");
  if (!statistics_given_) {
    const double count = static_cast<double>(header_.samples * header_.pixels());
    header_.channel_mean.resize(header_.channels);
    header_.channel_std.resize(header_.channels);
    for (int64_t c = 0; c < header_.channels; ++c) {
      const double shifted_mean = sum_[c] / count;
      header_.channel_mean[c] = shift_[c] + shifted_mean;
      header_.channel_std[c] = std::sqrt(std::max(0.0, sum_squares_[c] / count - shifted_mean * shifted_mean));
    }
  }
  {
    auto guard = hdf5_guard();
    silence_hdf5_errors();
    write_header_attributes(file_.get(), header_, temporary_path_);
    if (sources_given_ > 0) write_source_statistics();
    images_.reset();
    masks_.reset();
    H5_CHECK(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), temporary_path_);
    file_.reset();
  }
  DPUNET_CHECK(std::rename(temporary_path_.c_str(), path_.c_str()) == 0, "cannot rename ", temporary_path_, " to ",
               path_);
}

}  // namespace dpunet::data
