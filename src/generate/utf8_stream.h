// Turns a stream of bytes, produced one at a time, into text that is always valid UTF-8:
// the bytes of a character that spans several tokens are held back until the character
// is complete, and what is not UTF-8 becomes U+FFFD (the replacement character, bytes
// EF BF BD).
//
// Validity is that of the Unicode standard (table 3-7): no overlong forms, no surrogates
// (ED A0..BF), nothing above U+10FFFF. Each maximal subpart of an ill-formed sequence
// becomes one U+FFFD, as the Unicode standard recommends (section 3.9, "U+FFFD
// Substitution of Maximal Subparts") and browsers do: a byte that can never start a
// character (80..BF alone, C0, C1, F5..FF) is one U+FFFD; a valid start followed by a byte
// that cannot continue it is one U+FFFD for the bytes so far, and the byte that broke it
// is read again as a start. At the end, an incomplete character is one U+FFFD.
#pragma once

#include <cstdint>
#include <string>

namespace swa::generate {

inline constexpr char kReplacementCharacter[] = "\xEF\xBF\xBD";  // U+FFFD

class Utf8Stream {
 public:
  // Takes the next byte; appends to *out the text that it completes (possibly nothing).
  void Push(uint8_t byte, std::string* out);
  // The end of the stream: appends U+FFFD for an incomplete character, if one is held.
  void Finish(std::string* out);
  // Bytes held back (the start of a character), 0 to 3.
  int held() const { return static_cast<int>(held_.size()); }

 private:
  std::string held_;  // a valid prefix of one character
  int need_ = 0;      // its total length in bytes (2 to 4) while held_ is not empty
};

}  // namespace swa::generate
