// `dpunet predict --overwrite`: the earlier prediction is set aside, not removed, until
// the run replacing it finishes, on one rank and on several.
#include <torch/torch.h>
#include "support/catch.h"

#include <filesystem>
#include <string>

#include "common/atomic_file.h"
#include "common/process_label.h"
#include "data/image_io.h"
#include "infer/output_manifest.h"
#include "support/prediction_fixture.h"

using dpunet::test::run_command;
using dpunet::test::TrainedModel;

TEST_CASE("predict --overwrite keeps the earlier prediction until the new one finishes", "[infer][e2e]") {
  TrainedModel t;
  const std::string images = t.f.dir() / "in/images", masks = t.f.dir() / "in/masks", out = t.f.dir() / "out";
  std::filesystem::create_directories(images);
  std::filesystem::create_directories(masks);
  // b's mask holds a value that is no class of the model's three: found only when b is
  // read, after a was predicted.
  for (const char* name : {"a", "b"}) {
    dpunet::data::Image image, mask;
    image.height = mask.height = image.width = mask.width = 40;
    image.channels = mask.channels = 1;
    for (int64_t p = 0; p < 40 * 40; ++p) {
      image.values.push_back(static_cast<uint16_t>((p * 7) % 200));
      mask.values.push_back(static_cast<uint16_t>(p % 40 < 20 ? 0 : (name[0] == 'a' ? 1 : 7)));
    }
    dpunet::data::write_png(images + "/" + name + ".png", image);
    dpunet::data::write_png(masks + "/" + name + ".png", mask);
  }
  const std::string predict =
      DPUNET_BINARY " predict " + images + " --checkpoint " + t.checkpoint + " --tile 32 --no-png --out " + out;
  const auto first = run_command(predict + " 2>&1");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const std::string first_h5 = dpunet::read_file(out + "/predictions.h5");
  const std::string set_aside = out + "/.earlier-prediction";

  const auto failed = run_command(predict + " --overwrite --eval --masks " + masks + " 2>&1");
  INFO(failed.output);
  CHECK(failed.exit_code != 0);
  CHECK_THAT(failed.output, HasSubstr("b.png") && HasSubstr("is not a class"));
  CHECK_THAT(failed.output, HasSubstr("the earlier prediction's files are set aside in " + set_aside) &&
                                HasSubstr("the prediction this run was to replace is kept in " + set_aside));
  // Byte for byte the first run's, with its list, whose stamps still hold: moved back,
  // they are that prediction's files again.
  CHECK(dpunet::read_file(set_aside + "/predictions.h5") == first_h5);
  const dpunet::infer::EarlierOutputs kept = dpunet::infer::find_earlier_outputs(set_aside);
  CHECK(kept.unlisted.empty());
  CHECK(kept.written.size() == 2);                                  // predictions.h5 and predict-files.txt
  CHECK(std::filesystem::exists(out + "/predictions.h5.partial"));  // the failed run's image a

  // Without --overwrite, neither the set-aside prediction nor the failed run's files are
  // taken for nothing.
  const auto plain = run_command(predict + " 2>&1");
  CHECK(plain.exit_code != 0);
  CHECK_THAT(plain.output,
             HasSubstr(set_aside + ", the prediction that an --overwrite run set aside") && HasSubstr("--overwrite"));
  CHECK(dpunet::read_file(set_aside + "/predictions.h5") == first_h5);

  // A second failure replaces the failed run's files, never the set-aside ones.
  const auto again = run_command(predict + " --overwrite --eval --masks " + masks + " 2>&1");
  CHECK(again.exit_code != 0);
  CHECK_THAT(again.output, !HasSubstr("set aside in") && HasSubstr("kept in " + set_aside));
  CHECK(dpunet::read_file(set_aside + "/predictions.h5") == first_h5);

  // Finished on two ranks: the set-aside folder goes, the failed runs' files with it.
  const auto replaced = run_command("OMP_NUM_THREADS=1 " DPUNET_MPI_LAUNCHER " 2 " + predict + " --overwrite 2>&1");
  INFO(replaced.output);
  REQUIRE(replaced.exit_code == 0);
  CHECK_FALSE(std::filesystem::exists(set_aside));
  CHECK_FALSE(std::filesystem::exists(out + "/predictions.h5.partial"));
  CHECK_FALSE(std::filesystem::exists(out + "/predictions.h5"));
  CHECK(std::filesystem::exists(out + "/predictions-rank000.h5"));

  // Replaced again on two ranks, from a prediction that finished: set aside by the ranks
  // together, and gone at the end.
  const auto twice = run_command("OMP_NUM_THREADS=1 " DPUNET_MPI_LAUNCHER " 2 " + predict + " --overwrite 2>&1");
  INFO(twice.output);
  REQUIRE(twice.exit_code == 0);
  CHECK_THAT(twice.output, HasSubstr("set aside in " + set_aside));
  CHECK_FALSE(std::filesystem::exists(set_aside));
  CHECK(std::filesystem::exists(out + "/predictions-rank000.h5"));

  // The folder left empty (its files moved back by hand) holds nothing to keep: the
  // prediction beside it is the one set aside this time, not removed.
  std::filesystem::create_directories(set_aside);
  const auto after_restore = run_command(predict + " --overwrite --eval --masks " + masks + " 2>&1");
  CHECK(after_restore.exit_code != 0);
  CHECK_THAT(after_restore.output, HasSubstr("set aside in " + set_aside));
  CHECK(std::filesystem::exists(set_aside + "/predictions-rank000.h5"));
}

TEST_CASE("a predict into a folder another run is writing is refused, naming it, and touches nothing there",
          "[infer][e2e]") {
  TrainedModel t;
  const std::string images = t.f.dir() / "in", out = t.f.dir() / "out";
  std::filesystem::create_directories(images);
  dpunet::data::Image image;
  image.height = image.width = 40;
  image.channels = 1;
  for (int64_t p = 0; p < 40 * 40; ++p) image.values.push_back(static_cast<uint16_t>((p * 7) % 200));
  dpunet::data::write_png(images + "/a.png", image);
  const std::string predict =
      DPUNET_BINARY " predict " + images + " --checkpoint " + t.checkpoint + " --tile 32 --no-png --out " + out;
  const auto first = run_command(predict + " 2>&1");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const std::string h5 = dpunet::read_file(out + "/predictions.h5");
  const std::string manifest = dpunet::read_file(out + "/predict-files.txt");
  // The holder writes its name as a run does, and keeps the lock while it sleeps; on this
  // machine, so the refusal is at once.
  const std::string lock = out + "/.lock";
  const std::string hold = "(printf 'pid 1 on " + dpunet::host_name() + "\\n' > " + lock + "; exec flock -o " + lock +
                           " sleep 60) & holder=$!; until ! flock -n " + lock + " true; do sleep 0.05; done; ";
  const auto second = run_command(hold + predict + " --overwrite 2>&1; status=$?; kill $holder; echo status=$status");
  INFO(second.output);
  CHECK_THAT(second.output, HasSubstr("status=1") && HasSubstr("--out " + out + " is in use by another run (pid 1 on " +
                                                               dpunet::host_name() + ")"));
  CHECK(dpunet::read_file(out + "/predictions.h5") == h5);
  CHECK(dpunet::read_file(out + "/predict-files.txt") == manifest);
  CHECK_FALSE(std::filesystem::exists(dpunet::infer::set_aside_folder(out)));
}
