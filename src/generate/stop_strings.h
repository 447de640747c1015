// Stop strings over a stream of output bytes: generation stops when the output ends with
// one of them, and the stop string itself is never printed. Bytes that may still turn out
// to be the start of a stop string are held back until they cannot.
//
// Held back is the longest suffix of the output that is a proper prefix of some stop
// string (every later match must begin inside it), so at most the longest stop string's
// length - 1 bytes wait. When the output ends with several stop strings at once, the
// longest is removed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace swa::generate {

class StopStrings {
 public:
  // Throws swa::Error for an empty stop string (it would stop before any output).
  explicit StopStrings(std::vector<std::string> stops);

  // Takes the next output byte; appends to *released the bytes that can no longer belong
  // to a stop string. Returns true when the output now ends with a stop string: the bytes
  // before it have been released, and the stop string is dropped.
  bool Push(uint8_t byte, std::string* released);
  // The end of the output: releases the bytes held back.
  void Flush(std::string* released);

 private:
  std::vector<std::string> stops_;
  std::string held_;
};

}  // namespace swa::generate
