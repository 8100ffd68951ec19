// The bf16 peak table: names as CUDA reports them pick the right part, and a GPU not in
// the table gets no figure rather than a neighbour's.
#include "support/catch.h"

#include "common/gpu_peaks.h"

TEST_CASE("a GPU's bf16 dense peak is found by the name CUDA reports", "[common]") {
  using dpunet::bf16_dense_peak_tflops;
  CHECK(bf16_dense_peak_tflops("NVIDIA H100 80GB HBM3") == 989);
  CHECK(bf16_dense_peak_tflops("NVIDIA H100 PCIe") == 756);
  CHECK(bf16_dense_peak_tflops("NVIDIA H100 NVL") == 835);
  CHECK(bf16_dense_peak_tflops("NVIDIA H200") == 989);
  CHECK(bf16_dense_peak_tflops("NVIDIA H200 NVL") == 835);
  CHECK(bf16_dense_peak_tflops("NVIDIA GH200 480GB") == 989);
  CHECK(bf16_dense_peak_tflops("NVIDIA A100-SXM4-80GB") == 312);
  CHECK(bf16_dense_peak_tflops("NVIDIA A100 80GB PCIe") == 312);
  CHECK(bf16_dense_peak_tflops("NVIDIA L40S") == 362);
  CHECK(bf16_dense_peak_tflops("NVIDIA L4") == 121);
  CHECK(bf16_dense_peak_tflops("NVIDIA A10") == 125);
  CHECK_FALSE(bf16_dense_peak_tflops("NVIDIA A10G"));  // another part, not in the table
  CHECK_FALSE(bf16_dense_peak_tflops("Tesla V100-SXM2-16GB"));
  CHECK_FALSE(bf16_dense_peak_tflops(""));
  // Case as the driver happens to write it.
  CHECK(bf16_dense_peak_tflops("NVIDIA H100 PCIE") == 756);
  CHECK(bf16_dense_peak_tflops("nvidia h100 nvl") == 835);
  // A MIG slice has part of the SMs: no figure (bench takes --peak-tflops).
  CHECK_FALSE(bf16_dense_peak_tflops("NVIDIA H100 80GB HBM3 MIG 3g.40gb"));
  CHECK_FALSE(bf16_dense_peak_tflops("NVIDIA A100-SXM4-80GB MIG 1g.10gb"));
}
