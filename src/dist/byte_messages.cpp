// send_bytes and receive_bytes.
#include "dist/byte_messages.h"

#include <algorithm>

#include "dist/mpi_check.h"

namespace dpunet::dist {
namespace {

// Well under INT_MAX, so that every piece's count fits MPI's int.
constexpr size_t kPiece = size_t{1} << 30;

}  // namespace

void send_bytes(const void* data, size_t size, int to, int tag, MPI_Comm comm) {
  const auto* bytes = static_cast<const char*>(data);
  size_t sent = 0;
  do {  // an empty message is sent too: the receiver waits for one
    const size_t piece = std::min(kPiece, size - sent);
    MPI_CHECK(MPI_Send(bytes + sent, static_cast<int>(piece), MPI_BYTE, to, tag, comm));
    sent += piece;
  } while (sent < size);
}

void receive_bytes(void* data, size_t size, int from, int tag, MPI_Comm comm) {
  auto* bytes = static_cast<char*>(data);
  size_t received = 0;
  do {
    const size_t piece = std::min(kPiece, size - received);
    // Its length first: a longer piece received into this one's room would be MPI's
    // truncation error, which names neither length.
    MPI_Status status;
    MPI_CHECK(MPI_Probe(from, tag, comm, &status));
    int count = 0;
    MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &count));
    DPUNET_CHECK(static_cast<size_t>(count) == piece, "rank ", from, " sent a piece of ", count, " bytes, ", piece,
                 " were expected (", size, " in all)");
    MPI_CHECK(MPI_Recv(bytes + received, static_cast<int>(piece), MPI_BYTE, from, tag, comm, MPI_STATUS_IGNORE));
    received += piece;
  } while (received < size);
}

}  // namespace dpunet::dist
