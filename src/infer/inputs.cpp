// InputSet: shards or image files.
#include "infer/inputs.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "common/error.h"
#include "common/file_listing.h"
#include "common/text.h"
#include "data/image_io.h"
#include "data/import.h"
#include "infer/display_stretch.h"
#include "infer/image_file_rows.h"

namespace dpunet::infer {
namespace fs = std::filesystem;
namespace {

// Rows a mask file is read by, converted as they come.
constexpr int64_t kBandRows = 64;

// A shard sample's display copy of its first channel (what the overlay draws) stretched
// to 8 bits, [1, H, W]; image files keep theirs as they are read (ImageFileRows::display).
torch::Tensor display_copy(const torch::Tensor& values) {
  const torch::Tensor first = values[0].to(torch::kFloat).contiguous();  // a view of float values
  torch::Tensor display = torch::empty({1, first.size(0), first.size(1)}, torch::kByte);
  stretch_to_bytes(first.data_ptr<float>(), first.numel(), display.data_ptr<uint8_t>());
  return display;
}

// The files a glob matches when every one is an image; none when it matches no image
// (a glob of shards, read by data::Dataset). A mix is an error: which was meant is not
// guessed. Folders the glob matches are not files and do not count.
std::vector<std::string> image_glob(const std::string& pattern) {
  std::vector<std::string> images, others;
  std::error_code ec;
  for (const std::string& path : data::glob_paths(pattern)) {
    if (!fs::is_regular_file(path, ec)) continue;
    (data::is_image_file(path) ? images : others).push_back(path);
  }
  DPUNET_CHECK(images.empty() || others.empty(), pattern, " matches both images (", images.front(),
               ") and other files (", others.empty() ? "" : others.front(), "): name one kind");
  return images;
}

}  // namespace

InputSet::InputSet(const std::string& input, InputOptions options) : input_(input), options_(std::move(options)) {
  std::error_code ec;
  const bool image_file = fs::is_regular_file(input, ec) && data::is_image_file(input);
  bool shards_in_folder = false;
  if (fs::is_directory(input, ec)) {
    for (const auto& entry : fs::directory_iterator(input)) {
      if (is_hidden(entry.path())) continue;
      const std::string name = entry.path().string();
      if (entry.path().extension() == ".h5" || data::is_image_file(name)) fail_on_broken_link(entry);
      if (!entry.is_regular_file()) continue;
      if (entry.path().extension() == ".h5") shards_in_folder = true;  // what data::Dataset reads
      if (data::is_image_file(entry.path().string())) images_.push_back(entry.path().string());
    }
    DPUNET_CHECK(images_.empty() || !shards_in_folder, input,
                 " holds both images and .h5 files: name the shards with a glob ('", input,
                 "/*.h5') or keep the images in a folder of their own");
    DPUNET_CHECK(!images_.empty() || shards_in_folder, input, " holds no .png/.tif/.tiff images and no .h5 shards");
  } else if (!image_file && !fs::exists(input, ec) && input.find_first_of("*?[") != std::string::npos) {
    DPUNET_CHECK(!data::glob_paths(input).empty(), input, ": matches no file");
    images_ = image_glob(input);
  }
  if (image_file) images_ = {input};
  if (!images_.empty()) {
    drop_masks_among_images();
    std::sort(images_.begin(), images_.end());
    // Output files are named by stem: a.png and a.tif would overwrite each other's.
    std::map<std::string, std::string> by_stem;
    for (const std::string& path : images_) {
      // Outputs are named by it, in the output folder and inside predictions.h5: "." (a
      // file ..png) names neither, and would fail after the image was predicted.
      DPUNET_CHECK(data::image_stem(path) != ".", path,
                   ": a file named '.' less its extension, which no output "
                   "can be named after: rename it");
      // Compared in lower case: on an output folder that ignores case (SMB, exFAT, macOS),
      // Scan.png's outputs would replace scan.png's. ASCII letters only: names that differ
      // in the case of other letters (É, é) still pass.
      std::string stem = data::image_stem(path);
      std::transform(stem.begin(), stem.end(), stem.begin(), [](unsigned char c) { return std::tolower(c); });
      const auto [it, fresh] = by_stem.emplace(stem, path);
      DPUNET_CHECK(fresh, input, ": ", it->second, " and ", path,
                   " have the same name (letter case aside); their outputs would collide");
    }
    DPUNET_CHECK(ignore_label() < 0 || options_.n_classes == 0 || ignore_label() >= options_.n_classes,
                 "--mask-map VALUE=ignore marks unlabelled pixels with ", ignore_label(), ", a class of this ",
                 options_.n_classes, "-class model; unlabelled pixels need a model of at most ", ignore_label(),
                 " classes");
    const data::Image first = data::read_image_header(images_.front());  // a slide is not decoded for it
    image_channels_ = first.channels;
    image_bits_ = first.bits;
    if (options_.require_masks) check_masks_folder();
    // Every image's header once, before any is predicted: its channels, and with --eval its
    // mask (a file whose header cannot be read is said when it is opened, after the images
    // before it).
    for (const std::string& path : images_) {
      std::optional<data::Image> header;
      try {
        header = data::read_image_header(path);
      } catch (const Error&) {
      }
      if (header) check_like_first(path, *header);
      if (options_.require_masks) check_mask_of(path, header ? &*header : nullptr);
    }
    return;
  }
  // (Without --eval the masks' folder only tells masks among image files apart.)
  DPUNET_CHECK(options_.masks_dir.empty() || !options_.read_masks, "--masks is for image inputs; the shards of ", input,
               " carry their own masks");
  // Shards' masks hold class ids already: a mapping would be ignored without a word.
  DPUNET_CHECK(options_.mask_mapping.empty(), "--mask-map is for image inputs' masks; the shards of ", input,
               " hold class ids (and their own ignore label)");
  // A file of another kind (a JPEG, a NIfTI volume) is said as such, not as a damaged shard.
  // (HDF5's signature opens the file, or a user block of 512 * 2^k bytes before it. An
  // index of shards is a .txt; a file that cannot be read is left to the reader to name.)
  std::ifstream file;
  if (fs::is_regular_file(input, ec) && fs::path(input).extension() != ".txt" &&
      (file.open(input, std::ios::binary), file.is_open())) {
    const auto size = static_cast<std::streamoff>(fs::file_size(input, ec));
    bool hdf5 = false;
    for (std::streamoff at = 0; !hdf5 && at + 8 <= size; at = at == 0 ? 512 : at * 2) {
      char signature[8] = {};
      file.clear();
      file.seekg(at);
      hdf5 = file.read(signature, sizeof(signature)) && std::memcmp(signature, "\x89HDF\r\n\x1a\n", 8) == 0;
    }
    DPUNET_CHECK(hdf5, input, ": neither a .png/.tif/.tiff image nor an HDF5 shard (nor a .txt list of shards)");
  }
  dataset_ = std::make_shared<const data::Dataset>(input);
  const data::ShardHeader& h = dataset_->header();
  DPUNET_CHECK(options_.n_classes == 0 || h.n_classes <= options_.n_classes, input, ": the shards have ", h.n_classes,
               " classes, the model ", options_.n_classes);
  DPUNET_CHECK(h.ignore_label < 0 || options_.n_classes == 0 || h.ignore_label >= options_.n_classes, input,
               ": the shards' ignore label ", h.ignore_label, " is a class of the ", options_.n_classes,
               "-class model, so their unlabelled pixels could not be told from it");
  if (!data::statistics_apply(options_.normalizer, h.pixel_type)) {
    warn_other_units(data::pixel_type_name(h.pixel_type), "the shards' own statistics");
    options_.normalizer.channel_mean.clear();
    options_.normalizer.channel_std.clear();
  }
}

// Masks beside their images (a.png, a_mask.png; --masks the images' own folder) are not
// inputs: the suffix tells them apart, and without one each image would be its own mask.
void InputSet::drop_masks_among_images() {
  if (options_.masks_dir.empty() && !options_.masks_among_images) return;
  std::error_code ec;
  std::vector<std::string> images;
  for (const std::string& path : images_) {
    const fs::path folder = fs::path(path).parent_path().empty() ? "." : fs::path(path).parent_path();
    const bool among_masks = options_.masks_among_images || fs::equivalent(folder, options_.masks_dir, ec);
    if (!among_masks) {
      images.push_back(path);
      continue;
    }
    DPUNET_CHECK(!options_.mask_suffix.empty(), "--masks ", options_.masks_dir, " is the images' own folder, so ", path,
                 " would be its own mask: give --mask-suffix (a.png's mask a_mask.png)");
    if (!ends_with(data::image_stem(path), options_.mask_suffix)) images.push_back(path);
  }
  DPUNET_CHECK(!images.empty(), input_, ": every image is named as a mask (<name>", options_.mask_suffix, ")");
  images_ = std::move(images);
}

// Before any image is predicted: a missing mask found at the end would cost them all, and
// a score over the images that happen to have masks would pass for the whole set's.
void InputSet::check_masks_folder() const {
  DPUNET_CHECK(!options_.masks_dir.empty(), "--eval on image files scores them against their masks: give --masks DIR");
  std::error_code ec;
  DPUNET_CHECK(fs::is_directory(options_.masks_dir, ec), options_.masks_dir, ": no such folder (--masks)");
}

void InputSet::check_like_first(const std::string& path, const data::Image& header) const {
  DPUNET_CHECK(header.channels == image_channels_, path, ": ", header.channels, " channels, but ", images_.front(),
               " has ", image_channels_, "; the images of one run must agree");
  // With the model's statistics, pixels are read in their stored units; an 8-bit and a
  // 16-bit file would be normalised differently (the other modes are scale-free or
  // scale by the bit depth).
  const data::Normalizer& n = options_.normalizer;
  const bool stored_units = n.mode == data::Normalization::kDataset && !n.channel_mean.empty();
  DPUNET_CHECK(!stored_units || header.bits == image_bits_, path, ": ", header.bits, "-bit pixels, but ",
               images_.front(), " has ", image_bits_,
               "-bit; with the model's normalisation statistics the images of one run must agree");
}

void InputSet::check_mask_of(const std::string& path, const data::Image* image) const {
  const std::string stem = data::image_stem(path);
  const std::string mask = data::find_mask(options_.masks_dir, path, options_.mask_suffix);
  DPUNET_CHECK(!mask.empty(), path, ": no mask named ", stem + options_.mask_suffix, ".png/.tif/.tiff in ",
               options_.masks_dir, data::mask_suffix_hint(options_.masks_dir, stem), "; --eval scores every image");
  // Its layout from the headers (its values are checked as it is read).
  if (image != nullptr) check_mask_layout(mask, data::read_image_header(mask, data::ImageRole::kLabels), path, *image);
}

void InputSet::check_mask_layout(const std::string& mask_path, const data::Image& mask, const std::string& image_path,
                                 const data::Image& image) const {
  DPUNET_CHECK(mask.height == image.height && mask.width == image.width, mask_path, ": the mask is ", mask.width, "x",
               mask.height, ", the image ", image_path, " is ", image.width, "x", image.height);
  DPUNET_CHECK(mask.channels == 1 || mask.channels == 3, mask_path, ": a mask must be grey or RGB, it has ",
               mask.channels, " channels");
  if (!options_.mask_mapping.empty()) options_.mask_mapping.check_kind(mask.channels > 1, mask_path);
}

void InputSet::warn_other_units(const std::string& pixel_type, const std::string& instead) const {
  if (warned_) return;
  warned_ = true;
  std::fprintf(stderr,
               "predict: the model's normalisation statistics were measured on %s pixels, %s holds %s; using %s\n",
               options_.normalizer.pixel_type.c_str(), input_.c_str(), pixel_type.c_str(), instead.c_str());
}

ImageSize InputSet::image_size(int64_t index) const {
  if (dataset_) return {dataset_->header().height, dataset_->header().width};
  try {
    const data::Image header = data::read_image_header(images_[static_cast<size_t>(index)]);
    return {header.height, header.width};
  } catch (const Error&) {
    return {};
  }
}

std::optional<std::vector<data::ChannelAffine>> InputSet::fixed_affine(int64_t index) const {
  const data::Normalizer& n = options_.normalizer;
  if (n.mode == data::Normalization::kPerImage) return std::nullopt;
  data::PixelType type = data::PixelType::kUInt8;
  int64_t channels = 0;
  std::vector<double> means = n.channel_mean, deviations = n.channel_std;
  if (dataset_) {
    const data::ShardHeader& h = dataset_->header();
    type = h.pixel_type;
    channels = h.channels;
    if (means.empty()) {  // the shards' own statistics
      means = h.channel_mean;
      deviations = h.channel_std;
    }
  } else {
    const data::Image header = data::read_image_header(images_[static_cast<size_t>(index)]);
    type = header.bits == 16 ? data::PixelType::kUInt16 : data::PixelType::kUInt8;
    channels = header.channels;
    // Image files carry no statistics: without the model's (or in other units), each is
    // standardised by its own. With them, open() refuses a file of another bit depth than
    // the first: that check is open()'s to make.
    if (n.mode == data::Normalization::kDataset &&
        (means.empty() || !data::statistics_apply(n, type) || header.bits != image_bits_)) {
      return std::nullopt;
    }
  }
  std::vector<data::ChannelAffine> affine(static_cast<size_t>(channels));
  if (n.mode == data::Normalization::kNone) {
    const double scale = type == data::PixelType::kUInt8    ? 1 / 255.0
                         : type == data::PixelType::kUInt16 ? 1 / 65535.0
                                                            : 1;
    for (auto& a : affine) a.scale = scale;
    return affine;
  }
  // Statistics for another channel count: open() says so; nothing to share here.
  if (static_cast<int64_t>(means.size()) != channels || static_cast<int64_t>(deviations.size()) != channels) {
    return std::nullopt;
  }
  for (int64_t c = 0; c < channels; ++c) affine[c] = data::dataset_affine(means[c], deviations[c]);
  return affine;
}

int64_t InputSet::size() const {
  return dataset_ ? dataset_->size() : static_cast<int64_t>(images_.size());
}

int InputSet::ignore_label() const {
  if (dataset_) return dataset_->header().ignore_label;
  return options_.mask_mapping.maps_ignore() ? data::kDefaultIgnoreLabel : -1;
}

int64_t InputSet::channels() const {
  return dataset_ ? dataset_->header().channels : image_channels_;
}

torch::Tensor InputSet::load_mask(const std::string& path, const data::Image& image) const {
  if (options_.masks_dir.empty() || !options_.read_masks) return {};
  const std::string found = data::find_mask(options_.masks_dir, path, options_.mask_suffix);
  if (found.empty()) return {};
  data::ImageRows rows(found, data::ImageRole::kLabels);
  const data::Image& header = rows.header();
  check_mask_layout(found, header, path, image);
  torch::Tensor classes = torch::empty({header.height, header.width}, torch::kByte);
  uint8_t* out = classes.data_ptr<uint8_t>();
  const int ignore = ignore_label();
  const bool colour = header.channels > 1;
  data::ColourKeyCheck colour_keys(found);
  const std::map<uint32_t, int>& class_of_value = options_.mask_mapping.class_of_value;
  // A band of rows at a time: a slide's mask is never held whole in its stored values.
  rows.for_each_band(kBandRows, [&](const data::Image& mask, int64_t top) {
    colour_keys.check(mask, top);
    for (int64_t q = 0; q < mask.height * mask.width; ++q) {
      const int64_t p = top * mask.width + q;
      const uint32_t key = data::mask_key(mask, q);
      int64_t id = key;
      if (!class_of_value.empty()) {
        const auto it = class_of_value.find(key);
        DPUNET_CHECK(it != class_of_value.end(), found, ": mask value ", data::mask_key_text(key, colour),
                     " at pixel (", p / mask.width, ", ", p % mask.width, ") is not in --mask-map");
        id = it->second == data::kIgnoreClass ? data::kDefaultIgnoreLabel : it->second;
      }
      const bool is_class = options_.n_classes == 0 || id < options_.n_classes || id == ignore;
      const char* example = colour ? "#000000=0,#ff0000=1" : "0=0,255=1";
      DPUNET_CHECK(is_class, found, ": mask value ", data::mask_key_text(key, colour), " at pixel (", p / mask.width,
                   ", ", p % mask.width, ") is not a class of this ", options_.n_classes,
                   "-class model (masks hold class ids; map other values with --mask-map, e.g. ", example,
                   ", and unlabelled pixels' value to ignore)");
      out[p] = static_cast<uint8_t>(id);
    }
  });
  return classes;
}

std::string InputSet::name(int64_t index) const {
  if (dataset_) {
    char text[32];
    std::snprintf(text, sizeof(text), "sample-%06lld", static_cast<long long>(index));
    return text;
  }
  return data::image_stem(images_.at(static_cast<size_t>(index)));
}

std::vector<std::string> InputSet::names() const {
  std::vector<std::string> all;
  for (int64_t i = 0; i < size(); ++i) all.push_back(name(i));
  return all;
}

InputItem InputSet::open(int64_t index, bool pixels_only) const {
  InputItem item;
  item.name = name(index);
  if (dataset_) {
    std::vector<unsigned char> scratch;
    const data::Sample s = data::load_sample(*dataset_, index, options_.normalizer, scratch);
    const torch::Tensor image =
        torch::from_blob(const_cast<float*>(s.image.data()), {s.channels, s.height, s.width}).clone();
    item.image = std::make_unique<TensorRows>(image, options_.display ? display_copy(image) : torch::Tensor());
    item.mask = torch::from_blob(const_cast<uint8_t*>(s.mask.data()), {s.height, s.width}, torch::kByte).clone();
    const auto [shard, local] = dataset_->locate(index);
    item.source = shard->path() + " sample " + std::to_string(local);
    return item;
  }
  const std::string& path = images_[static_cast<size_t>(index)];
  item.source = path;
  const data::Image image = data::read_image_header(path);
  check_like_first(path, image);  // checked before any was predicted, unless the file changed since
  const data::Normalizer& n = options_.normalizer;
  const data::PixelType type = image.bits == 16 ? data::PixelType::kUInt16 : data::PixelType::kUInt8;
  const bool stored_units = n.mode == data::Normalization::kDataset && !n.channel_mean.empty();
  if (stored_units && !data::statistics_apply(n, type)) {
    warn_other_units(data::pixel_type_name(type), "per-image standardisation");
  }
  DPUNET_CHECK(!stored_units || !data::statistics_apply(n, type) ||
                   static_cast<int64_t>(n.channel_mean.size()) == image.channels,
               path, ": the model's normalisation statistics (data.channel_mean/std) are for ", n.channel_mean.size(),
               " channels, the image has ", image.channels);
  // Per-image standardisation (also where the model's statistics do not apply) takes a
  // first pass over the file for its statistics.
  const std::optional<std::vector<data::ChannelAffine>> affine = fixed_affine(index);
  item.image = std::make_unique<ImageFileRows>(path, affine ? conversions(*affine) : standardisation(path),
                                               options_.display && !pixels_only);
  if (!pixels_only) item.mask = load_mask(path, image);
  return item;
}

}  // namespace dpunet::infer
