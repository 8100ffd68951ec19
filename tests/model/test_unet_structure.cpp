// Unet structure against the PyTorch reference: parameter counts, state_dict names and
// shapes, and the errors for bad constructor arguments.
#include "support/catch.h"

#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"
#include "model/unet.h"
#include "model/unet_flops.h"

using dpunet::model::Norm;
using dpunet::model::Unet;
using dpunet::model::UnetOptions;

namespace {

int64_t parameter_count(Unet& net) {
  int64_t count = 0;
  for (const auto& p : net->parameters()) count += p.numel();
  return count;
}

std::string shape_of(const torch::Tensor& t) {
  if (t.dim() == 0) return "scalar";
  std::ostringstream out;
  for (int64_t i = 0; i < t.dim(); ++i) out << (i ? "x" : "") << t.size(i);
  return out.str();
}

// name -> shape, parameters and buffers together, like a PyTorch state_dict.
std::map<std::string, std::string> state_dict_shapes(Unet& net) {
  std::map<std::string, std::string> shapes;
  for (const auto& item : net->named_parameters()) shapes[item.key()] = shape_of(item.value());
  for (const auto& item : net->named_buffers()) shapes[item.key()] = shape_of(item.value());
  return shapes;
}

}  // namespace

TEST_CASE("Unet parameter counts equal the PyTorch reference", "[model]") {
  struct Case {
    int64_t n_channels;
    bool bilinear;
    int64_t expected;
  };
  for (const Case& c :
       {Case{3, false, 31037698}, Case{3, true, 17263042}, Case{1, false, 31036546}, Case{1, true, 17261890}}) {
    Unet net(c.n_channels, /*n_classes=*/2, c.bilinear);
    INFO("n_channels=" << c.n_channels << " bilinear=" << c.bilinear);
    CHECK(parameter_count(net) == c.expected);
  }
}

TEST_CASE("Unet state_dict names and shapes equal the PyTorch reference", "[model]") {
  std::ifstream file(DPUNET_TEST_FIXTURES_DIR "/unet_reference_state_dict.txt");
  REQUIRE(file.good());
  std::map<std::string, std::string> reference;
  std::string line;
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, shape;
    fields >> name >> shape;
    reference[name] = shape;
  }
  REQUIRE(reference.size() == 118);

  Unet net(/*n_channels=*/1, /*n_classes=*/2, /*bilinear=*/false);
  const auto ours = state_dict_shapes(net);
  for (const auto& [name, shape] : reference) {
    INFO(name);
    REQUIRE(ours.count(name) == 1);
    CHECK(ours.at(name) == shape);
  }
  CHECK(ours.size() == reference.size());
}

TEST_CASE("Unet options change widths, depth and norm layers", "[model]") {
  UnetOptions o;
  o.n_channels = 3;
  o.n_classes = 4;
  o.base_channels = 8;
  o.depth = 3;
  o.norm = Norm::kNone;
  Unet net(o);
  const auto shapes = state_dict_shapes(net);
  CHECK(shapes.at("inc.double_conv.0.weight") == "8x3x3x3");
  CHECK(shapes.at("inc.double_conv.0.bias") == "8");  // no norm: the conv keeps its bias
  CHECK(shapes.at("down3.maxpool_conv.1.double_conv.2.weight") == "64x64x3x3");
  CHECK(shapes.count("down4.maxpool_conv.1.double_conv.0.weight") == 0);
  CHECK(shapes.at("up3.up.weight") == "16x8x2x2");
  CHECK(shapes.at("outc.conv.weight") == "4x8x1x1");
  CHECK(net->named_buffers().size() == 0);

  o.norm = Norm::kGroup;
  Unet grouped(o);
  CHECK(state_dict_shapes(grouped).at("inc.double_conv.1.weight") == "8");
  o.norm = Norm::kInstance;
  Unet instance(o);
  CHECK(state_dict_shapes(instance).at("up1.conv.double_conv.4.bias") == "32");
}

TEST_CASE("Unet takes an odd base width, bilinear or not", "[model]") {
  UnetOptions o;
  o.n_classes = 2;
  o.base_channels = 3;
  o.depth = 3;
  for (const bool bilinear : {false, true}) {
    INFO("bilinear=" << bilinear);
    o.bilinear = bilinear;
    Unet net(o);
    const auto shapes = state_dict_shapes(net);
    // Bilinear halves the widths below the first level: 24 -> 12 at the bottom.
    CHECK(shapes.at("down3.maxpool_conv.1.double_conv.3.weight") == (bilinear ? "12x12x3x3" : "24x24x3x3"));
    CHECK(shapes.at("up2.conv.double_conv.3.weight") == (bilinear ? "3x6x3x3" : "6x6x3x3"));
    CHECK(shapes.at("up3.conv.double_conv.0.weight") == "3x6x3x3");
    CHECK(shapes.at("outc.conv.weight") == "2x3x1x1");
    const torch::Tensor x = torch::randn({2, 1, 20, 20});
    const torch::Tensor y = net->forward(x);
    CHECK(y.sizes() == torch::IntArrayRef({2, 2, 20, 20}));
    y.sum().backward();
    for (const auto& p : net->parameters()) CHECK(p.grad().defined());
  }
}

TEST_CASE("Unet rejects bad constructor arguments with a message", "[model]") {
  CHECK_THROWS_WITH(Unet(0, 2), HasSubstr("n_channels must be > 0, got 0"));
  CHECK_THROWS_WITH(Unet(1, -1), HasSubstr("n_classes must be > 0, got -1"));
  UnetOptions o;
  o.base_channels = 0;
  CHECK_THROWS_WITH(Unet(o), HasSubstr("base_channels must be in [1, 4096], got 0"));
  o.base_channels = int64_t{1} << 62;  // base * 2^depth would overflow
  CHECK_THROWS_WITH(Unet(o), HasSubstr("base_channels must be in [1, 4096], got 4611686018427387904"));
  o.base_channels = 8;
  o.depth = 0;
  CHECK_THROWS_WITH(Unet(o), HasSubstr("depth must be in [1, 8]"));
  CHECK_THROWS_WITH(dpunet::model::parse_norm("layer"), HasSubstr("unknown norm 'layer'"));
  CHECK_THROWS_WITH(dpunet::model::parse_padding("full"), HasSubstr("unknown padding 'full'"));
}

TEST_CASE("forward FLOPs follow the layer shapes", "[model]") {
  dpunet::model::UnetOptions o;
  o.n_channels = 1;
  o.n_classes = 2;
  o.base_channels = 2;
  o.depth = 1;
  // inc 576 + 1152, down1 576 + 1152, up: transposed 256 + 2304 + 1152, outc 128 (by hand).
  CHECK(dpunet::model::unet_forward_flops(o, 4) == 7296.0);
  // Valid padding, input 20: maps 18, 16 | 6, 4 | up to 8, then 6, 4 (by hand).
  o.padding = dpunet::model::Padding::kValid;
  CHECK(dpunet::model::unet_forward_flops(o, 20) == 11664.0 + 18432 + 5184 + 4608 + 1024 + 5184 + 1152 + 128);
  CHECK_THROWS_WITH(dpunet::model::unet_forward_flops(o, 21), HasSubstr("does not suit"));
}

TEST_CASE("forward FLOPs are those of the model's own convolutions, bilinear or not", "[model]") {
  // Same padding: a level-l map is input / 2^l. Each convolution costs 2 x its weights x
  // its output pixels; a transposed one 2 x its weights x its input pixels.
  for (const bool bilinear : {false, true}) {
    INFO("bilinear " << bilinear);
    dpunet::model::UnetOptions o;
    o.n_channels = 3;
    o.n_classes = 4;
    o.base_channels = 4;
    o.depth = 3;
    o.bilinear = bilinear;
    const int64_t input = 32;
    dpunet::model::Unet net(o);
    double expected = 0;
    for (const auto& item : net->named_parameters()) {
      const std::string& name = item.key();
      const torch::Tensor& w = item.value();
      if (w.dim() != 4) continue;  // biases, norms
      const std::string block = name.substr(0, name.find('.'));
      int64_t level = 0;  // inc, outc
      if (block.rfind("down", 0) == 0) level = std::stoll(block.substr(4));
      if (block.rfind("up", 0) == 0) level = o.depth - std::stoll(block.substr(2));
      const bool transposed = name.find(".up.") != std::string::npos;
      const int64_t side = input >> (transposed ? level + 1 : level);
      expected += 2.0 * static_cast<double>(w.numel() * side * side);
    }
    CHECK(dpunet::model::unet_forward_flops(o, input) == expected);
  }
}
