// send_bytes and receive_bytes between ranks 0 and 1: the bytes arrive as sent, an empty
// message included, and a message of another length is an error naming both lengths.
#include "support/catch.h"

#include <mpi.h>

#include <string>
#include <vector>

#include "dist/byte_messages.h"
#include "support/mpi_test_context.h"

namespace dist = dpunet::dist;

TEST_CASE("byte messages arrive whole, and a message of another length is named as such", "[mpi]") {
  dist::Context& context = dpunet::test::mpi_context();
  if (context.world_size() < 2 || context.rank() > 1) return;
  constexpr int kTag = 71;
  const std::string sent = "a band of rows";
  if (context.rank() == 1) {
    dist::send_bytes(sent.data(), sent.size(), 0, kTag, context.world());
    dist::send_bytes(nullptr, 0, 0, kTag, context.world());
    dist::send_bytes(sent.data(), sent.size(), 0, kTag, context.world());  // longer than rank 0 expects
    dist::send_bytes(sent.data(), 4, 0, kTag, context.world());            // shorter
    return;
  }
  std::string received(sent.size(), '\0');
  dist::receive_bytes(received.data(), received.size(), 1, kTag, context.world());
  CHECK(received == sent);
  dist::receive_bytes(nullptr, 0, 1, kTag, context.world());
  std::vector<char> room(8);
  CHECK_THROWS_WITH(dist::receive_bytes(room.data(), room.size(), 1, kTag, context.world()),
                    HasSubstr("rank 1 sent a piece of 14 bytes, 8 were expected"));
  // The refused message is still there, whole.
  MPI_Recv(received.data(), static_cast<int>(received.size()), MPI_BYTE, 1, kTag, context.world(), MPI_STATUS_IGNORE);
  CHECK(received == sent);
  CHECK_THROWS_WITH(dist::receive_bytes(room.data(), room.size(), 1, kTag, context.world()),
                    HasSubstr("rank 1 sent a piece of 4 bytes, 8 were expected"));
  MPI_Recv(room.data(), 4, MPI_BYTE, 1, kTag, context.world(), MPI_STATUS_IGNORE);
}
