// Shard format: round trips for every pixel type and compression, the dataset's global
// index over shards, and one clear error naming the file for each kind of bad input.
#include <hdf5.h>
#include "support/catch.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "data/h5_attributes.h"
#include "data/h5_handle.h"
#include "data/inspect.h"
#include "data/shard_reader.h"
#include "data/shard_writer.h"
#include "support/shard_fixture.h"
#include "support/temp_dir.h"

using dpunet::data::Dataset;
using dpunet::data::PixelType;
using dpunet::data::ShardHeader;
using dpunet::data::ShardReader;
using dpunet::test::TempDir;

namespace {

std::vector<double> read_pixels(const ShardReader& reader, int64_t index, std::vector<uint8_t>& mask) {
  const auto& h = reader.header();
  std::vector<unsigned char> raw(h.image_values() * dpunet::data::pixel_type_bytes(h.pixel_type));
  mask.resize(h.pixels());
  reader.read(index, raw.data(), mask.data());
  std::vector<double> values;
  for (int64_t v = 0; v < h.image_values(); ++v) {
    switch (h.pixel_type) {
      case PixelType::kUInt8: values.push_back(raw[v]); break;
      case PixelType::kUInt16: values.push_back(reinterpret_cast<uint16_t*>(raw.data())[v]); break;
      case PixelType::kFloat32: values.push_back(reinterpret_cast<float*>(raw.data())[v]); break;
    }
  }
  return values;
}

// Mean and population standard deviation, computed directly.
std::pair<double, double> mean_and_std(const std::vector<double>& values) {
  double sum = 0, squares = 0;
  for (double v : values) sum += v;
  const double mean = sum / static_cast<double>(values.size());
  for (double v : values) squares += (v - mean) * (v - mean);
  return {mean, std::sqrt(squares / static_cast<double>(values.size()))};
}

// Overwrites the stored bytes of `sample`'s image chunk with garbage.
void corrupt_chunk(const std::string& path, hsize_t sample) {
  haddr_t address = 0;
  hsize_t size = 0;
  {
    hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t images = H5Dopen2(file, "images", H5P_DEFAULT);
    const hsize_t offset[4] = {sample, 0, 0, 0};
    unsigned mask = 0;
    REQUIRE(H5Dget_chunk_info_by_coord(images, offset, &mask, &address, &size) >= 0);
    H5Dclose(images);
    H5Fclose(file);
  }
  std::fstream out(path, std::ios::in | std::ios::out | std::ios::binary);
  out.seekp(static_cast<std::streamoff>(address));
  const std::string garbage(static_cast<size_t>(size), '\x5a');
  out.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
}

}  // namespace

TEST_CASE("a shard round-trips every pixel type, raw and compressed", "[data]") {
  const PixelType type = GENERATE(PixelType::kUInt8, PixelType::kUInt16, PixelType::kFloat32);
  const int gzip = GENERATE(0, 4);
  TempDir dir;
  const std::string path = dir / "s.h5";
  dpunet::test::write_known_shard(path, /*samples=*/3, /*first=*/0, /*channels=*/2, /*size=*/8, type, 4, gzip);
  const ShardReader reader(path);
  const auto& h = reader.header();
  CHECK(h.samples == 3);
  CHECK(h.channels == 2);
  CHECK(h.height == 8);
  CHECK(h.width == 8);
  CHECK(h.pixel_type == type);
  CHECK(h.n_classes == 4);
  CHECK(h.class_names == std::vector<std::string>{"class0", "class1", "class2", "class3"});
  CHECK_THAT(reader.storage(), HasSubstr("chunks [1, 2, 8, 8]") && HasSubstr(gzip ? "gzip" : "uncompressed"));
  std::vector<double> pixels[2];
  for (int64_t i = 0; i < 3; ++i) {
    std::vector<uint8_t> mask;
    const auto values = read_pixels(reader, i, mask);
    for (int64_t c = 0; c < 2; ++c) {
      for (int64_t p = 0; p < 64; ++p) REQUIRE(values[c * 64 + p] == dpunet::test::known_pixel(i, c, p));
      for (int64_t p = 0; p < 64; ++p) pixels[c].push_back(values[c * 64 + p]);
    }
    for (int64_t p = 0; p < 64; ++p) REQUIRE(mask[p] == dpunet::test::known_label(i, p, 4));
  }
  // Each channel's mean and (population) standard deviation over every pixel.
  for (int64_t c = 0; c < 2; ++c) {
    const auto [mean, std] = mean_and_std(pixels[c]);
    CHECK(h.channel_mean[c] == Approx(mean));
    CHECK(h.channel_std[c] == Approx(std));
  }
}

TEST_CASE("a shard's channel statistics keep a small spread of large values", "[data]") {
  // 59999.5 and 60000.5, a million of them: E[x^2] - E[x]^2 summed in doubles lost a
  // fifth of the spread (0.386 for 0.5).
  TempDir dir;
  dpunet::data::ShardHeader header;
  header.samples = 1;
  header.channels = 1;
  header.height = header.width = 1024;
  header.pixel_type = PixelType::kFloat32;
  header.n_classes = 2;
  std::vector<float> image(1024 * 1024);
  for (size_t p = 0; p < image.size(); ++p) image[p] = 59999.5F + static_cast<float>(((p * 2654435761u) >> 13) & 1);
  const std::vector<uint8_t> mask(image.size(), 0);
  dpunet::data::ShardWriter writer(dir / "s.h5", header);
  writer.write(0, image.data(), mask.data());
  writer.finish();
  std::vector<double> values(image.begin(), image.end());
  const auto [mean, std] = mean_and_std(values);
  const ShardReader reader(dir / "s.h5");
  CHECK(reader.header().channel_mean[0] == Approx(mean).epsilon(1e-12));
  CHECK(reader.header().channel_std[0] == Approx(std).epsilon(1e-9));
  CHECK(std == Approx(0.5).epsilon(1e-3));
}

namespace {
// A header of `samples` one-channel 4x4 samples and two classes.
// `data inspect --verify` of `spec`, its listing in `listing`.
dpunet::data::InspectResult verify_dataset(const std::string& spec, std::ostringstream& listing) {
  dpunet::data::InspectOptions options;
  options.verify = true;
  return dpunet::data::inspect_dataset(spec, options, listing);
}

dpunet::data::ShardHeader small_header(int64_t samples) {
  dpunet::data::ShardHeader header;
  header.samples = samples;
  header.channels = 1;
  header.height = header.width = 4;
  header.n_classes = 2;
  return header;
}
}  // namespace

TEST_CASE("an unfinished shard leaves no file behind", "[data]") {
  TempDir dir;
  const std::string path = dir / "s.h5";
  {
    dpunet::data::ShardWriter writer(path, small_header(2));
    const std::vector<uint8_t> image(16, 1), mask(16, 0);
    writer.write(0, image.data(), mask.data());
    CHECK_THROWS_WITH(writer.finish(), HasSubstr("1 of 2 samples"));
  }
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK_FALSE(std::filesystem::exists(path + ".partial"));
  // Nor one refused as it starts: a sample of 6.4 GB is over HDF5's 4 GiB chunk limit,
  // said in dpunet's words before HDF5 is asked.
  dpunet::data::ShardHeader huge = small_header(1);
  huge.pixel_type = PixelType::kFloat32;
  huge.height = huge.width = 40000;
  CHECK_THROWS_WITH(dpunet::data::ShardWriter(path, huge),
                    HasSubstr(path + ": one sample of 1 x 40000 x 40000 float32 is 5.96") &&
                        HasSubstr("must stay below 4 GiB: cut the images into tiles first"));
  CHECK_FALSE(std::filesystem::exists(path + ".partial"));
}

TEST_CASE("source statistics round-trip, for every sample or none, and damaged ones are refused", "[data]") {
  TempDir dir;
  const std::vector<uint8_t> image(16, 1), mask(16, 0);
  const auto write = [&](const std::string& path, const std::vector<std::vector<double>>& statistics) {
    dpunet::data::ShardWriter writer(path, small_header(static_cast<int64_t>(statistics.size())));
    for (size_t i = 0; i < statistics.size(); ++i) {
      writer.write(static_cast<int64_t>(i), image.data(), mask.data(),
                   statistics[i].empty() ? nullptr : statistics[i].data());
    }
    writer.finish();
  };
  write(dir / "a.h5", {{10.5, 2.25}, {99, 0}});
  const dpunet::data::ShardReader a(dir / "a.h5");
  REQUIRE(a.source_statistics(0) != nullptr);
  CHECK(a.source_statistics(0)[0] == 10.5);
  CHECK(a.source_statistics(0)[1] == 2.25);
  CHECK(a.source_statistics(1)[0] == 99);
  write(dir / "none.h5", {{}, {}});
  CHECK(dpunet::data::ShardReader(dir / "none.h5").source_statistics(0) == nullptr);
  CHECK_THROWS_WITH(write(dir / "some.h5", {{1, 1}, {}}),
                    HasSubstr(dir / "some.h5") && HasSubstr("source statistics given for 1 of 2 samples"));
  CHECK_FALSE(std::filesystem::exists(dir / "some.h5"));
  write(dir / "bad.h5", {{1, 1}, {5, -1}});
  CHECK_THROWS_WITH(dpunet::data::ShardReader(dir / "bad.h5"),
                    HasSubstr(dir / "bad.h5") && HasSubstr("dataset 'source_statistics' of sample 1, channel 0") &&
                        HasSubstr("std -1"));
}

TEST_CASE("the shard writer refuses labels outside the classes", "[data]") {
  TempDir dir;
  dpunet::data::ShardWriter writer(dir / "s.h5", small_header(1));
  std::vector<uint8_t> image(16, 1), mask(16, 0);
  mask[5] = 2;
  CHECK_THROWS_WITH(writer.write(0, image.data(), mask.data()), HasSubstr("mask label 2 >= n_classes 2"));
}

TEST_CASE("an ignore label round-trips, its value is a valid label, and shards must not contradict it", "[data]") {
  TempDir dir;
  dpunet::data::ShardHeader header = small_header(2);
  header.ignore_label = 255;
  std::vector<uint8_t> image(16, 1), mask(16, 1);
  mask[3] = 255;
  {
    dpunet::data::ShardWriter writer(dir / "a.h5", header);
    writer.write(0, image.data(), mask.data());
    mask[4] = 254;
    CHECK_THROWS_WITH(writer.write(1, image.data(), mask.data()),
                      HasSubstr("pixel (1, 0): mask label 254 >= n_classes 2 and not the ignore label 255"));
    mask[4] = 0;
    writer.write(1, image.data(), mask.data());
    writer.finish();
  }
  const ShardReader reader(dir / "a.h5");
  CHECK(reader.header().ignore_label == 255);
  std::vector<uint8_t> image_back(16), mask_back(16);
  reader.read(1, image_back.data(), mask_back.data());
  CHECK(mask_back == mask);
  CHECK_THAT(dpunet::data::describe_layout(reader.header()), HasSubstr("n_classes=2 ignore_label=255"));
  // A fully labelled shard joins it, before or after: the dataset has the ignore label.
  const auto write_labelled = [&](const std::string& path, int ignore_label) {
    header.ignore_label = ignore_label;
    dpunet::data::ShardWriter writer(path, header);
    for (int64_t i = 0; i < 2; ++i) writer.write(i, image.data(), std::vector<uint8_t>(16, 0).data());
    writer.finish();
  };
  write_labelled(dir / "0.h5", -1);
  CHECK(ShardReader(dir / "0.h5").header().ignore_label == -1);
  CHECK(Dataset(dir.path()).header().ignore_label == 255);
  CHECK(Dataset(dir / "0.h5").header().ignore_label == -1);
  // Another ignore label cannot.
  write_labelled(dir / "b.h5", 254);
  CHECK_THROWS_WITH(Dataset(dir.path()),
                    HasSubstr("ignore_label=255") && HasSubstr(dir / "b.h5") && HasSubstr("ignore_label=254"));
  // inspect --verify lists it and reads the rest: a fully labelled shard agrees with
  // either label, and the label most shards carry is the dataset's.
  write_labelled(dir / "c.h5", 255);
  std::ostringstream listing;
  const auto result = verify_dataset(dir.path(), listing);
  INFO(listing.str());
  CHECK(result.bad_shards == 1);
  CHECK(result.bad_samples == 0);
  CHECK_THAT(listing.str(), HasSubstr("BAD " + dir / "b.h5: C=1 H=4 W=4 uint8 n_classes=2 ignore_label=254, unlike") &&
                                HasSubstr("6 samples good"));
  header.ignore_label = 1;
  CHECK_THROWS_WITH(dpunet::data::ShardWriter(dir / "c.h5", header),
                    HasSubstr("the ignore label must be a mask value that is not a class, in [2, 255], got 1"));
}

TEST_CASE("shards that name their classes apart are refused, and default names join given ones", "[data]") {
  TempDir dir;
  const auto write_named = [&](const std::string& path, std::vector<std::string> names) {
    dpunet::data::ShardHeader header = small_header(1);
    header.class_names = std::move(names);
    dpunet::data::ShardWriter writer(path, header);
    writer.write(0, std::vector<uint8_t>(16, 1).data(), std::vector<uint8_t>(16, 0).data());
    writer.finish();
  };
  write_named(dir / "a.h5", {});  // the defaults: class0, class1
  write_named(dir / "b.h5", {"background", "cell"});
  write_named(dir / "c.h5", {"background", "cell"});
  // Before or after the named ones, the dataset takes the given names.
  CHECK(Dataset(dir.path()).header().class_names == std::vector<std::string>{"background", "cell"});
  CHECK(Dataset(std::vector<std::string>{dir / "b.h5", dir / "a.h5"}).header().class_names ==
        std::vector<std::string>{"background", "cell"});
  write_named(dir / "d.h5", {"background", "nucleus"});
  CHECK_THROWS_WITH(Dataset(dir.path()), HasSubstr("shards disagree: " + dir / "d.h5" +
                                                   " names the classes background,nucleus but the "
                                                   "shards before it (" +
                                                   dir / "a.h5" + ", ...) name them background,cell") &&
                                             HasSubstr("(class 1 is 'cell' in one and 'nucleus' in the other)"));
  // inspect --verify lists it and reads the rest; the names most shards give are the set's.
  std::ostringstream listing;
  const auto result = verify_dataset(dir.path(), listing);
  INFO(listing.str());
  CHECK(result.bad_shards == 1);
  CHECK_THAT(listing.str(), HasSubstr("BAD " + dir / "d.h5: classes background,nucleus, unlike the 2 shard(s) naming "
                                                     "them background,cell") &&
                                HasSubstr("3 samples good") && HasSubstr("classes 2: background cell"));
}

TEST_CASE("a dataset indexes its shards in order, from a directory, a glob or an index file", "[data]") {
  TempDir dir;
  dpunet::test::write_known_shard(dir / "a.h5", 3, /*first=*/0);
  dpunet::test::write_known_shard(dir / "b.h5", 5, /*first=*/3);
  std::ofstream(dir / "._a.h5") << "macOS's resource data for a.h5";  // hidden: passed over
  std::ofstream(dir / "list.txt") << "# two shards\na.h5\n  b.h5  \n";
  for (const std::string& spec : {dir.path(), dir / "*.h5", dir / "list.txt"}) {
    const Dataset dataset(spec);
    REQUIRE(dataset.size() == 8);
    std::vector<unsigned char> image(64);
    std::vector<uint8_t> mask(64);
    for (int64_t i = 0; i < 8; ++i) {
      dataset.read(i, image.data(), mask.data());
      REQUIRE(image[5] == dpunet::test::known_pixel(i, 0, 5));
    }
    CHECK(dataset.locate(4).second == 1);
    // Shards of 3 and 5 samples: the statistics of all 8 samples' pixels, each shard's
    // weighted by its size.
    std::vector<double> pixels;
    for (int64_t i = 0; i < 8; ++i) {
      for (int64_t p = 0; p < 64; ++p) pixels.push_back(dpunet::test::known_pixel(i, 0, p));
    }
    const auto [mean, std] = mean_and_std(pixels);
    CHECK(dataset.header().channel_mean[0] == Approx(mean));
    CHECK(dataset.header().channel_std[0] == Approx(std));
  }
  // An index that lists a shard twice (by another spelling too) would show its samples
  // twice an epoch; a missing shard names the index that lists it.
  std::ofstream(dir / "twice.txt") << "a.h5\nb.h5\n./a.h5\n";
  CHECK_THROWS_WITH(Dataset(dir / "twice.txt"), HasSubstr(dir / "twice.txt") && HasSubstr("line 3: ./a.h5 is listed "
                                                                                          "already (line 1)"));
  std::ofstream(dir / "missing.txt") << "a.h5\n\nc.h5\n";
  CHECK_THROWS_WITH(Dataset(dir / "missing.txt"), HasSubstr("c.h5: no such file (listed in " + dir / "missing.txt"));
}

TEST_CASE("a shard folder with a link to a missing shard is an error, not a shorter dataset", "[data]") {
  TempDir dir;
  dpunet::test::write_known_shard(dir / "a.h5", 3, /*first=*/0);
  std::filesystem::create_symlink("/nonexistent/b.h5", dir / "b.h5");
  CHECK_THROWS_WITH(Dataset(dir.path()), HasSubstr(dir / "b.h5") && HasSubstr("a link to /nonexistent/b.h5"));
}

TEST_CASE("a folder named with glob characters is read as written", "[data]") {
  TempDir dir;
  const std::string folder = dir / "exp[1]*";  // as SLURM job or array names make them
  std::filesystem::create_directories(folder);
  dpunet::test::write_known_shard(folder + "/train-0.h5", 3, /*first=*/0);
  dpunet::test::write_known_shard(folder + "/train-1.h5", 2, /*first=*/3);
  for (const std::string& spec : {folder, folder + "/train-0.h5", folder + "/train-*.h5"}) {
    INFO(spec);
    CHECK(Dataset(spec).size() == (spec.find("-0.h5") != std::string::npos ? 3 : 5));
  }
}

TEST_CASE("shards that disagree are an error naming both files", "[data]") {
  TempDir dir;
  dpunet::test::write_known_shard(dir / "a.h5", 2, 0, 1, /*size=*/8);
  dpunet::test::write_known_shard(dir / "b.h5", 2, 0, 1, /*size=*/16);
  CHECK_THROWS_WITH(Dataset(dir.path()),
                    HasSubstr(dir / "a.h5") && HasSubstr(dir / "b.h5") && HasSubstr("H=8") && HasSubstr("H=16"));
}

TEST_CASE("bad shard files give one error that names the file", "[data]") {
  TempDir dir;
  const std::string path = dir / "bad.h5";
  dpunet::test::RawShard spec;
  std::string expected;
  SECTION("missing file") {
    expected = "no such file";
  }
  SECTION("not an HDF5 file") {
    std::ofstream(path) << "just text";
    expected = "not an HDF5 file";
  }
  SECTION("truncated file") {
    dpunet::test::write_known_shard(path, 4, 0, 1, 32);
    std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
    expected = "truncated";
  }
  SECTION("missing dataset") {
    spec.write_masks = false;
    dpunet::test::write_raw_shard(path, spec);
    expected = "dataset 'masks' is missing";
  }
  SECTION("wrong rank") {
    spec.image_dims = {2, 8, 8};
    dpunet::test::write_raw_shard(path, spec);
    expected = "dataset 'images' has shape [2, 8, 8]; expected 4 dimensions";
  }
  SECTION("wrong dtype") {
    spec.int32_images = true;
    dpunet::test::write_raw_shard(path, spec);
    expected = "dataset 'images' holds int32; expected uint8, uint16 or float32";
  }
  SECTION("a group where the images should be") {
    spec.images_as_group = true;
    dpunet::test::write_raw_shard(path, spec);
    expected = "dataset 'images': ";
  }
  SECTION("masks of numpy's default integer") {
    spec.int64_masks = true;
    dpunet::test::write_raw_shard(path, spec);
    expected = "dataset 'masks' holds int64; it must hold uint8 class ids";
  }
  SECTION("no samples") {
    spec.image_dims = {0, 1, 8, 8};
    spec.mask_dims = {0, 8, 8};
    dpunet::test::write_raw_shard(path, spec);
    expected = "holds no samples";
  }
  SECTION("an empty spatial dimension") {
    spec.image_dims = {2, 1, 0, 8};
    spec.mask_dims = {2, 0, 8};
    dpunet::test::write_raw_shard(path, spec);
    expected = "has an empty channel or spatial dimension";
  }
  SECTION("no channels") {
    spec.image_dims = {2, 0, 8, 8};
    spec.attributes = false;  // statistics for no channels cannot be written
    dpunet::test::write_raw_shard(path, spec);
    expected = "has an empty channel or spatial dimension";
  }
  SECTION("images and masks disagree") {
    spec.mask_dims = {3, 8, 8};
    dpunet::test::write_raw_shard(path, spec);
    expected = "disagree";
  }
  SECTION("a compression filter this HDF5 lacks") {
    spec.image_filter = 32000;  // LZF, which h5py brings along and HDF5 does not
    dpunet::test::write_raw_shard(path, spec);
    expected = "compressed with the HDF5 filter with id 32000, which this HDF5 cannot decode";
  }
  SECTION("an ignore label that is a class") {
    spec.ignore_label = 2;
    dpunet::test::write_raw_shard(path, spec);
    expected = "attribute 'ignore_label' must be a mask value that is not a class, in [3, 255], got 2";
  }
  SECTION("a mean that is not a number") {
    spec.channel_mean = std::nan("");
    dpunet::test::write_raw_shard(path, spec);
    expected = "attribute 'channel_mean' holds nan for channel 0";
  }
  SECTION("an infinite standard deviation") {
    spec.channel_std = std::numeric_limits<double>::infinity();
    dpunet::test::write_raw_shard(path, spec);
    expected = "attribute 'channel_std' holds inf for channel 0";
  }
  SECTION("a negative standard deviation") {
    spec.channel_std = -1;
    dpunet::test::write_raw_shard(path, spec);
    expected = "attribute 'channel_std' holds -1 for channel 0";
  }
  SECTION("images never written") {
    spec.unwritten_images = dpunet::test::RawShard::Unwritten::kContiguous;
    dpunet::test::write_raw_shard(path, spec);
    expected = "dataset 'images' was never written";
  }
  SECTION("images written part way") {
    spec.unwritten_images = dpunet::test::RawShard::Unwritten::kChunksAfterFirst;
    dpunet::test::write_raw_shard(path, spec);
    expected = "dataset 'images' holds 1 of its 2 chunks";
  }
  SECTION("no shard attributes") {
    spec.attributes = false;
    dpunet::test::write_raw_shard(path, spec);
    expected = "not a dpunet shard";
  }
  CHECK_THROWS_WITH(ShardReader(path), HasSubstr(path) && HasSubstr(expected));
}

TEST_CASE("a virtual shard reads its source's samples, and is refused naming a source that is gone", "[data]") {
  TempDir dir;
  dpunet::test::write_known_shard(dir / "source.h5", 3);
  const ShardHeader header = ShardReader(dir / "source.h5").header();
  {
    // As h5py's VirtualLayout writes one: both datasets mapped whole onto the source's.
    auto guard = dpunet::data::hdf5_guard();
    const dpunet::data::H5Handle file(H5Fcreate((dir / "virtual.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    const auto map = [&](const char* name, std::vector<hsize_t> dims) {
      const dpunet::data::H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
      const dpunet::data::H5Handle properties(H5Pcreate(H5P_DATASET_CREATE));
      REQUIRE(H5Pset_virtual(properties.get(), space.get(), "source.h5", name, space.get()) >= 0);
      const dpunet::data::H5Handle set(
          H5Dcreate2(file.get(), name, H5T_STD_U8LE, space.get(), H5P_DEFAULT, properties.get(), H5P_DEFAULT));
      REQUIRE(set.valid());
    };
    map("images", {3, 1, 8, 8});
    map("masks", {3, 8, 8});
    dpunet::data::write_header_attributes(file.get(), header, dir / "virtual.h5");
  }
  std::vector<uint8_t> image(64), mask(64), expected_image(64), expected_mask(64);
  ShardReader(dir / "virtual.h5").read(2, image.data(), mask.data());
  ShardReader(dir / "source.h5").read(2, expected_image.data(), expected_mask.data());
  CHECK(image == expected_image);
  CHECK(mask == expected_mask);
  std::filesystem::rename(dir / "source.h5", dir / "moved.h5");
  CHECK_THROWS_WITH(ShardReader(dir / "virtual.h5"),
                    HasSubstr(dir / "virtual.h5") && HasSubstr("virtual dataset whose source file source.h5 is not "
                                                               "there"));
}

TEST_CASE("a shard of samples too large to hold is refused naming their size", "[data]") {
  TempDir dir;
  const std::string path = dir / "huge.h5";
  {
    // 70000 x 70000 pixels a sample (4.6 GiB), allocated without being filled: a sparse
    // file, written in full as far as HDF5 can tell.
    auto guard = dpunet::data::hdf5_guard();
    const dpunet::data::H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    const auto add = [&](const char* name, std::vector<hsize_t> dims) {
      const dpunet::data::H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
      const dpunet::data::H5Handle properties(H5Pcreate(H5P_DATASET_CREATE));
      H5Pset_alloc_time(properties.get(), H5D_ALLOC_TIME_EARLY);
      H5Pset_fill_time(properties.get(), H5D_FILL_TIME_NEVER);
      const dpunet::data::H5Handle set(
          H5Dcreate2(file.get(), name, H5T_STD_U8LE, space.get(), H5P_DEFAULT, properties.get(), H5P_DEFAULT));
      REQUIRE(set.valid());
    };
    add("images", {1, 1, 70000, 70000});
    add("masks", {1, 70000, 70000});
    ShardHeader header;
    header.channels = 1;
    header.n_classes = 2;
    header.class_names = {"background", "cell"};
    header.channel_mean = {0.0};
    header.channel_std = {1.0};
    dpunet::data::write_header_attributes(file.get(), header, path);
  }
  CHECK_THROWS_WITH(ShardReader(path), HasSubstr(path) && HasSubstr("one sample of 1 x 70000 x 70000 uint8 is 4.56") &&
                                           HasSubstr("below 4 GiB"));
}

TEST_CASE("class names stored by h5py (UTF-8, fixed length) are read", "[data]") {
  TempDir dir;
  const std::string path = dir / "names.h5";
  dpunet::test::RawShard spec;
  spec.names = GENERATE(dpunet::test::RawShard::Names::kUtf8Variable, dpunet::test::RawShard::Names::kFixedLength);
  dpunet::test::write_raw_shard(path, spec);
  CHECK(ShardReader(path).header().class_names == std::vector<std::string>{"c0", "c1", "c2"});
}

TEST_CASE("a shard another process holds locked is still read", "[data]") {
  TempDir dir;
  const std::string path = dir / "locked.h5";
  dpunet::test::write_known_shard(path, 2);
  const int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);  // as a writer, or HDF5 in another process, holds it
  CHECK(ShardReader(path).header().samples == 2);
  ::close(fd);
}

TEST_CASE("bad samples name the file and the sample index", "[data]") {
  TempDir dir;
  const std::string path = dir / "bad.h5";
  std::vector<unsigned char> image(64 * 64);
  std::vector<uint8_t> mask(64 * 64);
  SECTION("labels beyond n_classes") {
    dpunet::test::RawShard spec;
    spec.mask_value = 5;
    dpunet::test::write_raw_shard(path, spec);
    CHECK_THROWS_WITH(ShardReader(path).read(1, image.data(), mask.data()),
                      HasSubstr(path) && HasSubstr("sample 1: pixel (0, 0): mask label 5 >= n_classes 3"));
  }
  SECTION("labels beyond n_classes that are not the ignore label") {
    dpunet::test::RawShard spec;
    spec.mask_value = 5;
    spec.ignore_label = 255;
    dpunet::test::write_raw_shard(path, spec);
    CHECK_THROWS_WITH(ShardReader(path).read(1, image.data(), mask.data()),
                      HasSubstr(path) && HasSubstr("mask label 5 >= n_classes 3 and not the ignore label 255"));
  }
  SECTION("corrupt compressed chunk") {
    dpunet::test::write_known_shard(path, 3, 0, 1, 64, PixelType::kUInt8, 3, /*gzip_level=*/6);
    corrupt_chunk(path, 1);
    const ShardReader reader(path);
    CHECK_NOTHROW(reader.read(0, image.data(), mask.data()));
    CHECK_THROWS_WITH(reader.read(1, image.data(), mask.data()),
                      HasSubstr(path) && HasSubstr("sample 1") && HasSubstr("corrupt"));
  }
}

TEST_CASE("an empty dataset is an error naming it", "[data]") {
  TempDir dir;
  CHECK_THROWS_WITH(Dataset(dir.path()), HasSubstr(dir.path()) && HasSubstr("empty"));
  CHECK_THROWS_WITH(Dataset(dir / "*.h5"), HasSubstr("empty"));
  CHECK_THROWS_WITH(Dataset(dir / "nothere"), HasSubstr("no such file"));
}
