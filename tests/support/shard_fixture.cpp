// Known-content and deliberately broken shards.
#include "support/shard_fixture.h"

#include <hdf5.h>

#include "data/h5_attributes.h"
#include "data/h5_handle.h"
#include "data/shard_writer.h"

namespace dpunet::test {

uint8_t known_pixel(int64_t sample, int64_t channel, int64_t pixel) {
  return static_cast<uint8_t>((sample * 7 + channel * 3 + pixel) % 251);
}

uint8_t known_label(int64_t sample, int64_t pixel, int n_classes) {
  return static_cast<uint8_t>((sample + pixel) % n_classes);
}

void write_known_shard(const std::string& path, int64_t samples, int64_t first, int64_t channels, int64_t size,
                       data::PixelType type, int n_classes, int gzip_level) {
  data::ShardHeader header;
  header.samples = samples;
  header.channels = channels;
  header.height = header.width = size;
  header.pixel_type = type;
  header.n_classes = n_classes;
  data::ShardWriter writer(path, header, data::ShardWriteOptions{gzip_level});
  const int64_t pixels = size * size;
  std::vector<float> f(channels * pixels);
  std::vector<uint16_t> u16(f.size());
  std::vector<uint8_t> u8(f.size()), mask(pixels);
  for (int64_t i = 0; i < samples; ++i) {
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t p = 0; p < pixels; ++p) {
        const uint8_t v = known_pixel(first + i, c, p);
        f[c * pixels + p] = v;
        u16[c * pixels + p] = v;
        u8[c * pixels + p] = v;
      }
    }
    for (int64_t p = 0; p < pixels; ++p) mask[p] = known_label(first + i, p, n_classes);
    const void* image = type == data::PixelType::kFloat32  ? static_cast<const void*>(f.data())
                        : type == data::PixelType::kUInt16 ? static_cast<const void*>(u16.data())
                                                           : u8.data();
    writer.write(i, image, mask.data());
  }
  writer.finish();
}

// class_names again, stored another way (h5py's: UTF-8 variable length, or fixed length).
void rewrite_class_names(hid_t file, const data::ShardHeader& header, RawShard::Names form) {
  H5Adelete(file, data::kClassNamesAttribute);
  const hsize_t count = header.class_names.size();
  data::H5Handle space(H5Screate_simple(1, &count, nullptr));
  data::H5Handle type(H5Tcopy(H5T_C_S1));
  if (form == RawShard::Names::kUtf8Variable) {
    H5Tset_size(type.get(), H5T_VARIABLE);
    H5Tset_cset(type.get(), H5T_CSET_UTF8);
    std::vector<const char*> names;
    for (const auto& name : header.class_names) names.push_back(name.c_str());
    data::H5Handle attribute(
        H5Acreate2(file, data::kClassNamesAttribute, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
    H5Awrite(attribute.get(), type.get(), names.data());
    return;
  }
  constexpr size_t kWidth = 6;
  H5Tset_size(type.get(), kWidth);
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  std::vector<char> packed(count * kWidth, '\0');
  for (size_t i = 0; i < count; ++i) header.class_names[i].copy(packed.data() + i * kWidth, kWidth);
  data::H5Handle attribute(
      H5Acreate2(file, data::kClassNamesAttribute, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  H5Awrite(attribute.get(), type.get(), packed.data());
}

void write_raw_shard(const std::string& path, const RawShard& spec) {
  data::silence_hdf5_errors();
  data::H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  using Unwritten = RawShard::Unwritten;
  auto add = [&](const char* name, const std::vector<unsigned long long>& dims, hid_t type, uint8_t fill,
                 int filter = 0, Unwritten unwritten = Unwritten::kNone) {
    std::vector<hsize_t> h5dims(dims.begin(), dims.end());
    data::H5Handle space(H5Screate_simple(static_cast<int>(h5dims.size()), h5dims.data(), nullptr));
    data::H5Handle properties(H5Pcreate(H5P_DATASET_CREATE));
    std::vector<hsize_t> chunk = h5dims;
    chunk[0] = 1;
    if (filter != 0 || unwritten == Unwritten::kChunksAfterFirst) {
      H5Pset_chunk(properties.get(), static_cast<int>(chunk.size()), chunk.data());
    }
    if (filter != 0) {
      // Optional, as h5py sets LZF: HDF5 accepts a filter it cannot run and stores the chunks raw.
      H5Pset_filter(properties.get(), static_cast<H5Z_filter_t>(filter), H5Z_FLAG_OPTIONAL, 0, nullptr);
    }
    data::H5Handle set(H5Dcreate2(file.get(), name, type, space.get(), H5P_DEFAULT, properties.get(), H5P_DEFAULT));
    if (unwritten == Unwritten::kContiguous) return;
    size_t count = 1;
    for (auto d : dims) count *= d;
    std::vector<int32_t> values(count, fill);
    if (unwritten == Unwritten::kChunksAfterFirst) {  // the first sample only
      data::H5Handle file_space(H5Dget_space(set.get()));
      const std::vector<hsize_t> start(chunk.size(), 0);
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, chunk.data(), nullptr);
      data::H5Handle memory_space(H5Screate_simple(static_cast<int>(chunk.size()), chunk.data(), nullptr));
      H5Dwrite(set.get(), H5T_NATIVE_INT32, memory_space.get(), file_space.get(), H5P_DEFAULT, values.data());
      return;
    }
    H5Dwrite(set.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  };
  if (spec.images_as_group) {
    data::H5Handle group(H5Gcreate2(file.get(), "images", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  } else if (spec.write_images) {
    add("images", spec.image_dims, spec.int32_images ? H5T_STD_I32LE : H5T_STD_U8LE, 10, spec.image_filter,
        spec.unwritten_images);
  }
  if (spec.write_masks) add("masks", spec.mask_dims, spec.int64_masks ? H5T_STD_I64LE : H5T_STD_U8LE, spec.mask_value);
  if (spec.attributes) {
    data::ShardHeader header;
    header.channels = spec.image_dims.size() > 1 ? static_cast<int64_t>(spec.image_dims[1]) : 1;
    header.n_classes = spec.n_classes;
    header.ignore_label = spec.ignore_label;
    for (int c = 0; c < spec.n_classes; ++c) header.class_names.push_back("c" + std::to_string(c));
    header.channel_mean.assign(header.channels, spec.channel_mean);
    header.channel_std.assign(header.channels, spec.channel_std);
    data::write_header_attributes(file.get(), header, path);
    if (spec.names != RawShard::Names::kAsciiVariable) rewrite_class_names(file.get(), header, spec.names);
  }
}

}  // namespace dpunet::test
