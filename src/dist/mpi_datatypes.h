// How tensors travel over MPI: the MPI datatype for a torch dtype, and sum operations for
// the 16-bit float types MPI does not know (bf16/fp16 wire compression).
#pragma once

#include <mpi.h>

#include <c10/core/ScalarType.h>

namespace dpunet::dist {

// Summation ops for bf16 and fp16 carried as 16-bit words. Created once per communicator
// (after MPI_Init) and freed with it.
class HalfSumOps {
 public:
  HalfSumOps();
  ~HalfSumOps();
  HalfSumOps(const HalfSumOps&) = delete;
  HalfSumOps& operator=(const HalfSumOps&) = delete;

  // MPI_SUM for the types MPI sums itself, the matching half op for bf16/fp16.
  MPI_Op sum_for(c10::ScalarType type) const;

 private:
  MPI_Op bf16_sum_ = MPI_OP_NULL;
  MPI_Op fp16_sum_ = MPI_OP_NULL;
};

// The datatype an element of `type` travels as; throws for types dpunet does not send.
MPI_Datatype mpi_datatype(c10::ScalarType type);

}  // namespace dpunet::dist
