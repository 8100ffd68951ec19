// Validation scores each image once: a patch larger than the images mirror-pads them,
// and the mirrored pixels repeat labels already scored, so they are left out. Centre
// crops of any size that covers the image score exactly what whole images do, on any
// number of ranks.
#include <torch/torch.h>
#include "support/catch.h"

#include "data/dataset.h"
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

train::ValidationResult run_validation(const data::Dataset& dataset, int64_t patch, dist::Communicator& comm) {
  train::ValidationOptions o;
  o.batch_size = 2;
  o.patch_size = patch;
  o.n_classes = 3;
  train::LossOptions loss;
  return train::validate([](const torch::Tensor& x) { return pixel_logits(x, 3); }, dataset, o, loss, torch::kCPU,
                         comm.rank(), comm.world_size(), comm);
}

}  // namespace

TEST_CASE("validation leaves out the pixels a larger patch mirrors in", "[mpi]") {
  dist::MpiCommunicator comm(test::mpi_context());
  test::TempDir dir;
  test::write_known_shard(dir / "val-0.h5", 5);  // 8x8 images, 3 classes
  const data::Dataset dataset(dir / "val-0.h5");
  const train::ValidationResult whole = run_validation(dataset, 0, comm);
  REQUIRE(whole.counts.counts().index({torch::indexing::Slice(0, 3)}).sum().item<double>() > 0);
  for (const int64_t patch : {8, 11, 12, 15}) {
    CAPTURE(patch);
    const train::ValidationResult padded = run_validation(dataset, patch, comm);
    CHECK(torch::equal(padded.counts.counts(), whole.counts.counts()));
    CHECK(padded.loss == Approx(whole.loss).epsilon(1e-6));  // float32 sums over more (masked) terms
  }
}
