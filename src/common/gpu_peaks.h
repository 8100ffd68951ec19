// The dense bf16 tensor-core peak of known NVIDIA GPUs, for model FLOP utilisation
// without a hand-given figure (NVIDIA's data sheets; the sparse figures halved).
#pragma once

#include <optional>
#include <string>

namespace dpunet {

// By the name CUDA reports ("NVIDIA H100 PCIe", "NVIDIA A100-SXM4-80GB"); none for a
// GPU not in the table.
std::optional<double> bf16_dense_peak_tflops(const std::string& gpu_name);

}  // namespace dpunet
