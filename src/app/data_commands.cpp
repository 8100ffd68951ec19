// `dpunet data synth|import|inspect`: make and examine HDF5 shard datasets
// (docs/data-format.md).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "app/cli_checks.h"
#include "app/commands.h"
#include "common/error.h"
#include "data/import.h"
#include "data/inspect.h"
#include "data/output_folder.h"
#include "data/synth.h"

namespace dpunet::app {
namespace {

// A positive size in pixels written whole ("128"; not "128px" or "1e3").
int64_t parse_pixels(const std::string& text, const std::string& whole) {
  size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  DPUNET_CHECK(used == text.size() && !text.empty() && value >= 8 && value <= 65536,
               "data synth: --size must be S or HxW with sizes from 8 to 65536, got '", whole, "'");
  return value;
}

void add_synth(CLI::App& data) {
  struct Args {
    data::SynthOptions synth;
    std::string out, pixel_type = "uint8", size = "128";
    int64_t val_samples = 0;
    bool overwrite = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = data.add_subcommand("synth", "Write a synthetic cell-segmentation dataset (deterministic per seed)");
  cmd->add_option("--out", args->out, "Output directory")->required()->check(not_empty());
  cmd->add_option("--samples", args->synth.samples, "Training samples")->check(at_least(1))->capture_default_str();
  cmd->add_option("--shards", args->synth.shards, "Training shards (at most --samples)")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--val-samples", args->val_samples, "Validation samples, written as val-00000.h5")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--size", args->size, "Image size: S or HxW")->capture_default_str();
  // model.n_channels' range: more could not be trained on (and overflow an HDF5 attribute).
  cmd->add_option("--channels", args->synth.channels, "Image channels")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--dtype", args->pixel_type, "uint8, uint16 or float32")->capture_default_str();
  cmd->add_option("--classes", args->synth.n_classes, "2 (background, cell) or 3 (+ border)")
      ->check(CLI::Range(2, 3))
      ->capture_default_str();
  cmd->add_option("--gzip", args->synth.gzip_level, "Deflate level 1-9; 0 stores raw")
      ->check(CLI::Range(0, 9))
      ->capture_default_str();
  // Unsigned: -1 would be read as 2^64 - 1, another seed than the one written.
  cmd->add_option("--seed", args->synth.seed, "Random seed")->check(unsigned_number())->capture_default_str();
  cmd->add_flag("--overwrite", args->overwrite, "Remove train-*.h5/val-*.h5 shards already in --out first");
  cmd->callback([args, cmd] {
    data::SynthOptions o = args->synth;
    // The default shard count fits any sample count; one given must.
    if (cmd->count("--shards") == 0) o.shards = static_cast<int>(std::min<int64_t>(o.shards, o.samples));
    DPUNET_CHECK(o.shards <= o.samples, "data synth: --shards ", o.shards, " is more than --samples ", o.samples,
                 ": each shard holds at least one sample");
    const auto x = args->size.find('x');
    o.height = parse_pixels(args->size.substr(0, x), args->size);
    o.width = x == std::string::npos ? o.height : parse_pixels(args->size.substr(x + 1), args->size);
    o.pixel_type = data::parse_pixel_type(args->pixel_type);
    data::StagedOutput output(args->out, {o.prefix, "val"}, args->overwrite);
    std::vector<std::string> staged = data::write_synthetic_dataset(output.staging(), o);
    if (args->val_samples > 0) {
      o.samples = args->val_samples;
      o.shards = 1;
      o.prefix = "val";
      o.first_index = args->synth.samples;  // different images from the training set
      for (std::string& path : data::write_synthetic_dataset(output.staging(), o)) staged.push_back(std::move(path));
    }
    for (const std::string& path : output.commit(staged)) std::cout << path << "\n";
  });
}

// " (TxT tiles of N images)" when images were cut into tiles.
std::string tiles_note(const data::ImportOptions& o, const data::ImportResult& result) {
  if (o.tile == 0) return "";
  return " (" + std::to_string(o.tile) + "x" + std::to_string(o.tile) + " tiles of " + std::to_string(result.images) +
         " images)";
}

// Each fold's shards, and the data keys that train it.
void print_folds(const data::ImportOptions& o, const data::ImportResult& result) {
  const std::string& out_dir = o.out_dir;
  int64_t total = 0;
  for (int64_t n : result.fold_samples) total += n;
  std::cout << "imported " << total << " samples in " << result.fold_samples.size() << " folds" << tiles_note(o, result)
            << "\nclasses (mask value=class): --mask-map " << result.mask_mapping.text() << "\n";
  // Absolute: a dataset path is read from where training runs, which need not be here.
  const std::filesystem::path folder = std::filesystem::absolute(out_dir).lexically_normal();
  for (size_t k = 0; k < result.fold_shards.size(); ++k) {
    const std::string prefix = data::fold_prefix(static_cast<int>(k));
    const std::string train = (folder / ("fold[!" + std::to_string(k) + "]-*.h5")).string();
    const std::string val = (folder / (prefix + "-*.h5")).string();
    std::cout << prefix << ": " << result.fold_samples[k] << " samples in " << result.fold_shards[k].size()
              << " shard(s); train it with --set 'data.train=" << train << "' --set 'data.val=" << val << "'\n";
  }
}

void add_import(CLI::App& data) {
  struct Args {
    data::ImportOptions import;
    std::string mask_map, class_names;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = data.add_subcommand("import", "Build shards from folders of PNG/TIFF images and masks");
  cmd->add_option("--images", args->import.images_dir, "Folder of images")->required()->check(not_empty());
  cmd->add_option("--masks", args->import.masks_dir, "Folder of masks, matched to images by file name")
      ->required()
      ->check(not_empty());
  cmd->add_option("--out", args->import.out_dir, "Output directory")->required()->check(not_empty());
  cmd->add_option("--mask-suffix", args->import.mask_suffix, "Mask of a.png is a<SUFFIX>.png (e.g. _mask)");
  cmd->add_option("--mask-map", args->mask_map,
                  "Mask value or colour to class id, e.g. 0=0,255=1 or #000000=0,#ff0000=1; VALUE=ignore marks "
                  "unlabelled pixels (default: sorted distinct values)");
  cmd->add_option("--class-names", args->class_names, "Comma-separated class names");
  cmd->add_option("--val-fraction", args->import.val_fraction, "Share of pairs for val-*.h5, in [0, 1)")
      ->check(number_from(0.0, std::nextafter(1.0, 0.0), "from 0 to below 1"))
      ->capture_default_str();
  cmd->add_option("--folds", args->import.folds,
                  "Cross-validation: K seeded folds fold0-*.h5 ... (2-10), instead of train/val")
      ->check(CLI::Range(2, data::kMaxFolds))
      ->excludes("--val-fraction");
  cmd->add_option("--samples-per-shard", args->import.samples_per_shard, "Samples in each shard file")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--tile", args->import.tile,
                  "Cut each image and mask into TILE x TILE samples covering it (images of any size at least TILE; "
                  "slides); a pair's tiles stay in one set")
      ->check(at_least(1));
  cmd->add_option("--gzip", args->import.gzip_level, "Deflate level 1-9; 0 stores raw")
      ->check(CLI::Range(0, 9))
      ->capture_default_str();
  // Unsigned, as synth's.
  cmd->add_option("--seed", args->import.seed, "Seed of the validation split or folds")
      ->check(unsigned_number())
      ->capture_default_str();
  cmd->add_flag("--overwrite", args->import.overwrite,
                "Remove train-*.h5/val-*.h5 (with --folds: fold*-*.h5) shards already in --out (once the inputs "
                "are read)");
  cmd->callback([args] {
    data::ImportOptions o = args->import;
    if (!args->mask_map.empty()) o.mask_mapping = data::parse_mask_mapping(args->mask_map);
    for (size_t start = 0; !args->class_names.empty() && start <= args->class_names.size();) {
      const size_t end = std::min(args->class_names.find(',', start), args->class_names.size());
      o.class_names.push_back(args->class_names.substr(start, end - start));
      DPUNET_CHECK(!o.class_names.back().empty(), "import: --class-names ", args->class_names,
                   ": an empty name (class ", o.class_names.size() - 1, ")");
      start = end + 1;
    }
    const data::ImportResult result = data::import_image_folders(o);
    if (!result.note.empty()) std::cout << "note: " << result.note << "\n";
    if (o.folds > 0) {
      print_folds(o, result);
      return;
    }
    // The mapping as --mask-map takes it: predict --eval on images with such masks needs it too.
    std::cout << "imported " << result.train_samples << " training and " << result.val_samples << " validation samples"
              << tiles_note(o, result) << "\nclasses (mask value=class): --mask-map " << result.mask_mapping.text()
              << "\n";
    for (const auto& path : result.train_shards) std::cout << path << "\n";
    for (const auto& path : result.val_shards) std::cout << path << "\n";
    if (o.val_fraction > 0 && result.val_samples == 0) {
      std::cout << "note: --val-fraction " << o.val_fraction << " of " << result.images
                << " images rounds to no validation image; no val-*.h5 was written\n";
    }
  });
}

void add_inspect(CLI::App& data) {
  struct Args {
    std::string spec;
    data::InspectOptions inspect;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = data.add_subcommand("inspect", "Describe a dataset; --verify reads every sample");
  cmd->add_option("dataset", args->spec, "Directory, glob, index file or shard")->required()->check(not_empty());
  cmd->add_option("--max-samples", args->inspect.max_samples, "Samples read for statistics")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_flag("--verify", args->inspect.verify, "Read every sample and list the bad ones");
  cmd->callback([args] {
    const data::InspectResult result = data::inspect_dataset(args->spec, args->inspect, std::cout);
    DPUNET_CHECK(result.bad_samples == 0 && result.bad_shards == 0, args->spec, ": ", result.bad_samples,
                 " bad samples", result.bad_shards > 0 ? " and " + std::to_string(result.bad_shards) : "",
                 result.bad_shards > 0 ? " shard(s) that could not be opened or disagree with the others" : "",
                 " (listed above)");
  });
}

}  // namespace

void add_data_commands(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Make and inspect HDF5 shard datasets");
  data->require_subcommand(1);
  add_synth(*data);
  add_import(*data);
  add_inspect(*data);
}

}  // namespace dpunet::app
