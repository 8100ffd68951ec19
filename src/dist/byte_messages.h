// Point-to-point messages of any length between two ranks over MPI: one MPI message
// carries at most INT_MAX elements, so longer ones go in pieces. For host memory only
// (a band of a slide's class labels going to the rank that writes the slide).
#pragma once

#include <mpi.h>

#include <cstddef>

namespace dpunet::dist {

// Blocks until `to` has received it all (or MPI has buffered it).
void send_bytes(const void* data, size_t size, int to, int tag, MPI_Comm comm);
// Blocks until `size` bytes from `from` have arrived; a message of another length from
// it is an error naming both lengths.
void receive_bytes(void* data, size_t size, int from, int tag, MPI_Comm comm);

}  // namespace dpunet::dist
