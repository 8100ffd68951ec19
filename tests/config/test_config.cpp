// Config: defaults, overrides, printing, and an error naming file, line, column and key
// for each kind of mistake.
#include "support/catch.h"

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "common/atomic_file.h"
#include "config/config.h"
#include "config/fields.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

using dpunet::config::parse_config;

TEST_CASE("an empty config gives the defaults, and printing round-trips", "[config]") {
  const auto config = parse_config("", "empty.yaml");
  CHECK(config.optimizer.name == "adamw");
  CHECK(config.model.base_channels == 64);
  const auto again = parse_config(dpunet::config::to_yaml(config), "printed.yaml");
  CHECK(dpunet::config::to_yaml(again) == dpunet::config::to_yaml(config));
}

TEST_CASE("numbers print as their shortest exact decimal", "[config]") {
  auto config = parse_config("", "empty.yaml");
  CHECK_THAT(dpunet::config::to_yaml(config), HasSubstr("beta1: 0.9\n") && HasSubstr("momentum: 0.99\n") &&
                                                  HasSubstr("timeout_s: 600\n") && HasSubstr("elastic_sigma: 10\n"));
  // Values that need every digit still read back exactly.
  config.optimizer.lr = 0.1 + 0.2;
  config.optimizer.eps = 1.0 / 3.0;
  config.loss.class_weights = {1.0 / 7.0, 2.5, 0.1};
  const auto printed = parse_config(dpunet::config::to_yaml(config), "printed.yaml");
  CHECK(printed.optimizer.lr == config.optimizer.lr);
  CHECK(printed.optimizer.eps == config.optimizer.eps);
  CHECK(printed.loss.class_weights == config.loss.class_weights);
}

TEST_CASE("keys are read into the structs, and --set overrides win", "[config]") {
  const auto config = parse_config("optimizer:\n  lr: 0.01\n  name: sgd\nloss:\n  class_weights: [1, 2, 3]\n", "a.yaml",
                                   {"optimizer.lr=3e-4", "model.depth=3"});
  CHECK(config.optimizer.lr == 3e-4);
  CHECK(config.optimizer.name == "sgd");
  CHECK(config.model.depth == 3);
  CHECK(config.loss.class_weights == std::vector<double>{1, 2, 3});
  const auto printed = parse_config(dpunet::config::to_yaml(config), "printed.yaml");
  CHECK(printed.optimizer.lr == 3e-4);
  CHECK(printed.loss.class_weights == config.loss.class_weights);
}

TEST_CASE("config mistakes name the file, line, column and key", "[config]") {
  SECTION("unknown key, with the nearest valid one") {
    CHECK_THROWS_WITH(parse_config("optimizer:\n  lrr: 0.1\n", "a.yaml"), HasSubstr("a.yaml:2:3") &&
                                                                              HasSubstr("optimizer.lrr") &&
                                                                              HasSubstr("did you mean 'optimizer.lr'"));
  }
  SECTION("a key in the wrong section") {
    CHECK_THROWS_WITH(parse_config("train:\n  lr: 0.1\n", "a.yaml"), HasSubstr("did you mean 'optimizer.lr'"));
  }
  SECTION("unknown section") {
    CHECK_THROWS_WITH(parse_config("optimiser:\n  lr: 0.1\n", "a.yaml"),
                      HasSubstr("a.yaml:1:1") && HasSubstr("did you mean 'optimizer'"));
  }
  SECTION("wrong type") {
    CHECK_THROWS_WITH(
        parse_config("train:\n  steps: many\n", "a.yaml"),
        HasSubstr("a.yaml:2:10") && HasSubstr("train.steps") && HasSubstr("expected an integer, got 'many'"));
  }
  SECTION("a boolean where a path belongs") {
    CHECK_THROWS_WITH(parse_config("data:\n  val: false\n", "a.yaml"),
                      HasSubstr("a.yaml:2:8") && HasSubstr("data.val") && HasSubstr("YAML boolean 'false'") &&
                          HasSubstr("leave the value empty for none"));
    CHECK_THROWS_WITH(parse_config("run:\n  dir: no\n", "a.yaml"), HasSubstr("run.dir"));
    CHECK(parse_config("data:\n  val: 'false'\n", "a.yaml").data.val == "false");  // quoted: a name
    CHECK(parse_config("data:\n  val:\n", "a.yaml").data.val.empty());
    // A name given with --set is taken as written, and the printed config keeps it a name.
    const auto named = parse_config("", "a.yaml", {"run.dir=off", "data.val=no"});
    const auto again = parse_config(dpunet::config::to_yaml(named), "printed.yaml");
    CHECK(again.run.dir == "off");
    CHECK(again.data.val == "no");
  }
  SECTION("an empty value, named at its key") {
    CHECK_THROWS_WITH(parse_config("train:\n  steps:\nmodel:\n  depth: 3\n", "a.yaml"),
                      HasSubstr("a.yaml:2:3") && HasSubstr("train.steps"));
  }
  SECTION("out of range") {
    CHECK_THROWS_WITH(parse_config("augment:\n  flip: 1.5\n", "a.yaml"),
                      HasSubstr("a.yaml:2:9") && HasSubstr("augment.flip") && HasSubstr("must be in [0, 1]"));
    // The bounds are printed exactly: "1.04858e+06" would read as if the value fitted.
    CHECK_THROWS_WITH(parse_config("", "a.yaml", {"train.batch_size=100000000"}),
                      HasSubstr("train.batch_size") && !HasSubstr("e+") && HasSubstr("got 100000000"));
    CHECK_THROWS_WITH(parse_config("", "a.yaml", {"optimizer.grad_clip=-1"}), HasSubstr("must be in [0, inf]"));
    // Whole-number bounds in full up to 2^53, as large as integer keys go.
    CHECK_THROWS_WITH(parse_config("", "a.yaml", {"train.steps=0"}), HasSubstr("must be in [1, 1000000000000000]"));
  }
  SECTION("not one of the choices") {
    CHECK_THROWS_WITH(parse_config("model:\n  norm: layer\n", "a.yaml"),
                      HasSubstr("model.norm") && HasSubstr("batch, instance, group, none, sync_batch"));
  }
  SECTION("a patch that valid padding cannot tile") {
    CHECK_THROWS_WITH(parse_config("model:\n  padding: valid\naugment:\n  patch_size: 570\n", "a.yaml"),
                      HasSubstr("a.yaml") && HasSubstr("augment.patch_size") && HasSubstr("572"));
  }
  SECTION("class weights that do not match the classes") {
    CHECK_THROWS_WITH(parse_config("loss:\n  class_weights: [1, 2]\n", "a.yaml"),
                      HasSubstr("loss.class_weights") && HasSubstr("2 weights for 3 classes"));
  }
  SECTION("broken YAML") {
    CHECK_THROWS_WITH(parse_config("model: [1, 2\n", "a.yaml"), HasSubstr("a.yaml:") && HasSubstr("not valid YAML"));
  }
  SECTION("a bad override") {
    CHECK_THROWS_WITH(parse_config("", "a.yaml", {"optimizer.lr=fast"}),
                      HasSubstr("--set optimizer.lr=fast") && HasSubstr("expected a number"));
    CHECK_THROWS_WITH(parse_config("", "a.yaml", {"optimiser.lr=1"}), HasSubstr("did you mean 'optimizer.lr'"));
    CHECK_THROWS_WITH(parse_config("", "a.yaml", {"optimizer.lr"}), HasSubstr("KEY=VALUE"));
  }
}

TEST_CASE("model differences list the keys that change the weights", "[config]") {
  const auto a = parse_config(
      "model:\n  depth: 4\n  checkpointing: all\n  split_skip_conv: true\n  fuse_norm_relu: false\n"
      "  pool_concat_kernels: false\n",
      "a.yaml");
  const auto b = parse_config("model:\n  depth: 3\n", "b.yaml");
  const auto differences = dpunet::config::model_differences(a, b);
  REQUIRE(differences.size() == 1);  // checkpointing and the kernels used do not change the weights
  CHECK_THAT(differences[0], HasSubstr("model.depth: 4 vs 3"));
  // SyncBatchNorm holds BatchNorm's weights and statistics: one GPU to many, and back.
  const auto batch = parse_config("model:\n  norm: batch\n", "c.yaml");
  const auto sync = parse_config("model:\n  norm: sync_batch\n", "d.yaml");
  CHECK(dpunet::config::model_differences(batch, sync).empty());
  CHECK(dpunet::config::model_differences(sync, batch).empty());
  REQUIRE(dpunet::config::model_differences(sync, parse_config("model:\n  norm: instance\n", "e.yaml")).size() == 1);
}

TEST_CASE("docs/config.md describes every key", "[config]") {
  std::ifstream in(DPUNET_SOURCE_DIR "/docs/config.md");
  REQUIRE(in);
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& field : dpunet::config::fields()) {
    const std::string section = field.path.substr(0, field.path.find('.'));
    const std::string key = field.path.substr(field.path.find('.') + 1);
    const auto heading = doc.find("\n## " + section + "\n");
    INFO(field.path);
    REQUIRE(heading != std::string::npos);
    const auto next = doc.find("\n## ", heading + 1);
    CHECK(doc.substr(heading, next - heading).find("| `" + key + "` |") != std::string::npos);
  }
}

TEST_CASE("a saved config skips keys this build does not know, a user's config refuses them", "[config]") {
  const std::string text = "model: {depth: 3}\nretired: {x: 1}\ntrain: {old_key: 2, steps: 700}\n";
  std::vector<std::string> skipped;
  const auto saved = dpunet::config::parse_saved_config(text, "a.ckpt (saved config)", &skipped);
  CHECK(saved.model.depth == 3);
  CHECK(saved.train.steps == 700);
  CHECK(skipped == std::vector<std::string>{"retired", "train.old_key"});
  CHECK_THROWS_WITH(parse_config(text, "cfg.yaml"), HasSubstr("retired") && HasSubstr("unknown key"));
  // A known key with a bad value is still an error.
  CHECK_THROWS_WITH(dpunet::config::parse_saved_config("model: {depth: 0}\n", "a.ckpt"), HasSubstr("model.depth"));
  // A recipe a later build refuses across keys (an InstanceNorm zeroing a 1x1 bottom map)
  // leaves its checkpoint readable.
  const std::string old_recipe = "model: {norm: instance, depth: 5}\naugment: {patch_size: 32}\n";
  CHECK_THROWS_WITH(parse_config(old_recipe, "cfg.yaml"), HasSubstr("InstanceNorm would zero"));
  CHECK(dpunet::config::parse_saved_config(old_recipe, "a.ckpt (saved config)").model.norm == "instance");
}

TEST_CASE("normalisation statistics: pairs, one per channel, constant channels allowed", "[config]") {
  const auto c = parse_config("data: {channel_mean: [3.5], channel_std: [0], stats_pixel_type: uint8}\n", "c.yaml");
  CHECK(c.data.channel_std == std::vector<double>{0.0});
  CHECK_THROWS_WITH(parse_config("data: {channel_mean: [1]}\n", "c.yaml"), HasSubstr("give both or neither"));
  CHECK_THROWS_WITH(parse_config("data: {channel_mean: [1, 2], channel_std: [1, 1]}\n", "c.yaml"),
                    HasSubstr("2 values for 1 channels"));
  CHECK_THROWS_WITH(parse_config("data: {stats_pixel_type: int8}\n", "c.yaml"), HasSubstr("data.stats_pixel_type"));
  // Alone it describes nothing, and the training shards' type would replace it unseen.
  CHECK_THROWS_WITH(parse_config("data: {stats_pixel_type: uint16}\n", "c.yaml"),
                    HasSubstr("data.stats_pixel_type, data.channel_mean") && HasSubstr("give them too"));
  // Only dataset normalisation reads them; beside another they would be ignored unseen.
  for (const std::string other : {"none", "per_image"}) {
    CHECK_THROWS_WITH(
        parse_config("data: {normalization: " + other + ", channel_mean: [10], channel_std: [2]}\n", "c.yaml"),
        HasSubstr("data.channel_mean, data.normalization") && HasSubstr("data.normalization is " + other));
  }
}

TEST_CASE("a file describing weights is checked key by key and for its statistics, not as a recipe", "[config]") {
  dpunet::test::TempDir dir;
  // A patch size this model cannot tile: a training config's error, no model file's.
  dpunet::write_file_atomically(dir / "model.yaml", "model: {padding: valid, depth: 2}\naugment: {patch_size: 30}\n");
  CHECK_THROWS_WITH(dpunet::config::load_config(dir / "model.yaml"), HasSubstr("a 30 px patch cannot be tiled"));
  CHECK(dpunet::config::load_model_config(dir / "model.yaml").model.padding == "valid");
  // The statistics its inputs are scaled by must still pair up and fit the channels.
  for (const auto& [data, message] : std::vector<std::pair<std::string, std::string>>{
           {"{channel_mean: [1, 2], channel_std: [1]}", "give both or neither"},
           {"{channel_mean: [1, 2], channel_std: [1, 1]}", "2 values for 1 channels"},
           {"{channel_mean: [1], channel_std: [1], stats_pixel_type: int8}", "must be uint8, uint16, float32"},
           {"{normalization: none, channel_mean: [1], channel_std: [1]}", "data.normalization is none"}}) {
    dpunet::write_file_atomically(dir / "stats.yaml", "data: " + data + "\n");
    CHECK_THROWS_WITH(dpunet::config::load_model_config(dir / "stats.yaml"),
                      HasSubstr(dir / "stats.yaml") && HasSubstr(message));
  }
  // Unknown keys and empty files as for training.
  dpunet::write_file_atomically(dir / "typo.yaml", "model: {n_clases: 3}\n");
  CHECK_THROWS_WITH(dpunet::config::load_model_config(dir / "typo.yaml"), HasSubstr("model.n_clases: unknown key"));
  dpunet::write_file_atomically(dir / "empty.yaml", "model:\n#  depth: 3\n");
  CHECK_THROWS_WITH(dpunet::config::load_model_config(dir / "empty.yaml"),
                    HasSubstr("holds no settings") && HasSubstr("--n-channels"));
}

TEST_CASE("seeds take the whole unsigned 64-bit range, exactly", "[config]") {
  const auto config = parse_config("", "a.yaml", {"run.seed=18446744073709551615"});
  CHECK(config.run.seed == std::numeric_limits<uint64_t>::max());
  CHECK(parse_config(dpunet::config::to_yaml(config), "printed.yaml").run.seed == config.run.seed);
  CHECK(parse_config("run:\n  seed: 1765432109876543211\n", "a.yaml").run.seed == 1765432109876543211ull);
  for (const std::string bad : {"18446744073709551616", "-1", "1.5", "x"}) {
    CHECK_THROWS_WITH(parse_config("", "a.yaml", {"run.seed=" + bad}),
                      HasSubstr("run.seed") && HasSubstr("expected a whole number from 0 to 18446744073709551615"));
  }
}

TEST_CASE("a config file without settings is refused, not taken for the defaults", "[config]") {
  dpunet::test::TempDir dir;
  // Empty, only comments, a template whose keys are all commented out, an empty mapping.
  for (const std::string text :
       {"", "# model:\n#   depth: 3\n", "run:\n#  dir: runs/a\nmodel:\n#  depth: 3\n", "{}\n"}) {
    dpunet::write_file_atomically(dir / "empty.yaml", text);
    CHECK_THROWS_WITH(dpunet::config::load_config(dir / "empty.yaml"),
                      HasSubstr(dir / "empty.yaml") && HasSubstr("holds no settings"));
  }
  CHECK(dpunet::config::load_config(dir / "empty.yaml", {"model.depth=2"}).model.depth == 2);
  dpunet::write_file_atomically(dir / "one.yaml", "model:\n  depth: 3\n");
  CHECK(dpunet::config::load_config(dir / "one.yaml").model.depth == 3);
}

TEST_CASE("config files that would be misread are refused, naming the place", "[config]") {
  SECTION("a key given twice, which yaml-cpp would let the later one win") {
    CHECK_THROWS_WITH(parse_config("train:\n  steps: 5\ntrain:\n  steps: 500\n", "a.yaml"),
                      HasSubstr("a.yaml:3:1") && HasSubstr("train") && HasSubstr("given twice (first at a.yaml:1:1)"));
    CHECK_THROWS_WITH(parse_config("train:\n  steps: 5\n  steps: 7\n", "a.yaml"),
                      HasSubstr("a.yaml:3:3") && HasSubstr("train.steps") && HasSubstr("given twice"));
  }
  SECTION("a second document, which would not be read") {
    CHECK_THROWS_WITH(parse_config("train:\n  steps: 5\n---\ntrain:\n  steps: 7\n", "a.yaml"),
                      HasSubstr("a.yaml:4") && HasSubstr("second YAML document"));
    // A '---' at the end (or the start) leaves nothing unread.
    CHECK(parse_config("train:\n  steps: 500\n---\n", "a.yaml").train.steps == 500);
    CHECK(parse_config("---\ntrain:\n  steps: 500\n", "a.yaml").train.steps == 500);
  }
  SECTION("a dotted key at the top, which a nested one elsewhere would silently override") {
    CHECK_THROWS_WITH(parse_config("optimizer.lr: 0.5\noptimizer:\n  lr: 0.1\n", "a.yaml"),
                      HasSubstr("a.yaml:1:1") && HasSubstr("optimizer.lr") &&
                          HasSubstr("write it inside its section: 'optimizer:' then '  lr: ...'"));
  }
  SECTION("a key that is not a name") {
    CHECK_THROWS_WITH(parse_config("[a, b]: 1\n", "a.yaml"),
                      HasSubstr("a.yaml:1:1") && HasSubstr("a key must be a plain name"));
  }
  SECTION("a folder given as the config") {
    CHECK_THROWS_WITH(dpunet::config::load_config(DPUNET_SOURCE_DIR "/configs"), HasSubstr("/configs: is a folder"));
  }
  SECTION("a config file that is not there") {
    CHECK_THROWS_WITH(dpunet::config::load_config(DPUNET_SOURCE_DIR "/configs/nope.yaml"),
                      HasSubstr("/configs/nope.yaml: no such config file"));
  }
  SECTION("values that are not finite") {
    CHECK_THROWS_WITH(parse_config("loss:\n  ce_weight: .inf\n", "a.yaml"),
                      HasSubstr("loss.ce_weight") && HasSubstr("expected a finite number"));
    CHECK_THROWS_WITH(parse_config("", "a.yaml", {"optimizer.grad_clip=.nan"}), HasSubstr("optimizer.grad_clip"));
  }
  SECTION("values of the wrong kind") {
    CHECK_THROWS_WITH(
        parse_config("augment:\n  enabled: maybe\n", "a.yaml"),
        HasSubstr("a.yaml:2:12") && HasSubstr("augment.enabled") && HasSubstr("expected true or false, got 'maybe'"));
    CHECK_THROWS_WITH(parse_config("run:\n  dir: [a, b]\n", "a.yaml"),
                      HasSubstr("run.dir") && HasSubstr("expected a string"));
    CHECK_THROWS_WITH(parse_config("loss:\n  class_weights: 2\n", "a.yaml"),
                      HasSubstr("loss.class_weights") && HasSubstr("expected a list of numbers, got '2'"));
    CHECK_THROWS_WITH(parse_config("", "a.yaml", {"optimizer.name=sgd", "optimizer.momentum=0"}),
                      HasSubstr("optimizer.momentum, optimizer.name") && HasSubstr("Nesterov momentum"));
  }
}

TEST_CASE("a section whose keys are all commented out is empty", "[config]") {
  const auto config = parse_config("augment:\n  # flip: 0\ntrain:\n  steps: 700\n", "a.yaml");
  CHECK(config.augment.flip == dpunet::config::Config{}.augment.flip);
  CHECK(config.train.steps == 700);
}

TEST_CASE("unknown keys suggest the nearest key in the same section first", "[config]") {
  auto suggestion = [](const std::string& yaml) {
    try {
      parse_config(yaml, "a.yaml");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK_THAT(suggestion("checkpoint:\n  keep: 3\n"), HasSubstr("did you mean 'checkpoint.keep_last'"));
  CHECK_THAT(suggestion("validation:\n  every: 3\n"), HasSubstr("did you mean 'validation.every_steps'"));
  // At the top of a file, a key of a section is shown as the file writes it.
  CHECK_THAT(suggestion("lr: 0.01\n"), HasSubstr("did you mean 'optimizer:' then '  lr: ...'?"));
  CHECK_THAT(suggestion("optimzer.lr: 0.01\n"),
             HasSubstr("optimzer.lr: unknown key; did you mean 'optimizer:' then '  lr: ...'?"));
  CHECK_THAT(suggestion("schedul:\n  name: poly\n"), HasSubstr("did you mean 'schedule'"));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"schedul.name=poly"}), HasSubstr("did you mean 'schedule.name'"));
  // Other trainers' names for a key, and names near no key.
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"optimizer.learning_rate=1e-3"}),
                    HasSubstr("did you mean 'optimizer.lr'"));
  CHECK_THAT(suggestion("train:\n  max_steps: 3\n"), HasSubstr("did you mean 'train.steps'?") && !HasSubstr("epochs"));
  CHECK_THAT(suggestion("train:\n  epochs: 3\n"),
             HasSubstr("did you mean 'train.steps'? It counts optimizer steps, not epochs"));
  CHECK_THAT(suggestion("model:\n  num_classes: 3\n"), HasSubstr("did you mean 'model.n_classes'"));
  // Two letters swapped, the commonest slip, in a section's name and in a key's.
  CHECK_THAT(suggestion("trian:\n  steps: 5\n"), HasSubstr("did you mean 'train'"));
  CHECK_THAT(suggestion("optim:\n  lr: 0.1\n"), HasSubstr("did you mean 'optimizer'"));  // cut short
  // A key of that name in a section comes first: a mis-indented data.val.
  CHECK_THAT(suggestion("data:\n  train: x\nval: y\n"), HasSubstr("did you mean 'data:' then '  val: ...'?"));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"train.stpes=1"}), HasSubstr("did you mean 'train.steps'"));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"run.dri=x"}), HasSubstr("did you mean 'run.dir'"));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"foo.bar=1"}),
                    HasSubstr("foo.bar: unknown key (docs/config.md lists every key)") && !HasSubstr("did you mean"));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"optimizer=1"}),
                    HasSubstr("--set optimizer=1") && HasSubstr("is a section, not a key"));
}

TEST_CASE("text values given with --set are taken as written", "[config]") {
  const auto config = parse_config("", "a.yaml", {"run.dir=runs/exp #2", "data.val=*latest.h5", "data.val=&x"});
  CHECK(config.run.dir == "runs/exp #2");
  CHECK(config.data.val == "&x");
  // A shard pattern's character class is a text key's value, not a list.
  CHECK(parse_config("", "a.yaml", {"data.train=[tv]rain-*.h5"}).data.train == "[tv]rain-*.h5");
  CHECK(parse_config("", "a.yaml", {"loss.class_weights=[1, 2, 3]"}).loss.class_weights.size() == 3);
  CHECK(parse_config("", "a.yaml", {"loss.class_weights=[1, 2, 3]  # per class"}).loss.class_weights.size() == 3);
  // Whatever follows the list is an error, as in a file, not dropped.
  for (const char* trailing : {"[1, 2, 3] 4", "[1, 2, 3], [4]", "[1, 2, 3]x", "[1, 2, 3] --- [4]"}) {
    INFO(trailing);
    CHECK_THROWS_WITH(parse_config("", "a.yaml", {std::string("loss.class_weights=") + trailing}),
                      HasSubstr(std::string("--set loss.class_weights=") + trailing) &&
                          (HasSubstr("not a YAML value") || HasSubstr("not one YAML value")));
  }
  CHECK(parse_config("loss:\n  class_weights: [1, 2, 3]\n", "a.yaml", {"loss.class_weights="})
            .loss.class_weights.empty());
  CHECK(parse_config("", "a.yaml", {"optimizer.lr=3e-4"}).optimizer.lr == 3e-4);
  CHECK(parse_config("", "a.yaml", {"model.bilinear=true"}).model.bilinear);
  CHECK(parse_config("", "a.yaml", {"run.dir={a}"}).run.dir == "{a}");  // no mapping is a value
  CHECK(parse_config("loss:\n  class_weights: [1, 2, 3]\n", "a.yaml", {"loss.class_weights=~"})
            .loss.class_weights.empty());
}

TEST_CASE("contradicting or unusable values are refused before a run starts", "[config]") {
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"optimizer.eps=0"}), HasSubstr("optimizer.eps"));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"run.dir="}), HasSubstr("run.dir: is empty"));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"optimizer.lr=0"}), HasSubstr("optimizer.lr: must be above 0"));
  CHECK_THROWS_WITH(parse_config("optimizer:\n  lr: 0\n", "a.yaml"),
                    HasSubstr("a.yaml:2:") && HasSubstr("optimizer.lr"));
  CHECK_NOTHROW(parse_config("", "a.yaml", {"optimizer.name=sgd", "optimizer.eps=0"}));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"schedule.lr_min=0.1"}),
                    HasSubstr("schedule.lr_min, optimizer.lr") && HasSubstr("above the peak"));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"schedule.name=poly", "schedule.lr_min=0.1"}),
                    HasSubstr("schedule.lr_min, optimizer.lr"));
  CHECK_NOTHROW(parse_config("", "a.yaml", {"schedule.name=poly", "schedule.lr_min=1e-5"}));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"schedule.name=constant", "schedule.lr_min=1e-5"}),
                    HasSubstr("schedule.lr_min, schedule.name") && HasSubstr("constant schedule would ignore"));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"loss.class_weights=[0, 0, 0]"}),
                    HasSubstr("loss.class_weights") && HasSubstr("every weight is 0"));
  CHECK_NOTHROW(parse_config("", "a.yaml", {"loss.class_weights=[0, 0, 0]", "loss.ce_weight=0"}));
  // A 32 px patch is 1x1 at the bottom of a depth-5 U-Net: BatchNorm needs two samples.
  const std::vector<std::string> deep{"augment.patch_size=32", "model.depth=5", "train.batch_size=1"};
  CHECK_THROWS_WITH(parse_config("", "a.yaml", deep),
                    HasSubstr("model.norm, train.batch_size, augment.patch_size, model.depth") &&
                        HasSubstr("with 32 px patches the depth-5 U-Net's bottom map is 1x1") &&
                        HasSubstr("batch of 1: use a larger batch or patch") && HasSubstr("norm group"));
  auto with = [&](const std::string& change) {
    std::vector<std::string> sets = deep;
    sets.push_back(change);
    return sets;
  };
  CHECK_NOTHROW(parse_config("", "a.yaml", with("train.batch_size=2")));
  CHECK_NOTHROW(parse_config("", "a.yaml", with("augment.patch_size=64")));
  CHECK_NOTHROW(parse_config("", "a.yaml", with("model.norm=group")));
  // InstanceNorm zeroes a 1x1 map at any batch size.
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"augment.patch_size=32", "model.depth=5", "model.norm=instance"}),
                    HasSubstr("model.norm, augment.patch_size, model.depth") &&
                        HasSubstr("bottom map is 1x1, which InstanceNorm would zero") &&
                        HasSubstr("use a larger patch,"));
  CHECK_NOTHROW(parse_config("", "a.yaml", {"augment.patch_size=64", "model.depth=5", "model.norm=instance"}));
  // GroupNorm with one channel per group does the same; wider levels give groups of several.
  const std::vector<std::string> thin{"augment.patch_size=32", "model.depth=5", "model.norm=group",
                                      "model.base_channels=1"};
  CHECK_THROWS_WITH(parse_config("", "a.yaml", thin),
                    HasSubstr("model.norm, model.base_channels, augment.patch_size, model.depth") &&
                        HasSubstr("one channel in each of GroupNorm's 32 groups") &&
                        HasSubstr("use a larger patch or model.base_channels, a smaller depth, or norm batch"));
  // A bilinear U-Net's bottom block is half as wide: 32 channels, not 64, at base 2.
  const std::vector<std::string> two_per_group{"augment.patch_size=32", "model.depth=5", "model.norm=group",
                                               "model.base_channels=2"};
  CHECK_NOTHROW(parse_config("", "a.yaml", two_per_group));
  std::vector<std::string> bilinear = two_per_group;
  bilinear.push_back("model.bilinear=true");
  CHECK_THROWS_WITH(parse_config("", "a.yaml", bilinear), HasSubstr("one channel in each of GroupNorm's 32 groups"));
  // Weight decay that zeroes the weights (or flips them) at each step.
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"optimizer.lr=0.1", "optimizer.weight_decay=10"}),
                    HasSubstr("optimizer.lr, optimizer.weight_decay") && HasSubstr("lr x weight_decay is 1:"));
  CHECK_NOTHROW(parse_config("", "a.yaml", {"optimizer.lr=0.1", "optimizer.weight_decay=5"}));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"run.device=cpu", "distributed.backend=nccl"}),
                    HasSubstr("distributed.backend, run.device") && HasSubstr("nccl needs CUDA"));
  CHECK_THROWS_WITH(parse_config("", "a.yaml", {"run.device=cuda", "distributed.backend=mpi"}),
                    HasSubstr("distributed.backend, run.device"));
}

TEST_CASE("errors across keys name where the keys were set", "[config]") {
  // A --set among them first: the latest word on the keys.
  CHECK_THROWS_WITH(
      parse_config("data:\n  channel_mean: [1]\n  channel_std: [1]\n", "c.yaml", {"data.channel_std=[1, 2]"}),
      HasSubstr("--set data.channel_std=[1, 2]: data.channel_mean, data.channel_std: give both or neither"));
  // Else the file's line and column of the first key set there.
  CHECK_THROWS_WITH(parse_config("model:\n  depth: 3\naugment:\n  gamma_min: 2\n", "c.yaml"),
                    HasSubstr("c.yaml:4:") && HasSubstr("augment.gamma_min, augment.gamma_max"));
}

TEST_CASE("a config error is reported alike with and without --print-config", "[config]") {
  for (const std::string extra : {"", " --print-config"}) {
    INFO(extra);
    const auto run =
        dpunet::test::run_command(DPUNET_BINARY " train --set optimizer.lr=0 --set run.device=cpu" + extra + " 2>&1");
    CHECK(run.exit_code == 2);
    CHECK_THAT(run.output, HasSubstr("dpunet: error: --set optimizer.lr=0: optimizer.lr: must be above 0"));
  }
}

TEST_CASE("every config shipped in configs/ loads and validates", "[config]") {
  int found = 0;
  for (const auto& entry : std::filesystem::directory_iterator(DPUNET_SOURCE_DIR "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    ++found;
    INFO(entry.path().string());
    CHECK_NOTHROW(dpunet::config::load_config(entry.path().string()));
  }
  CHECK(found >= 2);  // quickstart.yaml and unet572.yaml at least
}

TEST_CASE("command lines that do not parse exit with CLI11's codes, not 0 or 1", "[config]") {
  struct Case {
    std::string arguments;
    int code;
  };
  for (const Case& c : std::vector<Case>{{"train --no-such-option", 109},
                                         {"bench train --steps 0", 105},
                                         {"bench train --channels-last abc", 104},
                                         {"bench train --base-channels abc", 105},
                                         {"export", 106}}) {
    const auto run = dpunet::test::run_command(DPUNET_BINARY " " + c.arguments + " 2>&1");
    INFO(c.arguments << "\n" << run.output);
    CHECK(run.exit_code == c.code);
  }
}
