// Torch dtype -> MPI datatype, and bf16/fp16 summation as MPI user ops.
#include "dist/mpi_datatypes.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "dist/mpi_check.h"

namespace dpunet::dist {
namespace {

// MPI user-op signature: inout[i] = in[i] + inout[i], accumulated in float.
template <typename Half>
void half_sum(void* in, void* inout, int* count, MPI_Datatype* /*type*/) {
  const auto* a = static_cast<const Half*>(in);
  auto* b = static_cast<Half*>(inout);
  const int n = *count;  // read once: the stores below could alias it as far as the compiler knows
  for (int i = 0; i < n; ++i) b[i] = Half(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

}  // namespace

HalfSumOps::HalfSumOps() {
  MPI_CHECK(MPI_Op_create(&half_sum<c10::BFloat16>, /*commute=*/1, &bf16_sum_));
  MPI_CHECK(MPI_Op_create(&half_sum<c10::Half>, /*commute=*/1, &fp16_sum_));
}

HalfSumOps::~HalfSumOps() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (bf16_sum_ != MPI_OP_NULL) MPI_Op_free(&bf16_sum_);
  if (fp16_sum_ != MPI_OP_NULL) MPI_Op_free(&fp16_sum_);
}

MPI_Op HalfSumOps::sum_for(c10::ScalarType type) const {
  if (type == c10::kBFloat16) return bf16_sum_;
  if (type == c10::kHalf) return fp16_sum_;
  return MPI_SUM;
}

MPI_Datatype mpi_datatype(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat: return MPI_FLOAT;
    case c10::kDouble: return MPI_DOUBLE;
    case c10::kInt: return MPI_INT32_T;
    case c10::kLong: return MPI_INT64_T;
    case c10::kByte: return MPI_UINT8_T;
    case c10::kChar: return MPI_INT8_T;
    case c10::kBool: return MPI_C_BOOL;
    // Carried as 16-bit words; only HalfSumOps know how to add them.
    case c10::kBFloat16:
    case c10::kHalf: return MPI_UINT16_T;
    default: DPUNET_FAIL("MPI communicator: tensors of type ", c10::toString(type), " are not supported");
  }
}

}  // namespace dpunet::dist
