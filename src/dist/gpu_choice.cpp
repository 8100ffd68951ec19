// rank_among_same_gpus: the node's ranks split by what CUDA_VISIBLE_DEVICES says.
#include "dist/gpu_choice.h"

#include <cstdlib>
#include <string>

#include "common/text.h"
#include "dist/mpi_check.h"

namespace dpunet::dist {

int rank_among_same_gpus(MPI_Comm node) {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  // Unset and set empty (no GPU) differ; the hash's chance of joining two sets is nil.
  const std::string key = visible == nullptr ? "unset" : std::string("=") + visible;
  const int colour = static_cast<int>(fnv1a(key) & 0x7fffffffu);
  int local_rank = 0;
  MPI_CHECK(MPI_Comm_rank(node, &local_rank));
  MPI_Comm same = MPI_COMM_NULL;
  MPI_CHECK(MPI_Comm_split(node, colour, local_rank, &same));
  int position = 0;
  const int status = MPI_Comm_rank(same, &position);
  MPI_Comm_free(&same);
  MPI_CHECK(status);
  return position;
}

}  // namespace dpunet::dist
