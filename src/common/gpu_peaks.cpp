// bf16_dense_peak_tflops.
#include "common/gpu_peaks.h"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <vector>

namespace dpunet {
namespace {

struct KnownGpu {
  const char* model;      // a word of the name
  const char* qualifier;  // another word it must have, or empty: the SXM part
  double tflops;
};

// The first entry whose words the name holds; qualified entries before plain ones.
constexpr KnownGpu kKnownGpus[] = {
    {"H100", "PCIe", 756}, {"H100", "NVL", 835}, {"H100", "", 989},  {"H200", "NVL", 835},
    {"H200", "", 989},     {"GH200", "", 989},   {"B200", "", 2250}, {"A100", "", 312},
    {"L40S", "", 362},     {"L40", "", 181},     {"L4", "", 121},    {"A10", "", 125},
};

// In upper case: "A100-PCIE-40GB" and "A100 80GB PCIe" name one kind of part.
std::vector<std::string> words(const std::string& name) {
  std::string spaced = name;
  std::replace(spaced.begin(), spaced.end(), '-', ' ');
  for (char& c : spaced) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::istringstream in(spaced);
  std::vector<std::string> found;
  for (std::string w; in >> w;) found.push_back(w);
  return found;
}

}  // namespace

std::optional<double> bf16_dense_peak_tflops(const std::string& gpu_name) {
  const std::vector<std::string> w = words(gpu_name);
  const auto has = [&](const char* word) {
    std::string upper = word;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return std::find(w.begin(), w.end(), upper) != w.end();
  };
  // A MIG slice ("H100 80GB HBM3 MIG 3g.40gb") has a share of the part's SMs: its peak is
  // not the table's, and a figure for the whole part would understate utilisation.
  if (has("MIG")) return std::nullopt;
  for (const KnownGpu& gpu : kKnownGpus) {
    if (has(gpu.model) && (gpu.qualifier[0] == '\0' || has(gpu.qualifier))) return gpu.tflops;
  }
  return std::nullopt;
}

}  // namespace dpunet
