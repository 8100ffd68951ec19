// Folder import: pair discovery, mask mapping, consistency checks, shard writing.
#include "data/import.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <new>
#include <numeric>
#include <optional>
#include <set>

#include "common/error.h"
#include "common/file_listing.h"
#include "common/text.h"
#include "common/tile_grid.h"
#include "data/image_io.h"
#include "data/image_statistics.h"
#include "data/output_folder.h"
#include "data/random.h"
#include "data/shard_writer.h"

namespace dpunet::data {
namespace fs = std::filesystem;
namespace {

struct Pair {
  std::string image, mask;
  int64_t samples = 1;            // with --tile, the tiles its image is cut into
  int64_t height = 0, width = 0;  // with --tile, as its header says (what was counted)
};

}  // namespace

std::string mask_suffix_hint(const std::string& masks_dir, const std::string& stem) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(masks_dir, ec)) {
    const std::string name = image_stem(entry.path().string());
    // "img1_mask" for "img1", not "img10" (a digit continues the name, it starts no suffix).
    if (name.size() > stem.size() && name.compare(0, stem.size(), stem) == 0 &&
        !std::isdigit(static_cast<unsigned char>(name[stem.size()])) && is_image_file(entry.path().string())) {
      return " (there is " + entry.path().filename().string() + ": --mask-suffix " + name.substr(stem.size()) + "?)";
    }
  }
  return "";
}

namespace {

std::vector<Pair> find_pairs(const ImportOptions& o) {
  for (const std::string& dir : {o.images_dir, o.masks_dir}) {
    DPUNET_CHECK(fs::is_directory(dir), dir, ": no such directory");
  }
  // Images and masks side by side (a.png, a_mask.png): the suffix tells them apart.
  std::error_code ec;
  const bool one_folder = fs::equivalent(o.images_dir, o.masks_dir, ec);
  DPUNET_CHECK(!one_folder || !o.mask_suffix.empty(), "import: --images and --masks are the same folder (",
               o.images_dir, "), so each image would be its own mask: give --mask-suffix (a.png's mask a_mask.png)");
  std::vector<std::string> images;
  for (const auto& entry : fs::directory_iterator(o.images_dir)) {
    if (!is_image_file(entry.path().string()) || is_hidden(entry.path())) continue;
    fail_on_broken_link(entry);
    if (!entry.is_regular_file()) continue;
    if (one_folder && ends_with(image_stem(entry.path().string()), o.mask_suffix)) continue;
    images.push_back(entry.path().string());
  }
  std::sort(images.begin(), images.end());
  // A mask is found by its image's name: a.png and a.tif would share one mask, or both
  // go in (twice over, maybe in both sets, when they are one picture).
  std::map<std::string, std::string> image_of_stem;
  for (const std::string& image : images) {
    const auto [named, fresh] = image_of_stem.emplace(image_stem(image), image);
    DPUNET_CHECK(fresh, o.images_dir, ": ", named->second, " and ", image, " share the name '", named->first,
                 "', by which an image's mask is found: keep one of them (or rename one, and its mask)");
  }
  std::vector<Pair> pairs;
  for (const std::string& image : images) {
    const std::string stem = image_stem(image);
    const std::string mask = find_mask(o.masks_dir, image, o.mask_suffix);
    DPUNET_CHECK(!mask.empty(), image, ": no mask named ", stem + o.mask_suffix, ".png/.tif/.tiff in ", o.masks_dir,
                 mask_suffix_hint(o.masks_dir, stem));
    pairs.push_back({image, mask});
  }
  DPUNET_CHECK(!pairs.empty(), o.images_dir, ": no .png/.tif/.tiff images found");
  return pairs;
}

// Grey values and colours are different keys, and so are 8- and 16-bit values, palette
// indices and white-is-zero values: masks of one import must be of one kind, or one label
// would become several classes (or two labels one).
struct MaskKind {
  std::string file;
  int64_t channels = 0;
  int bits = 0;
  StoredValues stored = StoredValues::kValues;
};

std::string mask_kind_text(int64_t channels, int bits, StoredValues stored) {
  const char* what = stored == StoredValues::kPaletteIndices ? " (palette indices)"
                     : stored == StoredValues::kWhiteIsZero  ? " (white-is-zero)"
                                                             : "";
  return std::string(channels > 1 ? "colour " : "grey ") + std::to_string(bits) + "-bit" + what;
}

void check_mask_kind(const MaskKind& first, const Image& mask, const std::string& path) {
  DPUNET_CHECK((mask.channels > 1) == (first.channels > 1) && mask.bits == first.bits && mask.stored == first.stored,
               "masks differ: ", first.file, " is a ", mask_kind_text(first.channels, first.bits, first.stored),
               " mask but ", path, " a ", mask_kind_text(mask.channels, mask.bits, mask.stored),
               " one; their values would name different classes: save all masks alike");
}

MaskKind mask_kind(const std::vector<Pair>& pairs) {
  const Image first = read_image_header(pairs.front().mask, ImageRole::kLabels);
  return {pairs.front().mask, first.channels, first.bits, first.stored};
}

// Every value (or colour) the masks hold, read a band of rows at a time.
std::map<uint32_t, int> discover_classes(const std::vector<Pair>& pairs, const MaskKind& kind) {
  std::set<uint32_t> keys;
  for (const Pair& pair : pairs) {
    ImageRows rows(pair.mask, ImageRole::kLabels);
    check_mask_kind(kind, rows.header(), pair.mask);
    rows.for_each_band(256, [&](const Image& band, int64_t) {
      for (int64_t p = 0; p < band.height * band.width; ++p) keys.insert(mask_key(band, p));
      DPUNET_CHECK(keys.size() <= 256, pair.mask, ": masks hold more than 256 distinct values; give --mask-map");
    });
  }
  std::map<uint32_t, int> classes;
  for (uint32_t key : keys) classes.emplace(key, static_cast<int>(classes.size()));
  return classes;
}

// Class ids below the class count that no mask value maps to ("0=0,255=ignore" gives 2
// classes, as a segmentation needs; "0=0,255=2" skips class 1; masks found to hold one
// value): the model would have an output that no pixel teaches, which is rarely meant.
std::string unmapped_classes_note(const MaskMapping& mapping, bool given) {
  std::set<int> mapped;
  for (const auto& [key, id] : mapping.class_of_value) mapped.insert(id);
  std::vector<std::string> missing;
  for (int id = 0; id < mapping.classes(); ++id) {
    if (mapped.count(id) == 0) missing.push_back(std::to_string(id));
  }
  if (missing.empty()) return "";
  std::string listed = missing.size() == 1 ? "class " : "classes ";
  for (size_t k = 0; k < missing.size(); ++k) listed += (k == 0 ? "" : ", ") + missing[k];
  const std::string of = " of the " + std::to_string(mapping.classes());
  if (!given)
    return "the masks hold one value only (--mask-map " + mapping.text() + "): " + listed + of + " has no pixel";
  return "no mask value is mapped to " + listed + of + " (--mask-map " + mapping.text() +
         "): the model gets an output no pixel teaches";
}

// Found classes that do not look like labels: grey values that are not evenly spaced
// from 0 (0..K-1, or labels scaled for viewing such as 0, 85, 170, 255; a last 255 may be
// an unlabelled value beside them), beyond a binary mask's two, or many colours, are what
// resizing masks with interpolation leaves at the edges, and each became a class. Empty
// when they look like labels.
std::string discovered_classes_note(const std::map<uint32_t, int>& classes, bool colours) {
  std::vector<uint32_t> values;
  for (const auto& entry : classes) values.push_back(entry.first);
  auto evenly_spaced = [](const std::vector<uint32_t>& v) {
    if (v.size() < 2 || v[0] != 0) return v.size() < 2;
    for (size_t i = 1; i < v.size(); ++i) {
      if (v[i] != v[1] * i) return false;
    }
    return true;
  };
  bool labels = evenly_spaced(values);
  if (!labels && values.size() > 2 && (values.back() == 255 || values.back() == 65535)) {
    labels = evenly_spaced(std::vector<uint32_t>(values.begin(), values.end() - 1));
  }
  const bool doubtful = colours ? classes.size() > 12 : classes.size() > 2 && !labels;
  if (!doubtful) return "";
  return "the masks hold " + std::to_string(classes.size()) + (colours ? " colours" : " values") +
         ", each taken for a class; if some are edges that a resize blended (interpolation, not nearest-neighbour), "
         "resize the masks with nearest-neighbour, or give --mask-map with the labels' values";
}

// The image every other must match in size, channels and bit depth, whichever set it is in.
struct ImageKind {
  std::string file;
  Image image;
};

// Shards <prefix>-00000.h5, <prefix>-00001.h5, ... in `directory`, opened as samples
// come: `total` samples in equal shares of at most `per_shard`.
class ShardSequence {
 public:
  ShardSequence(std::string directory, std::string prefix, ShardHeader header, int64_t per_shard, int gzip_level,
                int64_t total)
      : directory_(std::move(directory)),
        prefix_(std::move(prefix)),
        header_(std::move(header)),
        per_shard_(per_shard),
        gzip_level_(gzip_level),
        total_(total) {}

  void add(const void* image, const uint8_t* mask, const double* source_statistics) {
    if (!writer_) open();
    writer_->write(writer_->written(), image, mask, source_statistics);
    if (writer_->written() == header_.samples) close();
  }

  // The shards written, every one finished.
  std::vector<std::string> finish() {
    if (writer_) close();
    return written_;
  }

 private:
  void open() {
    const auto index = static_cast<int64_t>(written_.size());
    char name[64];
    std::snprintf(name, sizeof(name), "%s-%05lld.h5", prefix_.c_str(), static_cast<long long>(index));
    path_ = (fs::path(directory_) / name).string();
    const int64_t shards = (total_ + per_shard_ - 1) / per_shard_;
    header_.samples = total_ * (index + 1) / shards - total_ * index / shards;
    writer_ = std::make_unique<ShardWriter>(path_, header_, ShardWriteOptions{gzip_level_});
  }

  void close() {
    writer_->finish();
    writer_.reset();
    written_.push_back(path_);
  }

  std::string directory_, prefix_, path_;
  ShardHeader header_;
  int64_t per_shard_;
  int gzip_level_;
  int64_t total_;
  std::unique_ptr<ShardWriter> writer_;
  std::vector<std::string> written_;
};

// A pair's headers checked against the first image (channels and bit depth; the size too
// unless images are cut into tiles, which each must hold) and the masks' kind, before
// either file is decoded.
void check_pair(const ImportOptions& o, const Pair& pair, const ImageKind& reference, const MaskKind& masks,
                const Image& image, const Image& mask) {
  const Image& first = reference.image;
  const bool size_differs = image.height != first.height || image.width != first.width;
  DPUNET_CHECK((o.tile > 0 || !size_differs) && image.channels == first.channels && image.bits == first.bits,
               "images differ: ", reference.file, " is ", first.width, "x", first.height, "x", first.channels, " ",
               first.bits, "-bit but ", pair.image, " is ", image.width, "x", image.height, "x", image.channels, " ",
               image.bits, "-bit (",
               o.tile == 0 && size_differs ? "crop or resize them to one size, or cut them into samples of one "
                                             "size with --tile"
                                           : "convert them to one channel count and bit depth",
               ")");
  DPUNET_CHECK(o.tile == 0 || (image.height == pair.height && image.width == pair.width), pair.image, " is ",
               image.width, "x", image.height, " but its header said ", pair.width, "x", pair.height,
               " when the import began (was it replaced meanwhile?)");
  check_mask_kind(masks, mask, pair.mask);
  DPUNET_CHECK(mask.height == image.height && mask.width == image.width, pair.mask, ": mask is ", mask.width, "x",
               mask.height, " but its image ", pair.image, " is ", image.width, "x", image.height);
}

// Rows [top, top + height) of one file as an Image, read on as `top` moves down the file:
// rows that consecutive windows share (the last row of tiles overlaps the one before it)
// are kept, not read again. Memory: one window, however tall the file.
class RowWindow {
 public:
  RowWindow(ImageRows& rows, int64_t height) : rows_(rows), window_(rows.header()) {
    window_.height = height;
    try {
      window_.values.resize(static_cast<size_t>(height * window_.width * window_.channels));
    } catch (const std::bad_alloc&) {
      DPUNET_FAIL(rows.path(), ": ", height, " rows of ", window_.width, "x", window_.channels,
                  " values do not fit in memory (is its header damaged?)");
    }
  }

  const Image& at(int64_t top) {
    DPUNET_CHECK(top >= top_ && top + window_.height <= rows_.header().height, rows_.path(), ": rows ", top, " to ",
                 top + window_.height, " asked after rows from ", top_, " of ", rows_.header().height);
    const auto row_values = static_cast<size_t>(window_.width * window_.channels);
    const int64_t end = top_ + held_;
    const int64_t kept = std::max<int64_t>(0, end - top);
    if (kept > 0) {
      const auto from =
          window_.values.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(top - top_) * row_values);
      std::copy(from, from + static_cast<std::ptrdiff_t>(static_cast<size_t>(kept) * row_values),
                window_.values.begin());
    }
    while (rows_.rows_read() < top) rows_.read(1, window_.values.data());  // rows no window holds
    rows_.read(window_.height - kept, window_.values.data() + static_cast<size_t>(kept) * row_values);
    top_ = top;
    held_ = window_.height;
    return window_;
  }

 private:
  ImageRows& rows_;
  Image window_;
  int64_t top_ = 0, held_ = 0;
};

// Planar buffers of one sample: a window's region of a pair from its first row and
// `left`, height x width.
struct SampleBuffers {
  int64_t height, width;
  std::vector<uint16_t> planar16;
  std::vector<uint8_t> planar8, classes;
  SampleBuffers(int64_t channels, int64_t h, int64_t w)
      : height(h),
        width(w),
        planar16(static_cast<size_t>(channels * h * w)),
        planar8(planar16.size()),
        classes(static_cast<size_t>(h * w)) {}

  // The region's values, planar [C, h, w], and its mask values mapped to classes. `top`
  // is the windows' first row in their files, for messages.
  void cut(const Image& image, const Image& mask, const std::string& mask_path, int64_t top, int64_t left,
           const std::map<uint32_t, int>& class_of) {
    const int64_t pixels = height * width, channels = image.channels;
    for (int64_t r = 0; r < height; ++r) {
      for (int64_t c = 0; c < width; ++c) {
        const int64_t q = r * width + c, p = r * image.width + left + c;
        for (int64_t k = 0; k < channels; ++k) {
          planar16[k * pixels + q] = image.values[p * channels + k];
          planar8[k * pixels + q] = static_cast<uint8_t>(image.values[p * channels + k]);
        }
        const auto found = class_of.find(mask_key(mask, p));
        DPUNET_CHECK(found != class_of.end(), mask_path, ": mask value ",
                     mask_key_text(mask_key(mask, p), mask.channels > 1), " at pixel (", top + r, ", ", left + c,
                     ") has no class in the mask mapping");
        classes[q] = static_cast<uint8_t>(found->second == kIgnoreClass ? kDefaultIgnoreLabel : found->second);
      }
    }
  }
  const void* pixels(int bits) const { return bits == 16 ? static_cast<const void*>(planar16.data()) : planar8.data(); }
};

// A whole image, or a tile, as one sample: a shard stores each sample as one HDF5 chunk,
// which must stay below 4 GiB, and the import holds one sample in memory (its values at
// 16 and 8 bits and its classes). Found from the first image's header, before any image
// is decoded.
void check_sample_fits(const ImageKind& reference, int64_t tile) {
  const Image& image = reference.image;
  const int64_t height = tile > 0 ? tile : image.height, width = tile > 0 ? tile : image.width;
  const double bytes = static_cast<double>(image.channels) * static_cast<double>(height) * static_cast<double>(width) *
                       (image.bits == 16 ? 2 : 1);
  if (bytes < static_cast<double>(int64_t{4} << 30)) return;
  const double gib = bytes / static_cast<double>(int64_t{1} << 30);
  DPUNET_CHECK(tile > 0, reference.file, " is ", image.width, "x", image.height, "x", image.channels, " (",
               std::round(gib * 100) / 100,
               " GiB): a shard holds each image whole, as one HDF5 chunk below 4 GiB; cut the images into tiles "
               "with --tile (e.g. --tile 1024)");
  DPUNET_FAIL("--tile ", tile, ": a tile of ", reference.file, "'s ", image.channels, " channel(s) is ",
              std::round(gib * 100) / 100,
              " GiB, and a shard holds each tile as one HDF5 chunk below 4 GiB: give a smaller --tile");
}

// Each pair's tiles, from its image's header: an image smaller than the tile is refused
// before any image is decoded (or a tile's buffers made), and every set's shards can
// share its samples evenly.
void count_tiles(int64_t tile, std::vector<Pair>& pairs) {
  for (Pair& pair : pairs) {
    const Image header = read_image_header(pair.image);
    DPUNET_CHECK(header.height >= tile && header.width >= tile, pair.image, " is ", header.width, "x", header.height,
                 ", smaller than --tile ", tile,
                 ": give a tile no larger than the smallest image, or leave that image out");
    pair.samples = static_cast<int64_t>(tile_origins(header.height, tile, 0.0).size() *
                                        tile_origins(header.width, tile, 0.0).size());
    pair.height = header.height;
    pair.width = header.width;
  }
}

// Writes a set's pairs (whole, or cut into tiles) into <prefix>-*.h5; returns the samples.
int64_t write_set(const ImportOptions& o, const std::string& directory, const std::vector<Pair>& pairs,
                  const std::string& prefix, const MaskMapping& mapping, const ImageKind& reference,
                  const MaskKind& masks, std::vector<std::string>& written) {
  if (pairs.empty()) return 0;
  const Image& first = reference.image;
  ShardHeader header;
  header.channels = first.channels;
  header.height = o.tile > 0 ? o.tile : first.height;
  header.width = o.tile > 0 ? o.tile : first.width;
  header.pixel_type = first.bits == 16 ? PixelType::kUInt16 : PixelType::kUInt8;
  header.n_classes = mapping.classes();
  header.class_names = o.class_names;
  if (mapping.maps_ignore()) header.ignore_label = kDefaultIgnoreLabel;
  int64_t total = 0;
  for (const Pair& pair : pairs) total += pair.samples;
  ShardSequence shards(directory, prefix, header, o.samples_per_shard, o.gzip_level, total);
  std::optional<SampleBuffers> sample;
  try {
    sample.emplace(first.channels, header.height, header.width);
  } catch (const std::bad_alloc&) {
    DPUNET_FAIL(reference.file, ": a sample of ", header.width, "x", header.height, "x", first.channels,
                " values does not fit in memory",
                o.tile > 0 ? ": give a smaller --tile" : ": import it in tiles with --tile");
  }
  int64_t samples = 0;
  for (const Pair& pair : pairs) {
    ImageRows image_rows(pair.image), mask_rows(pair.mask, ImageRole::kLabels);
    const Image& image = image_rows.header();
    check_pair(o, pair, reference, masks, image, mask_rows.header());
    // A row of tiles at a time (with --tile), else the whole pair.
    RowWindow image_window(image_rows, header.height), mask_window(mask_rows, header.height);
    ColourKeyCheck colour_keys(pair.mask);
    // A tile's per-image standardisation is its image's (kSourceStatisticsDataset): one
    // more pass over the file first.
    std::vector<double> source;
    if (o.tile > 0) {
      for (const ChannelStatistics& channel : image_channel_statistics(pair.image)) {
        source.push_back(channel.mean);
        source.push_back(channel.std);
      }
    }
    const std::vector<int64_t> rows = o.tile > 0 ? tile_origins(image.height, o.tile, 0.0) : std::vector<int64_t>{0};
    const std::vector<int64_t> columns = o.tile > 0 ? tile_origins(image.width, o.tile, 0.0) : std::vector<int64_t>{0};
    for (int64_t top : rows) {
      const Image& image_band = image_window.at(top);
      const Image& mask_band = mask_window.at(top);
      colour_keys.check(mask_band, top);
      for (int64_t left : columns) {
        sample->cut(image_band, mask_band, pair.mask, top, left, mapping.class_of_value);
        shards.add(sample->pixels(image.bits), sample->classes.data(), source.empty() ? nullptr : source.data());
        ++samples;
      }
    }
  }
  for (std::string& path : shards.finish()) written.push_back(std::move(path));
  return samples;
}

// The set each of `count` pairs goes to, dealt out by a seeded shuffle: 1 (validation)
// for the first val_fraction of them, else 0 (training); or round the folds. Every set
// keeps file-name order.
std::vector<size_t> deal_pairs(size_t count, const ImportOptions& o) {
  std::vector<size_t> order(count);
  std::iota(order.begin(), order.end(), size_t{0});
  Rng rng(derive_seed({o.seed, 0x1A9017ull}));
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  std::vector<size_t> set_of(count, 0);
  if (o.folds > 0) {
    for (size_t i = 0; i < count; ++i) set_of[order[i]] = i % static_cast<size_t>(o.folds);
    return set_of;
  }
  const auto val_count = static_cast<size_t>(o.val_fraction * static_cast<double>(count) + 0.5);
  DPUNET_CHECK(val_count < count, "import: the validation share leaves no training images");
  for (size_t i = 0; i < val_count; ++i) set_of[order[i]] = 1;
  return set_of;
}

}  // namespace

std::string find_mask(const std::string& masks_dir, const std::string& image_path, const std::string& suffix) {
  const std::string stem = image_stem(image_path) + suffix;
  std::string found;
  for (const char* ext :
       {".png", ".tif", ".tiff", ".PNG", ".TIF", ".TIFF", ".Png", ".Tif", ".Tiff", ".ome.tif", ".ome.tiff"}) {
    const fs::path candidate = fs::path(masks_dir) / (stem + ext);
    std::error_code ec;
    if (!fs::is_regular_file(candidate, ec)) continue;
    // One file by two spellings: a case-insensitive filesystem (SMB, exFAT), or a link.
    if (!found.empty() && fs::equivalent(found, candidate, ec)) continue;
    // Two masks by one name (a.png, a.tif): either could be the image's.
    DPUNET_CHECK(found.empty(), image_path, ": both ", found, " and ", candidate.string(),
                 " are named as its mask: keep one of them");
    found = candidate.string();
  }
  if (!found.empty()) return found;
  // Other mixes of case (a.pNg): a look through the folder, only when the common forms miss.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(masks_dir, ec)) {
    if (is_image_file(entry.path().string()) && image_stem(entry.path().string()) == stem &&
        entry.is_regular_file(ec)) {
      return entry.path().string();
    }
  }
  return "";
}

std::string fold_prefix(int fold) {
  return "fold" + std::to_string(fold);
}

ImportResult import_image_folders(const ImportOptions& o) {
  DPUNET_CHECK(o.val_fraction >= 0 && o.val_fraction < 1, "import: val fraction must be in [0, 1), got ",
               o.val_fraction);
  DPUNET_CHECK(o.samples_per_shard >= 1, "import: samples per shard must be at least 1");
  DPUNET_CHECK(o.tile >= 0, "import: --tile must be at least 1, got ", o.tile);
  DPUNET_CHECK(o.folds == 0 || (o.folds >= 2 && o.folds <= kMaxFolds), "import: folds must be in [2, ", kMaxFolds,
               "], got ", o.folds);
  DPUNET_CHECK(o.folds == 0 || o.val_fraction == 0,
               "import: folds and a validation fraction exclude each other (each fold validates in turn)");
  std::vector<Pair> pairs = find_pairs(o);
  DPUNET_CHECK(static_cast<int64_t>(pairs.size()) >= o.folds, "import: ", pairs.size(), " image(s) cannot make ",
               o.folds, " folds");
  if (o.tile > 0) count_tiles(o.tile, pairs);
  // Only its size, channels and bit depth are compared.
  const ImageKind reference{pairs.front().image, read_image_header(pairs.front().image)};
  check_sample_fits(reference, o.tile);
  ImportResult result;
  const MaskKind masks = mask_kind(pairs);
  if (!o.mask_mapping.empty()) o.mask_mapping.check_kind(masks.channels > 1, masks.file);
  // Every pair's layout from its headers, before any mask is read whole (discover_classes)
  // or a shard written: a mismatch in the last pair costs no pass over the others.
  for (const Pair& pair : pairs) {
    check_pair(o, pair, reference, masks, read_image_header(pair.image),
               read_image_header(pair.mask, ImageRole::kLabels));
  }
  result.mask_mapping =
      o.mask_mapping.empty() ? MaskMapping{discover_classes(pairs, masks), masks.channels > 1} : o.mask_mapping;
  if (o.mask_mapping.empty()) {
    result.note = discovered_classes_note(result.mask_mapping.class_of_value, result.mask_mapping.colours);
  }
  const int n_classes = result.mask_mapping.classes();
  if (result.note.empty()) result.note = unmapped_classes_note(result.mask_mapping, !o.mask_mapping.empty());
  DPUNET_CHECK(o.class_names.empty() || static_cast<int>(o.class_names.size()) == n_classes,
               "import: ", o.class_names.size(), " class names for ", n_classes, " classes");

  std::vector<std::string> prefixes = {o.prefix, o.val_prefix};  // of the sets, in order
  if (o.folds > 0) {
    prefixes.clear();
    for (int k = 0; k < o.folds; ++k) prefixes.push_back(fold_prefix(k));
  }
  const std::vector<size_t> set_of = deal_pairs(pairs.size(), o);
  std::vector<std::vector<Pair>> sets(prefixes.size());
  for (size_t i = 0; i < pairs.size(); ++i) sets[set_of[i]].push_back(pairs[i]);

  // Fold shards of an earlier import with more folds would join the new folds' globs:
  // every fold prefix is cleared (or refused) alike.
  std::vector<std::string> cleared = prefixes;
  for (int k = o.folds; o.folds > 0 && k < kMaxFolds; ++k) cleared.push_back(fold_prefix(k));
  StagedOutput output(o.out_dir, cleared, o.overwrite);
  std::vector<std::vector<std::string>> staged(sets.size());
  std::vector<int64_t> samples(sets.size());
  std::vector<std::string> all_staged;
  for (size_t k = 0; k < sets.size(); ++k) {
    samples[k] = write_set(o, output.staging(), sets[k], prefixes[k], result.mask_mapping, reference, masks, staged[k]);
    all_staged.insert(all_staged.end(), staged[k].begin(), staged[k].end());
  }
  const std::vector<std::string> moved = output.commit(all_staged);
  std::vector<std::vector<std::string>> written;
  auto next = moved.begin();
  for (const auto& set : staged) {
    written.emplace_back(next, next + static_cast<std::ptrdiff_t>(set.size()));
    next += static_cast<std::ptrdiff_t>(set.size());
  }
  result.images = static_cast<int64_t>(pairs.size());
  if (o.folds > 0) {
    result.fold_shards = written;
    result.fold_samples = samples;
  } else {
    result.train_shards = written[0];
    result.val_shards = written[1];
    result.train_samples = samples[0];
    result.val_samples = samples[1];
  }
  return result;
}

}  // namespace dpunet::data
