// Loss, metrics, learning-rate schedules and the fp16 loss scaler against known answers.
#include <torch/torch.h>
#include "support/catch.h"

#include <cmath>

#include <limits>

#include "config/config.h"
#include "train/loss.h"
#include "train/loss_scaler.h"
#include "train/metrics.h"
#include "train/schedule.h"

using dpunet::train::LossOptions;

namespace {
// Logits that predict `labels` [N, H, W] with confidence `margin`.
torch::Tensor confident_logits(const torch::Tensor& labels, int64_t classes, double margin) {
  return torch::one_hot(labels, classes).permute({0, 3, 1, 2}).to(torch::kFloat) * margin;
}
}  // namespace

TEST_CASE("cross-entropy part equals torch's, Dice part is 0 for a perfect prediction", "[train]") {
  torch::manual_seed(0);
  const torch::Tensor logits = torch::randn({2, 3, 5, 5});
  const torch::Tensor target = torch::randint(0, 3, {2, 5, 5});
  LossOptions ce_only;
  ce_only.dice_weight = 0;
  CHECK(dpunet::train::segmentation_loss(logits, target, ce_only).item<double>() ==
        Approx(torch::nn::functional::cross_entropy(logits, target).item<double>()));
  LossOptions dice_only;
  dice_only.ce_weight = 0;
  CHECK(dpunet::train::segmentation_loss(confident_logits(target, 3, 50), target, dice_only).item<double>() ==
        Approx(0).margin(1e-5));
  // Wrong everywhere: Dice of the foreground classes is near 0, so the loss is near 1.
  CHECK(dpunet::train::segmentation_loss(confident_logits((target + 1) % 3, 3, 50), target, dice_only).item<double>() ==
        Approx(1).margin(1e-3));
}

TEST_CASE("Dice and IoU come from summed counts, not averaged scores", "[train]") {
  dpunet::train::ConfusionCounts counts(2);
  // Batch 1: 4 pixels, truth 1 1 0 0, predicted 1 0 0 0 -> class 1: tp 1, fn 1.
  const auto truth1 = torch::tensor({1, 1, 0, 0}).view({1, 2, 2});
  const auto predicted1 = torch::tensor({1, 0, 0, 0}).view({1, 2, 2});
  counts.add(confident_logits(predicted1, 2, 5), truth1);
  // Batch 2: truth 1 0 0 0, predicted 1 1 0 0 -> class 1: tp 1, fp 1.
  const auto truth2 = torch::tensor({1, 0, 0, 0}).view({1, 2, 2});
  const auto predicted2 = torch::tensor({1, 1, 0, 0}).view({1, 2, 2});
  counts.add(confident_logits(predicted2, 2, 5), truth2);
  // Class 1 totals: tp 2, fp 1, fn 1 -> Dice 4/6, IoU 2/4.
  CHECK(counts.dice()[1] == Approx(4.0 / 6.0));
  CHECK(counts.iou()[1] == Approx(0.5));
  // Class 0 totals: tp 4, fp 1, fn 1 -> Dice 8/10.
  CHECK(counts.dice()[0] == Approx(0.8));
  CHECK(counts.mean_foreground_dice() == Approx(4.0 / 6.0));
  CHECK(counts.foreground_dice() == Approx(4.0 / 6.0));
}

TEST_CASE("a class neither present nor predicted has no score and stays out of the mean", "[train]") {
  dpunet::train::ConfusionCounts counts(3);
  // Classes 0 and 2 only; class 2: tp 1, fn 1 -> Dice 2/3. Class 1 appears nowhere.
  const auto truth = torch::tensor({2, 2, 0, 0}).view({1, 2, 2});
  const auto predicted = torch::tensor({2, 0, 0, 0}).view({1, 2, 2});
  counts.add(confident_logits(predicted, 3, 5), truth);
  CHECK(std::isnan(counts.dice()[1]));
  CHECK(std::isnan(counts.iou()[1]));
  CHECK(counts.dice()[2] == Approx(2.0 / 3.0));
  CHECK(counts.mean_foreground_dice() == Approx(2.0 / 3.0));  // not (NaN or 1 + 2/3) / 2
  dpunet::train::ConfusionCounts background_only(2);
  background_only.add(confident_logits(torch::zeros({1, 2, 2}, torch::kLong), 2, 5), torch::zeros({1, 2, 2}));
  CHECK(std::isnan(background_only.mean_foreground_dice()));
  CHECK(std::isnan(background_only.foreground_dice()));
}

TEST_CASE("learning-rate schedules", "[train]") {
  dpunet::config::ScheduleConfig s;
  s.warmup_steps = 10;
  s.name = "cosine";
  CHECK(dpunet::train::learning_rate(s, 1.0, 0, 110) == Approx(0.1));
  CHECK(dpunet::train::learning_rate(s, 1.0, 9, 110) == Approx(1.0));
  CHECK(dpunet::train::learning_rate(s, 1.0, 10, 110) == Approx(1.0));
  CHECK(dpunet::train::learning_rate(s, 1.0, 60, 110) == Approx(0.5));
  CHECK(dpunet::train::learning_rate(s, 1.0, 110, 110) == Approx(0.0).margin(1e-12));
  // A floor: the curve spans [lr_min, lr] instead of [0, lr].
  s.lr_min = 0.2;
  CHECK(dpunet::train::learning_rate(s, 1.0, 10, 110) == Approx(1.0));
  CHECK(dpunet::train::learning_rate(s, 1.0, 60, 110) == Approx(0.6));
  CHECK(dpunet::train::learning_rate(s, 1.0, 35, 110) == Approx(0.2 + 0.8 * 0.5 * (1 + std::cos(M_PI / 4))));
  CHECK(dpunet::train::learning_rate(s, 1.0, 110, 110) == Approx(0.2));
  s.lr_min = 0;
  s.name = "poly";
  CHECK(dpunet::train::learning_rate(s, 1.0, 60, 110) == Approx(std::pow(0.5, 0.9)));
  CHECK(dpunet::train::learning_rate(s, 1.0, 35, 110) == Approx(std::pow(0.75, 0.9)));
  s.poly_exponent = 2;
  CHECK(dpunet::train::learning_rate(s, 3.0, 60, 110) == Approx(3.0 * 0.25));
  CHECK(dpunet::train::learning_rate(s, 3.0, 110, 110) == Approx(0.0).margin(1e-12));
  // poly's floor as cosine's.
  s.lr_min = 0.6;
  CHECK(dpunet::train::learning_rate(s, 3.0, 10, 110) == Approx(3.0));
  CHECK(dpunet::train::learning_rate(s, 3.0, 60, 110) == Approx(0.6 + 2.4 * 0.25));
  CHECK(dpunet::train::learning_rate(s, 3.0, 110, 110) == Approx(0.6));
  s.lr_min = 0;
  s.name = "constant";
  CHECK(dpunet::train::learning_rate(s, 2.0, 100, 110) == Approx(2.0));
}

TEST_CASE("the loss scaler skips non-finite steps and grows after clean ones", "[train]") {
  dpunet::train::LossScaler scaler(true, /*growth_interval=*/2);
  const double start = scaler.state().scale;
  CHECK(scaler.scale(torch::tensor(3.0f)).item<double>() == 3.0 * start);
  torch::Tensor g = torch::full({3}, start * 2);
  torch::Tensor found_inf = scaler.unscale({g});
  CHECK(found_inf.item<float>() == 0);
  CHECK(torch::allclose(g, torch::full({3}, 2.0)));
  scaler.update(found_inf);
  CHECK(scaler.state().clean_steps == 1);
  scaler.update(scaler.unscale({torch::ones({2})}));
  CHECK(scaler.state().scale == start * 2);
  CHECK(scaler.state().clean_steps == 0);
  torch::Tensor bad = torch::tensor({1.0, std::numeric_limits<double>::infinity()});
  torch::Tensor fine = torch::full({2}, start * 4);
  found_inf = scaler.unscale({fine, bad, torch::Tensor()});
  CHECK(found_inf.item<float>() != 0);
  CHECK(torch::allclose(fine, torch::full({2}, 2.0)));  // every gradient is unscaled all the same
  torch::Tensor nan = torch::full({4}, std::numeric_limits<double>::quiet_NaN());
  CHECK(scaler.unscale({nan}).item<float>() != 0);
  scaler.update(found_inf);
  CHECK(scaler.state().scale == start);
  CHECK(scaler.state().clean_steps == 0);

  // A checkpoint's state comes back as it was.
  dpunet::train::LossScaler resumed(true, /*growth_interval=*/2);
  resumed.load({1024.0, 1});
  CHECK(resumed.state().scale == 1024.0);
  resumed.update(resumed.unscale({torch::ones({1})}));
  CHECK(resumed.state().scale == 2048.0);

  dpunet::train::LossScaler off(false);
  torch::Tensor loss = torch::tensor(3.0);
  CHECK(off.scale(loss).item<double>() == 3.0);
}

TEST_CASE("the loss scaler goes below 1 for gradients beyond fp16's range and counts the steps it skipped", "[train]") {
  dpunet::train::LossScaler scaler(true, /*growth_interval=*/3);
  const auto skip = [&] { scaler.update(scaler.unscale({torch::full({2}, std::numeric_limits<double>::infinity())})); };
  const auto take = [&] { scaler.update(scaler.unscale({torch::ones({2})})); };
  for (int i = 0; i < 20; ++i) skip();
  CHECK(scaler.state().scale == 65536.0 / (1 << 20));  // 1/16: a gradient of 1e6 fits fp16 at it
  dpunet::train::LossScalerSkips skips = scaler.take_skips();
  CHECK(skips.skipped == 20);
  CHECK(skips.in_a_row == 20);
  CHECK(skips.scale == 1.0 / 16);
  take();
  skip();
  take();
  skips = scaler.take_skips();
  CHECK(skips.skipped == 1);  // since the previous reading
  CHECK(skips.in_a_row == 0);
  skip();
  skip();
  CHECK(scaler.take_skips().in_a_row == 2);
  CHECK(scaler.take_skips().skipped == 0);
  // Never down to 0, whose reciprocal would make every later gradient inf.
  for (int i = 0; i < 200; ++i) skip();
  CHECK(scaler.state().scale == dpunet::train::kMinLossScale);
  CHECK(scaler.take_skips().in_a_row == 202);
  // A checkpoint carries the counts: a resumed run logs the skips not yet logged and
  // counts the ones in a row on.
  skip();
  const dpunet::train::LossScalerState state = scaler.state();
  CHECK(state.skipped == 1);
  CHECK(state.skipped_in_a_row == 203);
  dpunet::train::LossScaler resumed(true, /*growth_interval=*/3);
  resumed.load(state);
  resumed.update(resumed.unscale({torch::full({1}, std::numeric_limits<double>::infinity())}));
  skips = resumed.take_skips();
  CHECK(skips.skipped == 2);
  CHECK(skips.in_a_row == 204);
  // Skipped steps are not counted without fp16.
  dpunet::train::LossScaler off(false);
  CHECK(off.take_skips().skipped == 0);
}

TEST_CASE("the loss and its gradient are the same for NCHW and NHWC logits, and match the NCHW formula", "[train]") {
  torch::manual_seed(4);
  const torch::Tensor logits = torch::randn({2, 3, 6, 5});
  const torch::Tensor target = torch::randint(0, 3, {2, 6, 5});
  LossOptions o;
  o.class_weights = {0.5, 1.0, 2.0};
  auto loss_and_grad = [&](const torch::Tensor& input) {
    const torch::Tensor x = input.detach().requires_grad_(true);
    const torch::Tensor loss = dpunet::train::segmentation_loss(x, target, o);
    loss.backward();
    return std::make_pair(loss.detach(), x.grad().contiguous());
  };
  const auto nchw = loss_and_grad(logits);
  const auto nhwc = loss_and_grad(logits.contiguous(at::MemoryFormat::ChannelsLast));
  CHECK(nchw.first.item<double>() == Approx(nhwc.first.item<double>()).epsilon(1e-6));
  CHECK(torch::allclose(nchw.second, nhwc.second, 1e-5, 1e-7));
  // The same weighted cross-entropy and foreground soft Dice, written over [N, K, H, W].
  const torch::Tensor x = logits.detach().requires_grad_(true);
  const torch::Tensor weights = torch::tensor(o.class_weights);
  const torch::Tensor ce =
      torch::nn::functional::cross_entropy(x, target, torch::nn::functional::CrossEntropyFuncOptions().weight(weights));
  const torch::Tensor p = torch::softmax(x, 1);
  const torch::Tensor one_hot = torch::one_hot(target, 3).permute({0, 3, 1, 2}).to(torch::kFloat);
  const torch::Tensor dice =
      (2 * (p * one_hot).sum({0, 2, 3}) + 1e-5) / (p.sum({0, 2, 3}) + one_hot.sum({0, 2, 3}) + 1e-5);
  const torch::Tensor reference = ce + (1 - dice.slice(0, 1).mean());
  reference.backward();
  CHECK(nchw.first.item<double>() == Approx(reference.item<double>()).epsilon(1e-6));
  CHECK(torch::allclose(nchw.second, x.grad(), 1e-5, 1e-7));
  CHECK_THROWS_WITH(dpunet::train::segmentation_loss(logits, target.narrow(1, 0, 4), o),
                    HasSubstr("masks [N, H, W]") && HasSubstr("[2, 4, 5]"));
}

TEST_CASE("a batch with no pixel of a weighted class adds no cross-entropy, and stays finite", "[train]") {
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({1, 3, 4, 4}).requires_grad_(true);
  const torch::Tensor target = torch::zeros({1, 4, 4}, torch::kLong);  // only class 0, weighted 0
  LossOptions o;
  o.class_weights = {0.0, 1.0, 1.0};
  o.dice_weight = 0;
  const torch::Tensor loss = dpunet::train::segmentation_loss(x, target, o);
  loss.backward();
  CHECK(loss.item<double>() == 0.0);
  CHECK(torch::isfinite(x.grad()).all().item<bool>());
  CHECK(x.grad().abs().max().item<double>() == 0.0);
}

TEST_CASE("class weights scale cross-entropy's terms, not its mean, however small they are", "[train]") {
  // Weighted cross-entropy is a weighted mean: all weights times any factor give one loss.
  torch::manual_seed(6);
  const torch::Tensor logits = torch::randn({2, 3, 5, 5});
  const torch::Tensor target = torch::randint(0, 3, {2, 5, 5});
  LossOptions o;
  o.dice_weight = 0;
  o.class_weights = {0.5, 1.0, 2.0};
  const double loss = dpunet::train::segmentation_loss(logits, target, o).item<double>();
  CHECK(loss == Approx(torch::nn::functional::cross_entropy(
                           logits, target,
                           torch::nn::functional::CrossEntropyFuncOptions().weight(torch::tensor({0.5f, 1.0f, 2.0f})))
                           .item<double>()));
  o.class_weights = {0.5e-9, 1.0e-9, 2.0e-9};  // weight sums far below 1e-6
  CHECK(dpunet::train::segmentation_loss(logits, target, o).item<double>() == Approx(loss).epsilon(1e-5));
}

TEST_CASE("the loss from summed batch sums is the loss of the batches taken together", "[train]") {
  torch::manual_seed(6);
  const torch::Tensor logits = torch::randn({4, 3, 5, 5});
  const torch::Tensor target = torch::randint(0, 3, {4, 5, 5});
  LossOptions o;
  o.class_weights = {0.5, 1.0, 2.0};
  using dpunet::train::loss_sums;
  const torch::Tensor halves = loss_sums(logits.slice(0, 0, 1), target.slice(0, 0, 1), o) +
                               loss_sums(logits.slice(0, 1, 4), target.slice(0, 1, 4), o);
  CHECK(halves.size(0) == dpunet::train::loss_sums_size(o, 3));
  CHECK(dpunet::train::loss_from_sums(halves, o, 3).item<double>() ==
        Approx(dpunet::train::segmentation_loss(logits, target, o).item<double>()).epsilon(1e-6));
}

namespace {
// The labelled pixels of logits [N, K, H, W] and their labels, as one [1, K, P, 1] image.
std::pair<torch::Tensor, torch::Tensor> labelled_only(const torch::Tensor& logits, const torch::Tensor& target,
                                                      int64_t ignore_label) {
  const torch::Tensor keep = target.flatten().ne(ignore_label).nonzero().flatten();
  const torch::Tensor scores = logits.permute({0, 2, 3, 1}).reshape({-1, logits.size(1)}).index_select(0, keep);
  return {scores.t().reshape({1, logits.size(1), -1, 1}), target.flatten().index_select(0, keep).view({1, -1, 1})};
}
}  // namespace

TEST_CASE("unlabelled pixels add nothing: the loss is that of the labelled pixels alone", "[train]") {
  torch::manual_seed(7);
  constexpr int64_t kIgnore = 255;
  torch::Tensor target = torch::randint(0, 3, {2, 6, 6});
  target.masked_fill_(torch::rand({2, 6, 6}) < 0.4, kIgnore);
  LossOptions o;
  o.ignore_label = kIgnore;
  SECTION("equal classes") {}
  SECTION("class weights") {
    o.class_weights = {0.5, 1.0, 2.0};
  }
  SECTION("Dice with background") {
    o.dice_include_background = true;
  }
  const torch::Tensor x = torch::randn({2, 3, 6, 6}).requires_grad_(true);
  const torch::Tensor loss = dpunet::train::segmentation_loss(x, target, o);
  loss.backward();

  const auto [reference_logits, reference_target] = labelled_only(x.detach(), target, kIgnore);
  const torch::Tensor y = reference_logits.clone().requires_grad_(true);
  LossOptions all_labelled = o;
  all_labelled.ignore_label = -1;
  const torch::Tensor reference = dpunet::train::segmentation_loss(y, reference_target, all_labelled);
  reference.backward();
  CHECK(loss.item<double>() == Approx(reference.item<double>()).epsilon(1e-6));
  // The gradient reaches the labelled pixels as in the reference and no unlabelled one.
  const auto [grad_labelled, unused] = labelled_only(x.grad(), target, kIgnore);
  CHECK(torch::allclose(grad_labelled, y.grad(), 1e-5, 1e-7));
  const torch::Tensor ignored = target.eq(kIgnore).unsqueeze(1).expand_as(x);
  CHECK(x.grad().masked_select(ignored).abs().max().item<double>() == 0.0);
}

TEST_CASE("a batch with every pixel unlabelled has loss 0 and no gradient", "[train]") {
  const torch::Tensor x = torch::randn({1, 2, 4, 4}).requires_grad_(true);
  LossOptions o;
  o.ignore_label = 2;
  const torch::Tensor loss = dpunet::train::segmentation_loss(x, torch::full({1, 4, 4}, 2, torch::kLong), o);
  loss.backward();
  CHECK(loss.item<double>() == Approx(0).margin(1e-6));
  CHECK(torch::isfinite(x.grad()).all().item<bool>());
  CHECK(x.grad().abs().max().item<double>() == 0.0);
}

TEST_CASE("confusion counts leave unlabelled pixels out", "[train]") {
  torch::manual_seed(8);
  torch::Tensor truth = torch::randint(0, 3, {2, 5, 5});
  truth.masked_fill_(torch::rand({2, 5, 5}) < 0.3, 255);
  const torch::Tensor logits = torch::randn({2, 3, 5, 5});
  dpunet::train::ConfusionCounts with_ignore(3, 255);
  with_ignore.add(logits, truth);
  const auto [labelled_logits, labelled_truth] = labelled_only(logits, truth, 255);
  dpunet::train::ConfusionCounts labelled(3);
  labelled.add(labelled_logits, labelled_truth);
  CHECK(torch::equal(with_ignore.counts(), labelled.counts()));
  // Every labelled pixel is counted once: tp + fn over the classes.
  const torch::Tensor per_class = with_ignore.counts().slice(0, 0, 3);
  CHECK((per_class.select(1, 0) + per_class.select(1, 2)).sum().item<double>() == truth.ne(255).sum().item<double>());
  CHECK_THROWS_WITH(dpunet::train::ConfusionCounts(3, 2), HasSubstr("ignore label 2"));
}
