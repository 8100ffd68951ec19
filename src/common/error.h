// dpunet's one exception type and the check macros built on it. Every failed check says
// what was called or expected and where (file:line); failed library calls also name the
// rank and host.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace dpunet {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by every rank at the same point, after a collective told each of them: the
// ranks then finalise MPI together and exit 1, instead of aborting the job (which
// prints MPI's own report). Rank 0 prints its message; the others only when theirs says
// something rank 0's does not (`rank_specific`), such as what this rank sees differently.
class AgreedError : public Error {
 public:
  AgreedError(const std::string& what, bool rank_specific) : Error(what), rank_specific_(rank_specific) {}
  bool rank_specific() const { return rank_specific_; }

 private:
  bool rank_specific_;
};

namespace detail {
// Builds a message from any streamable parts; empty when there are none.
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

[[noreturn]] void throw_error(const char* file, int line, const std::string& what);
// As throw_error, naming the rank and host too: for failed library calls.
[[noreturn]] void throw_call_error(const char* file, int line, const std::string& what);
[[noreturn]] void throw_agreed_error(const char* file, int line, const std::string& what, bool rank_specific);
}  // namespace detail

}  // namespace dpunet

// Throws dpunet::Error("<message> (file:line)") unless `cond` holds.
#define DPUNET_CHECK(cond, ...)                                                                 \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      ::dpunet::detail::throw_error(__FILE__, __LINE__, ::dpunet::detail::concat(__VA_ARGS__)); \
    }                                                                                           \
  } while (0)

// Throws dpunet::Error unconditionally.
#define DPUNET_FAIL(...) ::dpunet::detail::throw_error(__FILE__, __LINE__, ::dpunet::detail::concat(__VA_ARGS__))

// Throws dpunet::AgreedError: only where every rank reaches the same throw together.
#define DPUNET_FAIL_ON_EVERY_RANK(rank_specific, ...) \
  ::dpunet::detail::throw_agreed_error(__FILE__, __LINE__, ::dpunet::detail::concat(__VA_ARGS__), rank_specific)

// Generic library-call check: `call` returns a status; `ok(status)` tells success and
// `describe(status)` explains a failure. The MPI/NCCL/CUDA/H5 macros are built on it.
#define DPUNET_CHECK_CALL(call, ok, describe)                                                                     \
  do {                                                                                                            \
    auto dpunet_status_ = (call);                                                                                 \
    if (!(ok(dpunet_status_))) {                                                                                  \
      ::dpunet::detail::throw_call_error(__FILE__, __LINE__,                                                      \
                                         ::dpunet::detail::concat(#call, " failed: ", describe(dpunet_status_))); \
    }                                                                                                             \
  } while (0)
