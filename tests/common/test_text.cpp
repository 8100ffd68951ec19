// File-name helpers: extensions compared without case, from the file name alone.
#include "support/catch.h"

#include "common/text.h"

TEST_CASE("a file's extension is its name's last, in lower case", "[common]") {
  CHECK(dpunet::lower_extension("scans/A.PNG") == ".png");
  CHECK(dpunet::lower_extension("w.SafeTensors") == ".safetensors");
  CHECK(dpunet::lower_extension("x.ome.TIF") == ".tif");
  CHECK(dpunet::lower_extension("run.v2/weights").empty());  // a folder's dot is not the file's
  CHECK(dpunet::lower_extension("noext").empty());
}

TEST_CASE("edit distance counts the insertions, deletions and substitutions between names", "[common]") {
  CHECK(dpunet::edit_distance("train", "train") == 0);
  CHECK(dpunet::edit_distance("trian", "train") == 1);  // a swap is one slip
  CHECK(dpunet::edit_distance("stpes", "steps") == 1);
  CHECK(dpunet::edit_distance("ab", "ba") == 1);
  CHECK(dpunet::edit_distance("imprt", "import") == 1);
  CHECK(dpunet::edit_distance("", "lr") == 2);
}
