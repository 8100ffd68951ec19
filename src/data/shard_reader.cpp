// ShardReader. Chunks stored raw or with deflate are fetched with H5Dread_chunk under
// HDF5's lock and inflated outside it, so several loader threads decompress in
// parallel; any other layout falls back to H5Dread.
#include "data/shard_reader.h"

#include <sys/resource.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <vector>

#include "data/h5_attributes.h"

namespace dpunet::data {
namespace {

std::vector<hsize_t> dataset_dims(hid_t dataset, const std::string& context) {
  H5Handle space(H5Dget_space(dataset));
  H5_CHECK(space.get(), context);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  H5_CHECK(rank, context);
  std::vector<hsize_t> dims(rank);
  H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), context);
  return dims;
}

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

// A dataset's element type as numpy names it (int16, uint32, float64, ...), for errors:
// files written with h5py often hold signed or 64-bit arrays.
std::string dtype_name(hid_t type) {
  const H5T_class_t type_class = H5Tget_class(type);
  const std::string bits = std::to_string(H5Tget_size(type) * 8);
  if (type_class == H5T_INTEGER) return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + bits;
  if (type_class == H5T_FLOAT) return "float" + bits;
  if (type_class == H5T_STRING) return "string";
  if (type_class == H5T_COMPOUND) return "compound";
  if (type_class == H5T_ENUM) return "enum (h5py's bool)";
  return "HDF5 type class " + std::to_string(static_cast<int>(type_class));
}

PixelType pixel_type_of(hid_t type, const std::string& path) {
  const H5T_class_t type_class = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (type_class == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_NONE) {
    if (size == 1) return PixelType::kUInt8;
    if (size == 2) return PixelType::kUInt16;
  }
  if (type_class == H5T_FLOAT && size == 4) return PixelType::kFloat32;
  DPUNET_FAIL(path, ": dataset '", kImagesDataset, "' holds ", dtype_name(type),
              "; expected uint8, uint16 or float32 (convert it, e.g. signed CT values shifted or as float32)");
}

H5Handle open_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  DPUNET_CHECK(fs::exists(path, ec), path, ": no such file");
  DPUNET_CHECK(fs::is_regular_file(path, ec), path, ": not a regular file");
  H5Handle access(H5Pcreate(H5P_FILE_ACCESS));
  H5_CHECK(access.get(), path);
#if H5_VERSION_GE(1, 12, 1) || (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)
  // Shards are only read: HDF5's lock would refuse a shard another process holds open,
  // and fails on network filesystems without lock support (NFS, some Lustre mounts).
  H5_CHECK(H5Pset_file_locking(access.get(), /*use_file_locking=*/false, /*ignore_when_disabled=*/true), path);
#endif
  errno = 0;
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, access.get()));
  if (!file.valid()) {
    if (errno == EMFILE || errno == ENFILE) {
      rlimit limit{};
      getrlimit(RLIMIT_NOFILE, &limit);
      DPUNET_FAIL(path,
                  ": cannot open it: too many open files. Every shard of a dataset stays open while it is "
                  "read, and this process may open ",
                  limit.rlim_cur == RLIM_INFINITY ? std::string("any number of") : std::to_string(limit.rlim_cur),
                  " files (dpunet raises ulimit -n to the hard limit, ulimit -Hn): raise that, or write fewer, "
                  "larger shards");
    }
    DPUNET_FAIL(detail::H5Describe{path}(-1), " (not an HDF5 file, or a truncated or damaged one)");
  }
  return file;
}

}  // namespace

ShardReader::ShardReader(std::string path) : path_(std::move(path)) {
  silence_hdf5_errors();
  auto guard = hdf5_guard();
  file_ = open_file(path_);
  images_ = open_dataset(kImagesDataset, 4, "[N, C, H, W]");
  masks_ = open_dataset(kMasksDataset, 3, "[N, H, W]");
  const auto image_dims = dataset_dims(images_.id.get(), path_);
  const auto mask_dims = dataset_dims(masks_.id.get(), path_);
  DPUNET_CHECK(image_dims[0] == mask_dims[0] && image_dims[2] == mask_dims[1] && image_dims[3] == mask_dims[2], path_,
               ": 'images' ", shape_text(image_dims), " and 'masks' ", shape_text(mask_dims),
               " disagree (expected [N, C, H, W] and [N, H, W])");
  DPUNET_CHECK(image_dims[0] > 0, path_, ": the shard holds no samples");
  DPUNET_CHECK(image_dims[1] > 0 && image_dims[2] > 0 && image_dims[3] > 0, path_, ": 'images' ",
               shape_text(image_dims), " has an empty channel or spatial dimension");
  header_.samples = static_cast<int64_t>(image_dims[0]);
  header_.channels = static_cast<int64_t>(image_dims[1]);
  header_.height = static_cast<int64_t>(image_dims[2]);
  header_.width = static_cast<int64_t>(image_dims[3]);

  H5Handle image_type(H5Dget_type(images_.id.get()));
  H5_CHECK(image_type.get(), path_);
  header_.pixel_type = pixel_type_of(image_type.get(), path_);
  // Each sample is read whole, several at once by the loader's threads: one larger than
  // a shard written by dpunet can hold is named here, not met as "std::bad_alloc" at the
  // first batch.
  check_sample_size(header_, path_);
  H5Handle mask_type(H5Dget_type(masks_.id.get()));
  H5_CHECK(mask_type.get(), path_);
  DPUNET_CHECK(H5Tget_class(mask_type.get()) == H5T_INTEGER && H5Tget_size(mask_type.get()) == 1 &&
                   H5Tget_sign(mask_type.get()) == H5T_SGN_NONE,
               path_, ": dataset '", kMasksDataset, "' holds ", dtype_name(mask_type.get()),
               "; it must hold uint8 class ids");
  read_header_attributes(file_.get(), header_, path_);
  read_source_statistics();
}

void ShardReader::read_source_statistics() {
  const htri_t exists = H5Lexists(file_.get(), kSourceStatisticsDataset, H5P_DEFAULT);
  H5_CHECK(exists, path_);
  if (exists == 0) return;
  const std::string what = std::string("dataset '") + kSourceStatisticsDataset + "'";
  H5Handle dataset(H5Dopen2(file_.get(), kSourceStatisticsDataset, H5P_DEFAULT));
  H5_CHECK(dataset.get(), path_ + ": " + what);
  const auto dims = dataset_dims(dataset.get(), path_);
  const std::vector<hsize_t> expected = {static_cast<hsize_t>(header_.samples), static_cast<hsize_t>(header_.channels),
                                         2};
  DPUNET_CHECK(dims == expected, path_, ": ", what, " is ", shape_text(dims), "; expected ", shape_text(expected),
               " (each sample's source image's channel mean and standard deviation)");
  H5Handle type(H5Dget_type(dataset.get()));
  H5_CHECK(type.get(), path_);
  DPUNET_CHECK(H5Tget_class(type.get()) == H5T_FLOAT, path_, ": ", what, " holds ", dtype_name(type.get()),
               "; expected float64");
  source_statistics_.resize(static_cast<size_t>(header_.samples * header_.channels * 2));
  H5_CHECK(H5Dread(dataset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, source_statistics_.data()),
           path_ + ": " + what);
  for (size_t i = 0; i < source_statistics_.size(); i += 2) {
    const double mean = source_statistics_[i], std = source_statistics_[i + 1];
    DPUNET_CHECK(std::isfinite(mean) && std::isfinite(std) && std >= 0, path_, ": ", what, " of sample ",
                 i / 2 / static_cast<size_t>(header_.channels), ", channel ",
                 i / 2 % static_cast<size_t>(header_.channels), " is mean ", mean, ", std ", std,
                 "; a mean must be finite and a std finite and not negative");
  }
}

void ShardReader::check_virtual_sources(hid_t properties, const char* name) const {
  // HDF5 reads the samples of a source file it cannot find as the fill value, without an
  // error: blank images of background. A source is looked for beside this file, or as
  // given (an absolute path, or one from the working directory).
  size_t count = 0;
  H5_CHECK(H5Pget_virtual_count(properties, &count), path_);
  const std::filesystem::path folder = std::filesystem::path(path_).parent_path();
  for (size_t i = 0; i < count; ++i) {
    const ssize_t length = H5Pget_virtual_filename(properties, i, nullptr, 0);
    H5_CHECK(length, path_);
    std::string source(static_cast<size_t>(length) + 1, '\0');
    H5_CHECK(H5Pget_virtual_filename(properties, i, source.data(), source.size()), path_);
    source.resize(static_cast<size_t>(length));
    // "." is this file; a printf-like pattern (%b) names many, found as HDF5 finds them.
    if (source == "." || source.find('%') != std::string::npos) continue;
    std::error_code ec;
    const bool found = std::filesystem::exists(folder / source, ec) || std::filesystem::exists(source, ec);
    DPUNET_CHECK(found, path_, ": dataset '", name, "' is a virtual dataset whose source file ", source,
                 " is not there; its samples would read as blank images of background. Put it back beside ", path_,
                 ", or write the shard again with its data in it");
  }
}

ShardReader::Dataset ShardReader::open_dataset(const char* name, int rank, const std::string& what) {
  const htri_t exists = H5Lexists(file_.get(), name, H5P_DEFAULT);
  H5_CHECK(exists, path_);
  DPUNET_CHECK(exists > 0, path_, ": dataset '", name, "' is missing");
  // HDF5's errors from here on name the object too (an 'images' that is a group, say).
  const std::string where = path_ + ": dataset '" + name + "'";
  Dataset dataset;
  dataset.id = H5Handle(H5Dopen2(file_.get(), name, H5P_DEFAULT));
  H5_CHECK(dataset.id.get(), where);
  const auto dims = dataset_dims(dataset.id.get(), where);
  DPUNET_CHECK(static_cast<int>(dims.size()) == rank, path_, ": dataset '", name, "' has shape ", shape_text(dims),
               "; expected ", rank, " dimensions ", what);

  H5Handle properties(H5Dget_create_plist(dataset.id.get()));
  H5_CHECK(properties.get(), where);
  H5Handle type(H5Dget_type(dataset.id.get()));
  H5_CHECK(type.get(), where);
  const H5D_layout_t layout = H5Pget_layout(properties.get());
  // Samples never written (a file created at full size and filled part way, or not at
  // all) would read as the fill value, a blank image of background: refuse the file.
  const bool holds_values = std::all_of(dims.begin(), dims.end(), [](hsize_t d) { return d > 0; });
  if (layout == H5D_CONTIGUOUS && holds_values) {
    H5D_space_status_t status = H5D_SPACE_STATUS_ERROR;
    H5_CHECK(H5Dget_space_status(dataset.id.get(), &status), where);
    DPUNET_CHECK(status == H5D_SPACE_STATUS_ALLOCATED, path_, ": dataset '", name,
                 "' was never written (an unfinished file?); write the shard again");
  }
  if (layout == H5D_VIRTUAL) check_virtual_sources(properties.get(), name);
  if (layout != H5D_CHUNKED) {
    dataset.storage = layout == H5D_COMPACT ? "compact" : layout == H5D_VIRTUAL ? "virtual" : "contiguous";
    return dataset;
  }
  std::vector<hsize_t> chunk(rank);
  H5_CHECK(H5Pget_chunk(properties.get(), rank, chunk.data()), where);
  hsize_t chunks = 1, written = 0;
  for (int d = 0; d < rank; ++d) chunks *= (dims[d] + chunk[d] - 1) / chunk[d];
  H5Handle space(H5Dget_space(dataset.id.get()));
  H5_CHECK(space.get(), where);
  H5_CHECK(H5Dget_num_chunks(dataset.id.get(), space.get(), &written), where);
  DPUNET_CHECK(!holds_values || written == chunks, path_, ": dataset '", name, "' holds ", written, " of its ", chunks,
               " chunks: samples were never written (an unfinished file?); write the shard again");
  bool one_sample_per_chunk = chunk[0] == 1;
  for (int d = 1; d < rank; ++d) one_sample_per_chunk = one_sample_per_chunk && chunk[d] == dims[d];
  const int filters = H5Pget_nfilters(properties.get());
  H5_CHECK(filters, where);
  // A filter this HDF5 lacks (LZF, Blosc, ...: plugins that h5py or hdf5plugin bring
  // along) fails every read deep inside HDF5; say so once, here, and what to do.
  for (int f = 0; f < filters; ++f) {
    unsigned flags = 0;
    size_t values = 0;
    char filter_name[64] = {};
    unsigned filter_config = 0;
    const H5Z_filter_t filter = H5Pget_filter2(properties.get(), static_cast<unsigned>(f), &flags, &values, nullptr,
                                               sizeof(filter_name), filter_name, &filter_config);
    H5_CHECK(filter, where);
    // Optional filters too (h5py marks LZF so): only the writer may skip one.
    if (H5Zfilter_avail(filter) > 0) continue;
    const std::string which = filter_name[0] != '\0' ? std::string(filter_name) + " (id " + std::to_string(filter) + ")"
                                                     : "with id " + std::to_string(filter);
    DPUNET_FAIL(path_, ": dataset '", name, "' is compressed with the HDF5 filter ", which,
                ", which this HDF5 cannot decode: rewrite the shard uncompressed or with gzip (h5py: "
                "compression='gzip'), or point HDF5_PLUGIN_PATH at a plugin for it");
  }
  bool deflate_only = filters == 0;
  if (filters == 1) {
    unsigned flags = 0;
    size_t values = 0;
    unsigned filter_config = 0;
    const H5Z_filter_t filter =
        H5Pget_filter2(properties.get(), 0, &flags, &values, nullptr, 0, nullptr, &filter_config);
    deflate_only = filter == H5Z_FILTER_DEFLATE;
  }
  dataset.storage = "chunks " + shape_text(chunk) +
                    (filters == 0   ? ", uncompressed"
                     : deflate_only ? ", gzip"
                                    : ", filtered");
  dataset.raw_chunks = one_sample_per_chunk && deflate_only && H5Tget_order(type.get()) != H5T_ORDER_BE;
  dataset.deflated = filters == 1;
  return dataset;
}

void ShardReader::read(int64_t index, void* image, uint8_t* mask) const {
  DPUNET_CHECK(index >= 0 && index < header_.samples, path_, ": sample ", index, " outside [0, ", header_.samples, ")");
  silence_hdf5_errors();
  const size_t image_bytes = static_cast<size_t>(header_.image_values()) * pixel_type_bytes(header_.pixel_type);
  read_into(images_, index, 4, native_type_of(header_.pixel_type), image, image_bytes, kImagesDataset);
  read_into(masks_, index, 3, H5T_NATIVE_UINT8, mask, static_cast<size_t>(header_.pixels()), kMasksDataset);
  check_labels(index, mask);
}

void ShardReader::read_into(const Dataset& dataset, int64_t index, int rank, hid_t memory_type, void* out, size_t bytes,
                            const char* name) const {
  const std::string context = ::dpunet::detail::concat(path_, ": sample ", index, " of '", name, "'");
  std::vector<hsize_t> start(rank, 0);
  start[0] = static_cast<hsize_t>(index);
  if (dataset.raw_chunks) {
    std::vector<unsigned char> stored;
    uint32_t skipped_filters = 0;
    {
      auto guard = hdf5_guard();
      hsize_t stored_bytes = 0;
      H5_CHECK(H5Dget_chunk_storage_size(dataset.id.get(), start.data(), &stored_bytes), context);
      DPUNET_CHECK(stored_bytes > 0, context, ": the chunk was never written");
      // A damaged chunk index must not make us allocate whatever it says.
      const hsize_t largest = std::max<hsize_t>(bytes, compressBound(static_cast<uLong>(bytes)));
      DPUNET_CHECK(stored_bytes <= largest, context, ": the file says the stored chunk holds ", stored_bytes,
                   " bytes, more than ", largest, " a sample can take (a damaged file)");
      if (dataset.deflated) stored.resize(stored_bytes);  // else the chunk goes straight into `out`
      void* target = dataset.deflated ? stored.data() : out;
      DPUNET_CHECK(dataset.deflated || stored_bytes == bytes, context, ": stored chunk holds ", stored_bytes,
                   " bytes, expected ", bytes);
      H5_CHECK(H5Dread_chunk(dataset.id.get(), H5P_DEFAULT, start.data(), &skipped_filters, target), context);
    }
    if (!dataset.deflated) return;
    if ((skipped_filters & 1u) != 0) {  // the writer stored this chunk uncompressed
      DPUNET_CHECK(stored.size() == bytes, context, ": stored chunk holds ", stored.size(), " bytes, expected ", bytes);
      std::copy(stored.begin(), stored.end(), static_cast<unsigned char*>(out));
      return;
    }
    uLongf produced = static_cast<uLongf>(bytes);
    const int status =
        uncompress(static_cast<Bytef*>(out), &produced, stored.data(), static_cast<uLong>(stored.size()));
    DPUNET_CHECK(status == Z_OK && produced == bytes, context, ": corrupt compressed chunk (zlib status ", status, ", ",
                 produced, " of ", bytes, " bytes)");
    return;
  }
  std::vector<hsize_t> count;
  {
    auto guard = hdf5_guard();
    H5Handle file_space(H5Dget_space(dataset.id.get()));
    H5_CHECK(file_space.get(), context);
    std::vector<hsize_t> dims(rank);
    H5_CHECK(H5Sget_simple_extent_dims(file_space.get(), dims.data(), nullptr), context);
    count = dims;
    count[0] = 1;
    H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
             context);
    H5Handle memory_space(H5Screate_simple(rank, count.data(), nullptr));
    H5_CHECK(memory_space.get(), context);
    H5_CHECK(H5Dread(dataset.id.get(), memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, out), context);
  }
}

void ShardReader::check_labels(int64_t index, const uint8_t* mask) const {
  for (int64_t p = 0; p < header_.pixels(); ++p) {
    if (header_.valid_mask_value(mask[p])) continue;
    DPUNET_FAIL(path_, ": sample ", index, ": pixel (", p / header_.width, ", ", p % header_.width,
                "): ", invalid_mask_value(header_, mask[p]));
  }
}

}  // namespace dpunet::data
