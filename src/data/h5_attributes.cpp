// Attribute (de)serialisation of the shard header.
#include "data/h5_attributes.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "data/h5_handle.h"

namespace dpunet::data {
namespace {

void write_attribute(hid_t file, const char* name, hid_t file_type, hid_t memory_type, hsize_t count, const void* data,
                     const std::string& path) {
  H5Handle space(H5Screate_simple(1, &count, nullptr));
  H5_CHECK(space.get(), path);
  H5Handle attribute(H5Acreate2(file, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  H5_CHECK(attribute.get(), path);
  H5_CHECK(H5Awrite(attribute.get(), memory_type, data), path);
}

H5Handle open_attribute(hid_t file, const char* name, const std::string& path, hsize_t* count) {
  const htri_t exists = H5Aexists(file, name);
  H5_CHECK(exists, path);
  DPUNET_CHECK(exists > 0, path, ": attribute '", name, "' is missing");
  H5Handle attribute(H5Aopen(file, name, H5P_DEFAULT));
  H5_CHECK(attribute.get(), path);
  H5Handle space(H5Aget_space(attribute.get()));
  H5_CHECK(space.get(), path);
  const int64_t points = H5Sget_simple_extent_npoints(space.get());
  H5_CHECK(points, path);
  *count = static_cast<hsize_t>(points);
  return attribute;
}

int64_t read_integer(hid_t file, const char* name, const std::string& path) {
  hsize_t count = 0;
  H5Handle attribute = open_attribute(file, name, path, &count);
  H5Handle type(H5Aget_type(attribute.get()));
  H5_CHECK(type.get(), path);
  DPUNET_CHECK(count == 1 && H5Tget_class(type.get()) == H5T_INTEGER, path, ": attribute '", name,
               "' must be one integer");
  int64_t value = 0;
  H5_CHECK(H5Aread(attribute.get(), H5T_NATIVE_INT64, &value), path);
  return value;
}

std::vector<double> read_doubles(hid_t file, const char* name, const std::string& path) {
  hsize_t count = 0;
  H5Handle attribute = open_attribute(file, name, path, &count);
  H5Handle type(H5Aget_type(attribute.get()));
  H5_CHECK(type.get(), path);
  const H5T_class_t type_class = H5Tget_class(type.get());
  DPUNET_CHECK(type_class == H5T_FLOAT || type_class == H5T_INTEGER, path, ": attribute '", name,
               "' must hold numbers");
  std::vector<double> values(count);
  if (count > 0) H5_CHECK(H5Aread(attribute.get(), H5T_NATIVE_DOUBLE, values.data()), path);
  return values;
}

// Variable- or fixed-length strings in ASCII or UTF-8: dpunet writes variable-length
// ASCII, h5py writes UTF-8 for str and fixed-length for numpy bytes, and HDF5 converts
// neither between character sets nor from fixed to variable length.
std::vector<std::string> read_strings(hid_t file, const char* name, const std::string& path) {
  hsize_t count = 0;
  H5Handle attribute = open_attribute(file, name, path, &count);
  H5Handle file_type(H5Aget_type(attribute.get()));
  H5_CHECK(file_type.get(), path);
  DPUNET_CHECK(H5Tget_class(file_type.get()) == H5T_STRING, path, ": attribute '", name, "' must hold strings");
  const H5T_cset_t cset = H5Tget_cset(file_type.get());
  H5_CHECK(cset, path);
  const htri_t variable = H5Tis_variable_str(file_type.get());
  H5_CHECK(variable, path);
  H5Handle memory_type(H5Tcopy(H5T_C_S1));
  H5_CHECK(memory_type.get(), path);
  H5_CHECK(H5Tset_cset(memory_type.get(), cset), path);
  std::vector<std::string> values;
  if (variable > 0) {
    H5_CHECK(H5Tset_size(memory_type.get(), H5T_VARIABLE), path);
    std::vector<char*> raw(count, nullptr);
    if (count > 0) H5_CHECK(H5Aread(attribute.get(), memory_type.get(), raw.data()), path);
    for (char* text : raw) {
      values.emplace_back(text != nullptr ? text : "");
      H5free_memory(text);
    }
    return values;
  }
  const size_t width = H5Tget_size(file_type.get());
  DPUNET_CHECK(width > 0, path, ": attribute '", name, "' holds strings of no length");
  H5_CHECK(H5Tset_size(memory_type.get(), width), path);
  H5_CHECK(H5Tset_strpad(memory_type.get(), H5T_STR_NULLPAD), path);
  std::vector<char> raw(count * width, '\0');
  if (count > 0) H5_CHECK(H5Aread(attribute.get(), memory_type.get(), raw.data()), path);
  for (hsize_t i = 0; i < count; ++i) {
    const char* text = raw.data() + i * width;
    values.emplace_back(text, strnlen(text, width));
  }
  return values;
}

}  // namespace

hid_t native_type_of(PixelType type) {
  switch (type) {
    case PixelType::kUInt8: return H5T_NATIVE_UINT8;
    case PixelType::kUInt16: return H5T_NATIVE_UINT16;
    case PixelType::kFloat32: return H5T_NATIVE_FLOAT;
  }
  return H5T_NATIVE_UINT8;
}

double pixel_value(const void* data, PixelType type, int64_t index) {
  switch (type) {
    case PixelType::kUInt8: return static_cast<const uint8_t*>(data)[index];
    case PixelType::kUInt16: return static_cast<const uint16_t*>(data)[index];
    case PixelType::kFloat32: return static_cast<const float*>(data)[index];
  }
  return 0;
}

void write_header_attributes(hid_t file, const ShardHeader& header, const std::string& path) {
  const int64_t version = kShardFormatVersion, classes = header.n_classes;
  write_attribute(file, kVersionAttribute, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &version, path);
  write_attribute(file, kClassesAttribute, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &classes, path);
  if (header.ignore_label >= 0) {
    // Absent when every pixel is labelled: such shards stay readable by older builds.
    const int64_t ignore = header.ignore_label;
    write_attribute(file, kIgnoreLabelAttribute, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &ignore, path);
  }
  write_attribute(file, kMeanAttribute, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, header.channel_mean.size(),
                  header.channel_mean.data(), path);
  write_attribute(file, kStdAttribute, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, header.channel_std.size(),
                  header.channel_std.data(), path);
  H5Handle string_type(H5Tcopy(H5T_C_S1));
  H5_CHECK(string_type.get(), path);
  H5_CHECK(H5Tset_size(string_type.get(), H5T_VARIABLE), path);
  std::vector<const char*> names;
  for (const std::string& name : header.class_names) names.push_back(name.c_str());
  write_attribute(file, kClassNamesAttribute, string_type.get(), string_type.get(), names.size(), names.data(), path);
}

void read_header_attributes(hid_t file, ShardHeader& header, const std::string& path) {
  const htri_t versioned = H5Aexists(file, kVersionAttribute);
  H5_CHECK(versioned, path);
  DPUNET_CHECK(versioned > 0, path, ": not a dpunet shard (no '", kVersionAttribute,
               "' attribute); shards are made by `dpunet data synth` or `dpunet data import`");
  const int64_t version = read_integer(file, kVersionAttribute, path);
  DPUNET_CHECK(version >= 1 && version <= kShardFormatVersion, path, ": shard format version ", version,
               " is not supported (this build reads versions 1 to ", kShardFormatVersion, ")");
  const int64_t classes = read_integer(file, kClassesAttribute, path);
  DPUNET_CHECK(classes >= 2 && classes <= 256, path, ": attribute '", kClassesAttribute, "' must be in [2, 256], got ",
               classes);
  header.n_classes = static_cast<int>(classes);
  header.class_names = read_strings(file, kClassNamesAttribute, path);
  DPUNET_CHECK(static_cast<int64_t>(header.class_names.size()) == classes, path, ": attribute '", kClassNamesAttribute,
               "' has ", header.class_names.size(), " names for ", classes, " classes");
  const htri_t has_ignore_label = H5Aexists(file, kIgnoreLabelAttribute);
  H5_CHECK(has_ignore_label, path);
  if (has_ignore_label > 0) {
    const int64_t ignore = read_integer(file, kIgnoreLabelAttribute, path);
    DPUNET_CHECK(ignore >= classes && ignore <= 255, path, ": attribute '", kIgnoreLabelAttribute,
                 "' must be a mask value that is not a class, in [", classes, ", 255], got ", ignore);
    header.ignore_label = static_cast<int>(ignore);
  }
  header.channel_mean = read_doubles(file, kMeanAttribute, path);
  header.channel_std = read_doubles(file, kStdAttribute, path);
  DPUNET_CHECK(static_cast<int64_t>(header.channel_mean.size()) == header.channels &&
                   static_cast<int64_t>(header.channel_std.size()) == header.channels,
               path, ": attributes '", kMeanAttribute, "' and '", kStdAttribute, "' need ", header.channels,
               " values (one per channel)");
  // Normalisation divides by these: a NaN or infinite one would make every input NaN or 0.
  const auto check_statistic = [&](const char* name, double value, size_t channel, bool may_be_negative) {
    DPUNET_CHECK(std::isfinite(value) && (may_be_negative || value >= 0), path, ": attribute '", name, "' holds ",
                 value, " for channel ", channel,
                 ": the statistics must be finite (a standard deviation not negative); write them again, or write "
                 "the shard again with dpunet data import");
  };
  for (size_t c = 0; c < header.channel_mean.size(); ++c) {
    check_statistic(kMeanAttribute, header.channel_mean[c], c, true);
    check_statistic(kStdAttribute, header.channel_std[c], c, false);
  }
}

}  // namespace dpunet::data
