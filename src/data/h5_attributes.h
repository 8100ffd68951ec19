// Shard attributes and HDF5 type mapping: how a ShardHeader's dataset-wide fields are
// stored as file attributes, and read back with errors that name the file and attribute.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>

#include "data/shard_format.h"

namespace dpunet::data {

// The in-memory HDF5 type for a pixel type.
hid_t native_type_of(PixelType type);
// Value `index` of a buffer of `type` pixels, as a double.
double pixel_value(const void* data, PixelType type, int64_t index);

// Writes version, n_classes, class names and channel statistics onto `file`.
void write_header_attributes(hid_t file, const ShardHeader& header, const std::string& path);
// Reads them back into `header` (its C must already be known); missing or malformed
// attributes are errors naming `path` and the attribute.
void read_header_attributes(hid_t file, ShardHeader& header, const std::string& path);

}  // namespace dpunet::data
