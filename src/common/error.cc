#include "common/error.h"

namespace swa {
namespace {
thread_local std::string g_last_error;
}  // namespace

void SetLastError(const std::string& message) { g_last_error = message; }
const char* LastError() { return g_last_error.c_str(); }

}  // namespace swa
