// Error reporting inside the library: code throws swa::Error (swa.hpp); the C entry
// points catch it and keep its message as the thread's last error.
#pragma once

#include <stdexcept>
#include <string>

#include "swa/swa.hpp"

namespace swa {

[[noreturn]] inline void ThrowInvalid(const std::string& message) {
  throw Error(SWA_ERR_INVALID_ARGUMENT, message);
}

// Sets the calling thread's last-error message (read back by swa_last_error()).
void SetLastError(const std::string& message);
const char* LastError();

// Runs `body`, converting every exception into a return code and a message, so that no
// exception ever crosses the C ABI.
template <class Body>
int GuardCall(Body&& body) {
  try {
    body();
    return SWA_OK;
  } catch (const Error& s) {
    SetLastError(s.what());
    return s.code();
  } catch (const std::bad_alloc&) {
    SetLastError("out of memory");
    return SWA_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    SetLastError(std::string("internal error: ") + e.what());
    return SWA_ERR_INTERNAL;
  } catch (...) {
    SetLastError("internal error: unknown exception");
    return SWA_ERR_INTERNAL;
  }
}

}  // namespace swa
