// PredictionWriter's overlays: every class gets a visible colour of its own, also past
// the named ones.
#include <torch/torch.h>
#include "support/catch.h"

#include <set>
#include <tuple>

#include "data/image_io.h"
#include "infer/outputs.h"
#include "support/temp_dir.h"

TEST_CASE("overlay colours stay distinct and visible for many classes", "[infer]") {
  dpunet::test::TempDir dir;
  constexpr int64_t kClasses = 40;
  dpunet::infer::PredictionWriter writer({dir.path(), false, true}, 0, 1, kClasses);
  // One pixel per class on a black image: the overlay shows 45% of each class's colour.
  torch::Tensor probabilities = torch::zeros({kClasses, 1, kClasses});
  for (int64_t k = 0; k < kClasses; ++k) probabilities[k][0][k] = 1;
  writer.write("classes", probabilities.argmax(0).to(torch::kByte), probabilities,
               torch::zeros({1, 1, kClasses}, torch::kByte));
  writer.finish();
  const dpunet::data::Image overlay = dpunet::data::read_image(dir / "classes_overlay.png");
  std::set<std::tuple<int, int, int>> colours;
  for (int64_t k = 1; k < kClasses; ++k) {
    const auto* v = overlay.values.data() + k * 3;
    INFO("class " << k);
    CHECK(v[0] + v[1] + v[2] > 60);  // not black
    colours.emplace(v[0], v[1], v[2]);
  }
  CHECK(colours.size() == kClasses - 1);
}
