#include "attention/entry.h"

#include "attention/cpu/backward.h"
#include "attention/cpu/forward.h"
#include "attention/cpu/forward_decode.h"
#include "common/error.h"

namespace swa::attention {
namespace {

[[noreturn]] void NoCudaBackend() {
  throw Error(SWA_ERR_UNSUPPORTED, "this build of swa has no CUDA backend");
}

// Decode shapes: every sequence has at most cpu::kDecodeMaxQueries query rows, so the
// dot-product kernel (which keeps no lanes idle on absent queries) wins.
bool IsDecodeShape(const Problem& p) {
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    if (p.Seq(s).lq > cpu::kDecodeMaxQueries) return false;
  }
  return true;
}

}  // namespace

void Forward(const Problem& p, ThreadPool& pool) {
  if (p.device == Device::kCuda) NoCudaBackend();
  if (IsDecodeShape(p)) {
    cpu::ForwardDecode(p, pool);
  } else {
    cpu::ForwardTiled(p, pool);
  }
}

void Backward(const Problem& p, const BackwardTensors& g, ThreadPool& pool) {
  if (p.device == Device::kCuda) NoCudaBackend();
  cpu::Backward(p, g, pool);
}

}  // namespace swa::attention
