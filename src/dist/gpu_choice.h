// Which of the GPUs it sees a rank takes.
#pragma once

#include <mpi.h>

namespace dpunet::dist {

// This rank's place among the ranks of `node` (one machine's) that see the same GPUs
// (the same CUDA_VISIBLE_DEVICES, or none set): collective over `node`. Usually every
// rank of a machine sees the same ones and this is its local rank; SLURM's --gpu-bind
// (closest, say) gives the tasks of a socket that socket's GPUs, and each rank must then
// count only the ranks that share its set, or two take the same GPU of it.
int rank_among_same_gpus(MPI_Comm node);

}  // namespace dpunet::dist
