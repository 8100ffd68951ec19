// Axis labels: enough digits that neighbouring ticks never read alike.
#include "support/catch.h"

#include "common/tick_labels.h"

using dpunet::tick_labels;
using Labels = std::vector<std::string>;

TEST_CASE("tick labels carry the digits their spacing needs", "[common]") {
  CHECK(tick_labels({0, 0.25, 0.5, 0.75, 1}) == Labels{"0.00", "0.25", "0.50", "0.75", "1.00"});
  CHECK(tick_labels({2390, 2391, 2392, 2393, 2394}) == Labels{"2390.0", "2391.0", "2392.0", "2393.0", "2394.0"});
  CHECK(tick_labels({0.1234, 0.12345, 0.1235, 0.12355, 0.1236}) ==
        Labels{"0.123400", "0.123450", "0.123500", "0.123550", "0.123600"});
  CHECK(tick_labels({100, 1325, 2550, 3775, 5000}) == Labels{"100", "1325", "2550", "3775", "5000"});
  CHECK(tick_labels({-0.5, -1e-17, 0.5}) == Labels{"-0.50", "0.00", "0.50"});
  CHECK(tick_labels({-0.004, 0.246, 0.496}) == Labels{"0.00", "0.25", "0.50"});  // rounds to zero from below
}

TEST_CASE("tick labels far from one use exponents that still tell the ticks apart", "[common]") {
  CHECK(tick_labels({-1e308, -5e307, 0, 5e307, 1e308}) == Labels{"-1e+308", "-5e+307", "0", "5e+307", "1e+308"});
  CHECK(tick_labels({1e-300, 1.25e-300, 1.5e-300}) == Labels{"1e-300", "1.25e-300", "1.5e-300"});
  CHECK(tick_labels({1.5e9, 1.5e9 + 250, 1.5e9 + 500}) == Labels{"1.5e+09", "1.50000025e+09", "1.5000005e+09"});
  CHECK(tick_labels({3, 3}) == Labels{"3", "3"});  // no spacing: short form
}
