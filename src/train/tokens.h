// The byte-level vocabulary of DESIGN.md section 5: bytes 0..255, then three specials.
#pragma once

#include <cstdint>

namespace swa::train {

inline constexpr int32_t kBos = 256;  // begins every document
inline constexpr int32_t kEos = 257;  // ends every document
inline constexpr int32_t kPad = 258;  // fills; as a target it means "nothing is predicted here"

}  // namespace swa::train
