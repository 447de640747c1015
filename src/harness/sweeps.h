// The sweeps of the contract shared by the forward and backward tests (and any other
// mode that takes an AttnCase): one list per dimension of docs/ATTENTION.md. Lengths
// above 256 make the backward cross its key segments; 1025 crosses many blocks.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/attention_case.h"

namespace swa::harness {

// head_dim {1, 7, 16, 59, 64, 80, 128, 256} x every dtype.
std::vector<AttnCase> HeadDimCases();
// Lengths {1, 7, 63, 64, 65, 257, 1025}, causal and sliding.
std::vector<AttnCase> LengthCases();
// Lq < Lk (decode, chunked prefill) and Lq > Lk (rows that see nothing), empty sides.
std::vector<AttnCase> AsymmetricLengthCases();
// Windows at the edges {0, 1, 2, L-1, L, L+1, -1} on both sides, causal or not.
std::vector<AttnCase> WindowEdgeCases();
// Narrow, wide and global heads in one call.
std::vector<AttnCase> PerHeadWindowCases();
// Chunks of 32 and 64 with overlap 0, C/8, C/4 and C.
std::vector<AttnCase> ChunkCases();
// GQA ratios 1, 2, 4 and MQA, every dtype.
std::vector<AttnCase> GroupedQueryCases();
// Several packed sequences, some empty, with the rule's extras.
std::vector<AttnCase> VarlenCases();
// Sink tokens, learned sink logits, global tokens, ALiBi, softcap and scale.
std::vector<AttnCase> ExtrasCases();
// Padded and head-major (transposed) views, every dtype.
std::vector<AttnCase> StridedLayoutCases();
// Zero batch or zero length.
std::vector<AttnCase> EmptyShapeCases();
// `count` random combinations of everything, lengths up to max_len.
std::vector<AttnCase> RandomCases(uint64_t seed, int count, int64_t max_len);

}  // namespace swa::harness
