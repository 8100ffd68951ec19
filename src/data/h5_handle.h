// HDF5 plumbing for the shard readers and writers: an RAII handle for every hid_t, the
// H5_CHECK macro (HDF5's own error stack becomes one dpunet::Error line that names the
// file), silencing of HDF5's automatic stack dumps, and the lock that serialises HDF5
// calls when the library was built without thread safety.
#pragma once

#include <hdf5.h>

#include <mutex>
#include <string>

#include "common/error.h"

namespace dpunet::data {

// Owns one HDF5 identifier (file, dataset, dataspace, property list, attribute, type)
// and releases it with H5Idec_ref, which works for every kind of identifier.
class H5Handle {
 public:
  H5Handle() = default;
  explicit H5Handle(hid_t id) : id_(id) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& other) noexcept : id_(other.id_) { other.id_ = H5I_INVALID_HID; }
  H5Handle& operator=(H5Handle&& other) noexcept;
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Keeps HDF5 from closing what is still open when the process exits (its atexit cleanup):
// an object whose close failed (a write to a full disk) crashes that cleanup in HDF5
// 1.10, turning a clear error into a segfault. dpunet closes its files itself, so the
// cleanup has nothing else to do. Call before any other HDF5 call; later it does nothing.
void skip_hdf5_exit_cleanup();

// Turns off HDF5's printing of its error stack for the calling thread (the setting is
// per thread in thread-safe builds). Cheap after the first call on a thread.
void silence_hdf5_errors();

// Held around HDF5 calls: a real lock when the library is not thread-safe, a no-op lock
// otherwise (a thread-safe HDF5 takes its own global lock). Recursive, because handles
// are released (H5Handle::reset takes it too) inside guarded scopes.
std::unique_lock<std::recursive_mutex> hdf5_guard();

namespace detail {
inline bool h5_ok(long long status) {
  return status >= 0;
}

// Describes the failure on the calling thread's HDF5 error stack, prefixed by what was
// being accessed ("shard.h5: truncated file ..."), then clears the stack.
struct H5Describe {
  const std::string& context;
  std::string operator()(long long status) const;
};
}  // namespace detail

}  // namespace dpunet::data

// Checks an HDF5 call (a negative hid_t/herr_t/htri_t is a failure); `context` names the
// file (and object) so the error says where.
// (Not DPUNET_CHECK_CALL: its message would quote the cast to a status as part of the call.)
#define H5_CHECK(call, context)                                                                                   \
  do {                                                                                                            \
    const long long dpunet_h5_status_ = static_cast<long long>(call);                                             \
    if (!::dpunet::data::detail::h5_ok(dpunet_h5_status_)) {                                                      \
      ::dpunet::detail::throw_call_error(                                                                         \
          __FILE__, __LINE__,                                                                                     \
          ::dpunet::detail::concat(#call,                                                                         \
                                   " failed: ", ::dpunet::data::detail::H5Describe{context}(dpunet_h5_status_))); \
    }                                                                                                             \
  } while (0)
