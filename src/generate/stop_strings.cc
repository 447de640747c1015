#include "generate/stop_strings.h"

#include <algorithm>

#include "common/error.h"

namespace swa::generate {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

StopStrings::StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (size_t i = 0; i < stops_.size(); ++i) {
    if (stops_[i].empty()) ThrowInvalid("stop string " + std::to_string(i + 1) + " is empty");
  }
}

bool StopStrings::Push(uint8_t byte, std::string* released) {
  held_.push_back(static_cast<char>(byte));
  size_t longest = 0;
  for (const std::string& s : stops_) {
    if (s.size() > longest && EndsWith(held_, s)) longest = s.size();
  }
  if (longest > 0) {
    released->append(held_, 0, held_.size() - longest);
    held_.clear();
    return true;
  }
  // Keep the longest suffix that some stop string begins with.
  size_t keep = 0;
  for (size_t len = held_.size(); len > 0 && keep == 0; --len) {
    for (const std::string& s : stops_) {
      if (len < s.size() && held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  released->append(held_, 0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return false;
}

void StopStrings::Flush(std::string* released) {
  released->append(held_);
  held_.clear();
}

}  // namespace swa::generate
