#include "generate/utf8_stream.h"

namespace swa::generate {
namespace {

// Length of the character a lead byte starts (1 to 4), or 0 when it starts none.
int LeadLength(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;  // a continuation byte, C0, C1 (overlong) or F5..FF (beyond U+10FFFF)
}

// Whether `b` may follow `held` (a valid proper prefix of a character). The second byte's
// range depends on the lead (Unicode table 3-7); later bytes are any of 80..BF.
bool Continues(const std::string& held, uint8_t b) {
  if (b < 0x80 || b > 0xBF) return false;
  if (held.size() > 1) return true;
  switch (static_cast<uint8_t>(held[0])) {
    case 0xE0:
      return b >= 0xA0;  // no overlong 3-byte forms
    case 0xED:
      return b <= 0x9F;  // no surrogates D800..DFFF
    case 0xF0:
      return b >= 0x90;  // no overlong 4-byte forms
    case 0xF4:
      return b <= 0x8F;  // nothing above U+10FFFF
    default:
      return true;
  }
}

}  // namespace

void Utf8Stream::Push(uint8_t byte, std::string* out) {
  if (!held_.empty()) {
    if (Continues(held_, byte)) {
      held_.push_back(static_cast<char>(byte));
      if (static_cast<int>(held_.size()) == need_) {
        out->append(held_);
        held_.clear();
      }
      return;
    }
    // The held bytes are a maximal subpart: one U+FFFD; the byte is read again as a start.
    out->append(kReplacementCharacter);
    held_.clear();
  }
  const int length = LeadLength(byte);
  if (length == 0) {
    out->append(kReplacementCharacter);
  } else if (length == 1) {
    out->push_back(static_cast<char>(byte));
  } else {
    held_.push_back(static_cast<char>(byte));
    need_ = length;
  }
}

void Utf8Stream::Finish(std::string* out) {
  if (held_.empty()) return;
  out->append(kReplacementCharacter);
  held_.clear();
}

}  // namespace swa::generate
