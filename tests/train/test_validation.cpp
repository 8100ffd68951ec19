// Validation scores each image once: a patch larger than the images mirror-pads them,
// and the mirrored pixels repeat labels already scored, so they are left out. Centre
// crops of any size that covers the image score exactly what whole images do, on any
// number of ranks.
#include <torch/torch.h>
#include "support/catch.h"

#include "data/dataset.h"
#include "data/normalize.h"
#include "data/shard_writer.h"
#include "dist/mpi_communicator.h"
#include "support/mpi_test_context.h"
#include "support/shard_fixture.h"
#include "support/temp_dir.h"
#include "train/validation.h"

using namespace dpunet;

namespace {

// Logits that depend on each pixel's value, so that predictions differ across an image
// and a mirrored pixel would change the counts.
torch::Tensor pixel_logits(const torch::Tensor& images, int64_t classes) {
  std::vector<torch::Tensor> per_class;
  for (int64_t k = 0; k < classes; ++k) per_class.push_back(torch::sin(images.select(1, 0) * (k + 1.7)));
  return torch::stack(per_class, 1);
}

train::ValidationResult run_validation(const data::Dataset& dataset, int64_t patch, dist::Communicator& comm,
                                       bool valid_padding = false) {
  train::ValidationOptions o;
  o.batch_size = 2;
  o.patch_size = patch;
  o.n_classes = 3;
  o.valid_padding = valid_padding;
  train::LossOptions loss;
  // Valid padding: the output is the input less 2 pixels on each side.
  const auto forward = [valid_padding](const torch::Tensor& x) {
    const torch::Tensor logits = pixel_logits(x, 3);
    return valid_padding ? logits.slice(2, 2, -2).slice(3, 2, -2) : logits;
  };
  return train::validate(forward, dataset, o, loss, torch::kCPU, comm.rank(), comm.world_size(), comm);
}

// The counts of every sample scored whole, one at a time, in one process: what validation
// must find on any number of ranks.
train::ConfusionCounts counts_one_by_one(const data::Dataset& dataset, int64_t classes) {
  const int64_t ignore_label = dataset.header().ignore_label;
  train::ConfusionCounts counts(classes, ignore_label);
  std::vector<unsigned char> scratch;
  for (int64_t i = 0; i < dataset.size(); ++i) {
    const data::Sample s = data::load_sample(dataset, i, train::ValidationOptions{}.normalization, scratch);
    const torch::Tensor image = torch::tensor(s.image).reshape({1, s.channels, s.height, s.width});
    const torch::Tensor mask =
        torch::tensor(std::vector<int64_t>(s.mask.begin(), s.mask.end())).reshape({1, s.height, s.width});
    counts.add(pixel_logits(image, classes), mask);
  }
  return counts;
}

// 6x10 images (4 samples) whose masks hold the ignore label 255 in one column.
void write_wide_shard_with_ignore_label(const std::string& path) {
  data::ShardHeader header;
  header.samples = 4;
  header.channels = 1;
  header.height = 6;
  header.width = 10;
  header.n_classes = 3;
  header.ignore_label = 255;
  data::ShardWriter writer(path, header);
  std::vector<uint8_t> image(60), mask(60);
  for (int64_t i = 0; i < header.samples; ++i) {
    for (int64_t p = 0; p < 60; ++p) {
      image[p] = static_cast<uint8_t>((i * 13 + p * 7) % 200);
      mask[p] = p % 10 == 3 ? 255 : static_cast<uint8_t>((i + p / 4) % 3);
    }
    writer.write(i, image.data(), mask.data());
  }
  writer.finish();
}

}  // namespace

TEST_CASE("validation leaves out the pixels a larger patch mirrors in", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  test::TempDir dir;
  test::write_known_shard(dir / "val-0.h5", 5);  // 8x8 images, 3 classes
  const data::Dataset dataset(dir / "val-0.h5");
  const train::ValidationResult whole = run_validation(dataset, 0, comm);
  // 5 samples: ranks take unequal shares, and every sample is counted once.
  REQUIRE(torch::equal(whole.counts.counts(), counts_one_by_one(dataset, 3).counts()));
  const torch::Tensor per_class = whole.counts.counts().index({torch::indexing::Slice(0, 3)});
  CHECK((per_class.select(1, 0) + per_class.select(1, 2)).sum().item<double>() == 5 * 8 * 8);  // tp + fn: every pixel
  for (const int64_t patch : {8, 11, 12, 15}) {
    CAPTURE(patch);
    const train::ValidationResult padded = run_validation(dataset, patch, comm);
    CHECK(torch::equal(padded.counts.counts(), whole.counts.counts()));
    CHECK(padded.loss == Approx(whole.loss).epsilon(1e-6));  // float32 sums over more (masked) terms
  }
}

TEST_CASE("validation leaves out mirrored pixels of non-square images, beside the shards' own ignore label", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  test::TempDir dir;
  write_wide_shard_with_ignore_label(dir / "val-0.h5");
  const data::Dataset dataset(dir / "val-0.h5");
  const train::ValidationResult whole = run_validation(dataset, 0, comm);
  REQUIRE(torch::equal(whole.counts.counts(), counts_one_by_one(dataset, 3).counts()));
  // A 10-pixel patch pads the 6 rows and leaves the 10 columns whole; 13 pads both.
  for (const int64_t patch : {10, 13}) {
    CAPTURE(patch);
    const train::ValidationResult padded = run_validation(dataset, patch, comm);
    CHECK(torch::equal(padded.counts.counts(), whole.counts.counts()));
    CHECK(padded.loss == Approx(whole.loss).epsilon(1e-6));
  }
  // Valid padding scores the output's window (the patch less 2 pixels a side): a 14-pixel
  // patch's 10x10 output covers the 6x10 image and its mirrored rows, and scores exactly
  // what same padding scores over the whole image.
  const train::ValidationResult valid = run_validation(dataset, 14, comm, /*valid_padding=*/true);
  CHECK(torch::equal(valid.counts.counts(), whole.counts.counts()));
}
