// safetensors: round trips of every dtype, and a clear error for each way a hand-made
// file can be malformed; weights that do not fit a model are listed by name.
#include <torch/torch.h>
#include "support/catch.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "checkpoint/weights.h"
#include "common/atomic_file.h"
#include "support/temp_dir.h"

using dpunet::checkpoint::parse_safetensors;

namespace {

// A file from a header and a data buffer; `length` overrides the header length field.
std::string make_file(const std::string& header, const std::string& data, int64_t length = -1) {
  const uint64_t n = length >= 0 ? static_cast<uint64_t>(length) : header.size();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return bytes + header + data;
}

}  // namespace

TEST_CASE("safetensors round-trips every dtype, shape and the metadata", "[checkpoint]") {
  dpunet::test::TempDir dir;
  torch::manual_seed(0);
  const dpunet::checkpoint::NamedTensors tensors = {
      {"f32", torch::randn({2, 3})},
      {"f16", torch::randn({4}).to(torch::kHalf)},
      {"bf16", torch::randn({1, 2, 2}).to(torch::kBFloat16)},
      {"f64", torch::randn({3}).to(torch::kDouble)},
      {"i64", torch::tensor({int64_t{1} << 40, int64_t{-3}})},
      {"u8", torch::tensor({1, 200}).to(torch::kByte)},
      {"flag", torch::tensor({true, false})},
      {"scalar", torch::tensor(2.5)},
      {"empty", torch::empty({0, 4})},
  };
  dpunet::checkpoint::write_safetensors(dir / "t.safetensors", tensors, {{"format", "pt"}});
  const auto back = dpunet::checkpoint::read_safetensors(dir / "t.safetensors");
  REQUIRE(back.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    INFO(tensors[i].first);
    CHECK(back[i].first == tensors[i].first);
    CHECK(back[i].second.scalar_type() == tensors[i].second.scalar_type());
    CHECK(back[i].second.sizes() == tensors[i].second.sizes());
    CHECK(torch::equal(back[i].second, tensors[i].second));
  }
  const std::string bytes = dpunet::read_file(dir / "t.safetensors");
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  CHECK((8 + length) % 8 == 0);  // data aligned
  CHECK(nlohmann::json::parse(bytes.substr(8, length))["__metadata__"]["format"] == "pt");
  // The metadata alone is read from the header, and the same way from a damaged file.
  CHECK(dpunet::checkpoint::read_safetensors_metadata(dir / "t.safetensors") ==
        std::map<std::string, std::string>{{"format", "pt"}});
  dpunet::write_file_atomically(dir / "short.safetensors", bytes.substr(0, 8 + length / 2));
  CHECK_THROWS_WITH(dpunet::checkpoint::read_safetensors_metadata(dir / "short.safetensors"),
                    HasSubstr("short.safetensors: bad header length"));
  dpunet::write_file_atomically(dir / "tiny.safetensors", "abc");
  CHECK_THROWS_WITH(dpunet::checkpoint::read_safetensors_metadata(dir / "tiny.safetensors"),
                    HasSubstr("tiny.safetensors: too short"));
  // Another kind of file (a config given where weights belong) is said to be one.
  dpunet::write_file_atomically(dir / "config.yaml", "run:\n  dir: runs/a\nmodel:\n  depth: 4\n");
  CHECK_THROWS_WITH(dpunet::checkpoint::read_safetensors_metadata(dir / "config.yaml"),
                    HasSubstr("config.yaml: not a safetensors file"));
}

TEST_CASE("malformed safetensors files are rejected with the reason", "[checkpoint]") {
  const std::string eight(8, 'x');
  const std::string ok = R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})";
  CHECK_NOTHROW(parse_safetensors(make_file(ok, eight), "f"));
  CHECK_THROWS_WITH(parse_safetensors("abc", "f"), HasSubstr("f: too short"));
  CHECK_THROWS_WITH(parse_safetensors(make_file(ok, eight, 1 << 20), "f"), HasSubstr("bad header length"));
  CHECK_THROWS_WITH(parse_safetensors(make_file("{not json", eight), "f"), HasSubstr("not valid JSON"));
  CHECK_THROWS_WITH(parse_safetensors(make_file("[1, 2]", ""), "f"), HasSubstr("must be a JSON object"));
  CHECK_THROWS_WITH(
      parse_safetensors(make_file(R"({"a": {"dtype": "F12", "shape": [2], "data_offsets": [0, 8]}})", eight), "f"),
      HasSubstr("tensor 'a'") && HasSubstr("unknown dtype"));
  CHECK_THROWS_WITH(
      parse_safetensors(make_file(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", eight), "f"),
      HasSubstr("needs 12"));
  CHECK_THROWS_WITH(
      parse_safetensors(make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", eight), "f"),
      HasSubstr("beyond the data"));
  CHECK_THROWS_WITH(parse_safetensors(make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                                std::string(12, 'x')),
                                      "f"),
                    HasSubstr("overlaps"));
  CHECK_THROWS_WITH(
      parse_safetensors(make_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", eight), "f"),
      HasSubstr("gap of 4 bytes"));
  CHECK_THROWS_WITH(parse_safetensors(make_file(ok, eight + "tail"), "f"), HasSubstr("4 bytes after the last tensor"));
  // A value nested 100000 deep is named by its kind: printing it would recurse as deep.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK_THROWS_WITH(
      parse_safetensors(make_file(R"({"a": {"dtype": )" + deep + R"(, "shape": [2], "data_offsets": [0, 8]}})", eight),
                        "f"),
      HasSubstr("f: tensor 'a': unknown dtype a nested list"));
  CHECK_THROWS_WITH(
      parse_safetensors(
          make_file(R"({"a": {"dtype": "F32", "shape": )" + deep + R"(, "data_offsets": [0, 8]}})", eight), "f"),
      HasSubstr("f: tensor 'a': shape entries must be integers from 0 to 2^63-1, got a nested list"));
  CHECK_THROWS_WITH(parse_safetensors(make_file(R"({"a": {"dtype": "F32", "shape": [2]}})", eight), "f"),
                    HasSubstr("needs dtype, shape and data_offsets"));
  CHECK_THROWS_WITH(
      parse_safetensors(make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", eight), "f"),
      HasSubstr("end before they begin"));
  // Shapes whose byte count wraps around 2^64 to the span claimed, or beyond int64.
  CHECK_THROWS_WITH(parse_safetensors(make_file(R"({"a": {"dtype": "U8", "shape": [4294967296, 4294967296],
                                                         "data_offsets": [0, 0]}})",
                                                ""),
                                      "f"),
                    HasSubstr("f: tensor 'a'") && HasSubstr("more bytes than a file can"));
  CHECK_THROWS_WITH(parse_safetensors(make_file(R"({"a": {"dtype": "U8", "shape": [9223372036854775808, 2],
                                                         "data_offsets": [0, 0]}})",
                                                ""),
                                      "f"),
                    HasSubstr("f: tensor 'a'") && HasSubstr("from 0 to 2^63-1"));
  // An empty tensor whose other sides overflow: no tensor has them, empty or not.
  CHECK_THROWS_WITH(parse_safetensors(make_file(R"({"a": {"dtype": "F32", "shape": [0, 9223372036854775807, 2],
                                                         "data_offsets": [0, 0]}})",
                                                ""),
                                      "f"),
                    HasSubstr("f: tensor 'a'") && HasSubstr("more bytes than a file can"));
  // An empty tensor may share its offset with the next one.
  const auto shared = parse_safetensors(make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                                      "b": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}})",
                                                  eight),
                                        "f");
  CHECK(shared.size() == 2);
}

TEST_CASE("a large file of another kind is refused from its first bytes, not read whole", "[checkpoint]") {
  dpunet::test::TempDir dir;
  // A PyTorch .pt is a zip: its local header read as a length is far beyond any header.
  // Sparse, 1 TiB: reading it whole would fail for memory, not name the file's kind.
  const std::string path = dir / "model.pt";
  {
    std::ofstream out(path, std::ios::binary);
    out << std::string("PK\x03\x04\x14\x00\x08\x08", 8) << "archive/data.pkl";
  }
  std::filesystem::resize_file(path, uint64_t{1} << 40);
  for (const bool metadata : {false, true}) {
    INFO(metadata);
    try {
      if (metadata) {
        dpunet::checkpoint::read_safetensors_metadata(path);
      } else {
        dpunet::checkpoint::read_safetensors(path);
      }
      FAIL("read");
    } catch (const std::exception& e) {
      CHECK_THAT(e.what(), HasSubstr("model.pt: not a safetensors file"));
    }
  }
}

TEST_CASE("weights that do not fit a model are listed by name and shape", "[checkpoint]") {
  torch::nn::Linear model(3, 2);
  dpunet::checkpoint::NamedTensors state = dpunet::checkpoint::module_state(*model);
  state[0].second = torch::zeros({2, 4});  // weight: wrong shape
  state.pop_back();                        // bias: missing
  state.emplace_back("extra", torch::zeros({1}));
  CHECK_THROWS_WITH(dpunet::checkpoint::load_state(*model, state, "w.safetensors"),
                    HasSubstr("w.safetensors") && HasSubstr("3 differences") &&
                        HasSubstr("weight: file [2, 4], model [2, 3]") && HasSubstr("missing bias") &&
                        HasSubstr("unexpected extra"));
  // Another precision converts; integers for floats do not.
  dpunet::checkpoint::NamedTensors typed = dpunet::checkpoint::module_state(*torch::nn::Linear(3, 2));
  typed[0].second = typed[0].second.to(torch::kBFloat16);
  dpunet::checkpoint::load_state(*model, typed, "w");
  CHECK(torch::equal(model->weight, typed[0].second.to(torch::kFloat)));
  CHECK(torch::equal(model->bias, typed[1].second));
  typed[1].second = torch::zeros({2}, torch::kInt);
  CHECK_THROWS_WITH(dpunet::checkpoint::load_state(*model, typed, "w"), HasSubstr("bias: file Int, model Float"));
  const auto good = dpunet::checkpoint::module_state(*torch::nn::Linear(3, 2));
  dpunet::checkpoint::load_state(*model, good, "w");
  CHECK(torch::equal(model->weight, good[0].second));
  // A NaN weight would make every prediction NaN: refused by name.
  dpunet::checkpoint::NamedTensors broken = dpunet::checkpoint::module_state(*torch::nn::Linear(3, 2));
  broken[1].second = torch::tensor({0.0f, std::nanf("")});
  CHECK_THROWS_WITH(dpunet::checkpoint::load_state(*model, broken, "w"), HasSubstr("bias: holds NaN or infinite"));
  // So would a finite float64 weight beyond float32's range, once converted.
  broken[1].second = torch::tensor({0.0, 1e300}, torch::kDouble);
  CHECK_THROWS_WITH(dpunet::checkpoint::load_state(*model, broken, "w"),
                    HasSubstr("bias: holds values beyond Float's range (largest magnitude 1e+300)"));
  CHECK(torch::isfinite(model->bias).all().item<bool>());  // nothing was loaded
  // A BatchNorm's step count may be left out, as PyTorch's loader allows: it reads as 0.
  torch::nn::BatchNorm2d norm(2);
  norm->num_batches_tracked.fill_(7);
  dpunet::checkpoint::NamedTensors counted = dpunet::checkpoint::module_state(*norm), uncounted;
  for (const auto& [name, tensor] : counted) {
    if (name != "num_batches_tracked") uncounted.emplace_back(name, tensor.clone());
  }
  REQUIRE(uncounted.size() + 1 == counted.size());
  torch::nn::BatchNorm2d loaded(2);
  loaded->num_batches_tracked.fill_(3);
  dpunet::checkpoint::load_state(*loaded, uncounted, "w");
  CHECK(loaded->num_batches_tracked.item<int64_t>() == 0);
}
