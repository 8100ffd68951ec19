// HDF5 handle, error-stack and locking helpers (see h5_handle.h).
#include "data/h5_handle.h"

#include <vector>

namespace dpunet::data {

H5Handle& H5Handle::operator=(H5Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void H5Handle::reset() {
  if (id_ >= 0) {
    silence_hdf5_errors();
    auto guard = hdf5_guard();
    H5Idec_ref(id_);  // a failure here cannot be acted on; the stack is cleared later
    id_ = H5I_INVALID_HID;
  }
}

void skip_hdf5_exit_cleanup() {
  H5dont_atexit();
}

void silence_hdf5_errors() {
  thread_local bool silenced = false;
  if (!silenced) {
    auto guard = hdf5_guard();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
}

std::unique_lock<std::recursive_mutex> hdf5_guard() {
  static const bool thread_safe = [] {
    hbool_t safe = false;
    return H5is_library_threadsafe(&safe) >= 0 && safe;
  }();
  static std::recursive_mutex mutex;
  if (thread_safe) return std::unique_lock<std::recursive_mutex>(mutex, std::defer_lock);
  return std::unique_lock<std::recursive_mutex>(mutex);
}

namespace detail {
namespace {
herr_t collect_message(unsigned /*depth*/, const H5E_error2_t* entry, void* out) {
  if (entry->desc != nullptr && entry->desc[0] != '\0') {
    static_cast<std::vector<std::string>*>(out)->emplace_back(entry->desc);
  }
  return 0;
}

// A failed read or write's innermost entry spells out the system call (time, descriptor,
// buffer address, sizes); its "error message = '...'" is the part that says why.
std::string plain_system_error(const std::string& message) {
  const std::string key = "error message = '";
  const size_t at = message.find(key), end = message.find('\'', at == std::string::npos ? at : at + key.size());
  if (at == std::string::npos || end == std::string::npos) return message;
  const size_t details = message.find(": time = ");
  return (details == std::string::npos ? std::string() : message.substr(0, details) + ": ") +
         message.substr(at + key.size(), end - at - key.size());
}
}  // namespace

std::string H5Describe::operator()(long long /*status*/) const {
  std::vector<std::string> messages;  // outermost (the API call) first
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_message, &messages);
  H5Eclear2(H5E_DEFAULT);
  std::string reason = "HDF5 error";
  if (!messages.empty()) {
    reason = messages.front();
    // The innermost entry says why ("file signature not found", "truncated file ...").
    if (messages.size() > 1) reason += ": " + plain_system_error(messages.back());
  }
  return context + ": " + reason;
}
}  // namespace detail

}  // namespace dpunet::data
