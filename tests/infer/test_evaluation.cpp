// predict --eval's table: per-image scores, their mean over images with classes an image
// does not score left out, and pooled scores equal to counting all pixels together.
#include <torch/torch.h>
#include "support/catch.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "infer/evaluation.h"
#include "train/metrics.h"

using dpunet::infer::EvaluationTable;

namespace {

// One-hot "probabilities" [K, H, W] that predict exactly `classes` [H, W], for the
// pooled counts.
torch::Tensor predicting(const torch::Tensor& classes, int64_t k) {
  return torch::one_hot(classes, k).permute({2, 0, 1}).to(torch::kFloat);
}

}  // namespace

TEST_CASE("evaluation reports pooled, per-image and image-mean Dice", "[infer]") {
  // Image 0: class 1 half right (tp 1, fp 1, fn 1 -> Dice 0.5); class 2 absent and not
  // predicted. Image 1: no mask. Image 2: class 1 exact, class 2 missed entirely.
  const torch::Tensor mask0 = torch::tensor({0, 1, 1, 0}, torch::kLong).view({2, 2});
  const torch::Tensor pred0 = torch::tensor({0, 1, 0, 1}, torch::kLong).view({2, 2});
  const torch::Tensor mask2 = torch::tensor({1, 1, 2, 2}, torch::kLong).view({2, 2});
  const torch::Tensor pred2 = torch::tensor({1, 1, 0, 0}, torch::kLong).view({2, 2});
  EvaluationTable table(3, 3);
  table.add(0, pred0.to(torch::kByte), mask0.to(torch::kByte));
  table.add(2, pred2, mask2.to(torch::kByte));
  CHECK(table.evaluated() == 2);
  // As written to eval.json: NaN becomes null.
  const nlohmann::json r = nlohmann::json::parse(table.report({"a", "b", "c"}).dump());

  REQUIRE(r["per_image"].size() == 2);
  const nlohmann::json& a = r["per_image"][0];
  const nlohmann::json& c = r["per_image"][1];
  CHECK(a["name"] == "a");
  CHECK(c["name"] == "c");
  CHECK(a["dice"][1].get<double>() == Approx(0.5));
  CHECK(a["dice"][2].is_null());                       // neither present nor predicted
  CHECK(a["mean_dice"].get<double>() == Approx(0.5));  // the null class left out
  CHECK(c["dice"][1].get<double>() == Approx(1.0));
  CHECK(c["dice"][2].get<double>() == Approx(0.0));
  CHECK(c["mean_dice"].get<double>() == Approx(0.5));

  // Mean over images: class 1 (0.5 + 1) / 2; class 2 only image c scores it.
  CHECK(r["images"] == 2);
  CHECK(r["image_mean"]["dice"][1].get<double>() == Approx(0.75));
  CHECK(r["image_mean"]["dice"][2].get<double>() == Approx(0.0));
  CHECK(r["image_mean"]["mean_dice"].get<double>() == Approx(0.375));

  // Pooled: the same as counting both images' pixels at once.
  dpunet::train::ConfusionCounts pooled(3);
  pooled.add(torch::stack({predicting(pred0, 3), predicting(pred2, 3)}), torch::stack({mask0, mask2}));
  CHECK(r["aggregation"] == "pooled");
  for (size_t k = 0; k < 3; ++k) CHECK(r["dice"][k].get<double>() == Approx(pooled.dice()[k]));
  CHECK(r["mean_dice"].get<double>() == Approx(pooled.mean_foreground_dice()));
  CHECK(r["foreground_dice"].get<double>() == Approx(pooled.foreground_dice()));
}

TEST_CASE("evaluation names the image count when names do not match", "[infer]") {
  EvaluationTable table(2, 2);
  CHECK_THROWS_WITH(table.report({"only one"}), HasSubstr("1 names for 2 images"));
}

TEST_CASE("evaluation leaves unlabelled mask pixels out of every score", "[infer]") {
  // Truth 1 1 | unlabelled unlabelled; predicted 1 0 | 1 1: class 1 tp 1, fn 1 and no fp.
  const torch::Tensor mask = torch::tensor({1, 1, 255, 255}, torch::kByte).view({2, 2});
  const torch::Tensor predicted = torch::tensor({1, 0, 1, 1}, torch::kLong).view({2, 2});
  EvaluationTable table(1, 2, 255);
  table.add(0, predicted, mask);
  const nlohmann::json r = nlohmann::json::parse(table.report({"a"}).dump());
  CHECK(r["dice"][1].get<double>() == Approx(2.0 / 3.0));
  CHECK(r["dice"][0].get<double>() == Approx(0.0));  // predicted once where truth is 1: fp 1, tp 0
  CHECK(r["per_image"][0]["dice"][1].get<double>() == Approx(2.0 / 3.0));
  // Every pixel unlabelled: nothing is scored.
  EvaluationTable empty(1, 2, 255);
  empty.add(0, predicted, torch::full({2, 2}, 255, torch::kByte));
  const nlohmann::json none = nlohmann::json::parse(empty.report({"a"}).dump());
  CHECK(none["dice"][0].is_null());
  CHECK(none["dice"][1].is_null());
  // Nor is the image counted as scored: predict then says no mask was scored.
  CHECK(empty.evaluated() == 0);
  CHECK(none["images"] == 0);
}

TEST_CASE("evaluation counts a tall image in bands as it would whole", "[infer]") {
  // More rows than one band holds (a million pixels): the counts are the same sums.
  torch::manual_seed(3);
  const torch::Tensor mask = torch::randint(0, 3, {1100, 1000}, torch::kByte);
  const torch::Tensor predicted = torch::where(torch::rand({1100, 1000}) < 0.8, mask, torch::zeros_like(mask));
  EvaluationTable table(1, 3);
  table.add(0, predicted, mask);
  dpunet::train::ConfusionCounts whole(3);
  whole.add_predicted(predicted.unsqueeze(0), mask.to(torch::kLong).unsqueeze(0));
  const nlohmann::json r = nlohmann::json::parse(table.report({"a"}).dump());
  for (size_t k = 0; k < 3; ++k) CHECK(r["dice"][k].get<double>() == Approx(whole.dice()[k]).epsilon(1e-12));
}
