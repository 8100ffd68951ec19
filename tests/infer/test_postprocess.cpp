// --keep-largest: of each chosen class only its largest 8-connected region stays; the
// foreground mode takes all foreground classes as one.
#include <torch/torch.h>
#include "support/catch.h"

#include "infer/postprocess.h"

using dpunet::infer::keep_largest_regions;
using dpunet::infer::parse_keep_largest;

namespace {

torch::Tensor labels_of(const std::vector<std::vector<int>>& rows) {
  torch::Tensor t =
      torch::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())}, torch::kByte);
  for (size_t y = 0; y < rows.size(); ++y)
    for (size_t x = 0; x < rows[y].size(); ++x) t[y][x] = rows[y][x];
  return t;
}

}  // namespace

TEST_CASE("keep-largest leaves each chosen class its largest region", "[infer]") {
  // Class 1: a region of 4 (with a pixel touching it at a corner) and one of 2; class 2:
  // two regions of 1.
  const torch::Tensor before = labels_of({{1, 1, 0, 0, 2},  //
                                          {1, 0, 0, 0, 0},  //
                                          {0, 1, 0, 1, 1},  //
                                          {0, 0, 0, 0, 2}});
  torch::Tensor only_1 = before.clone();
  keep_largest_regions(only_1, parse_keep_largest("1", 3));
  CHECK(torch::equal(only_1, labels_of({{1, 1, 0, 0, 2},  //
                                        {1, 0, 0, 0, 0},  //
                                        {0, 1, 0, 0, 0},  //
                                        {0, 0, 0, 0, 2}})));
  torch::Tensor all = before.clone();
  keep_largest_regions(all, parse_keep_largest("all", 3));
  // Of class 2's equal regions, the first in row order stays.
  CHECK(torch::equal(all, labels_of({{1, 1, 0, 0, 2},  //
                                     {1, 0, 0, 0, 0},  //
                                     {0, 1, 0, 0, 0},  //
                                     {0, 0, 0, 0, 0}})));
  // The foreground as a whole: the right-hand 1s and 2 touch and make a region of 3,
  // smaller than the left one (4), so it goes, classes and all; the lone 2 goes too.
  torch::Tensor foreground = before.clone();
  keep_largest_regions(foreground, parse_keep_largest("foreground", 3));
  CHECK(torch::equal(foreground, labels_of({{1, 1, 0, 0, 0},  //
                                            {1, 0, 0, 0, 0},  //
                                            {0, 1, 0, 0, 0},  //
                                            {0, 0, 0, 0, 0}})));
  // Nothing of a class: nothing changes.
  torch::Tensor none = torch::zeros({3, 3}, torch::kByte);
  keep_largest_regions(none, parse_keep_largest("all", 3));
  CHECK(none.sum().item<int>() == 0);
}

TEST_CASE("keep-largest names what it cannot read", "[infer]") {
  CHECK(parse_keep_largest("1,3", 4).classes == std::vector<int64_t>{1, 3});
  CHECK(parse_keep_largest("all", 4).classes == std::vector<int64_t>{1, 2, 3});
  CHECK_FALSE(parse_keep_largest("", 4).any());
  CHECK_THROWS_WITH(parse_keep_largest("0", 4), HasSubstr("class 0 is not a foreground class of this 4-class model"));
  CHECK_THROWS_WITH(parse_keep_largest("4", 4), HasSubstr("(1 to 3)"));
  CHECK_THROWS_WITH(parse_keep_largest("1,x", 4), HasSubstr("'x' is not a class id"));
  CHECK_THROWS_WITH(parse_keep_largest("1,", 4), HasSubstr("'' is not a class id"));
  CHECK_THROWS_WITH(parse_keep_largest("2,2", 4), HasSubstr("class 2 is given twice"));
}
