// The C ABI of attention: validate (which translates the C structs into a Problem), hand
// the problem to the internal entry, and turn exceptions into return codes.
#include <cstring>

#include "attention/entry.h"
#include "attention/validate.h"
#include "common/parallel.h"
#include "common/error.h"
#include "swa/swa.h"

#ifndef SWA_VERSION_STRING
#define SWA_VERSION_STRING "0.0.0"
#endif

extern "C" {

SWA_API void swa_attention_params_init(swa_attention_params* p) {
  if (p == nullptr) return;
  std::memset(p, 0, sizeof(*p));
  p->window_left = -1;
  p->window_right = -1;
}

SWA_API int swa_attention_forward(const swa_attention_params* p, const swa_tensor* q,
                                  const swa_tensor* k, const swa_tensor* v, swa_tensor* out,
                                  float* lse) {
  return swa::GuardCall([&] {
    const auto vp = swa::attention::ValidateForward(p, q, k, v, out, lse);
    swa::attention::Forward(vp->problem, swa::ThreadPool::Default());
  });
}

SWA_API int swa_attention_backward(const swa_attention_params* p, const swa_tensor* q,
                                   const swa_tensor* k, const swa_tensor* v,
                                   const swa_tensor* out, const float* lse,
                                   const swa_tensor* dout, swa_tensor* dq, swa_tensor* dk,
                                   swa_tensor* dv, float* dsink) {
  return swa::GuardCall([&] {
    swa::attention::BackwardTensors grads;
    const auto vp = swa::attention::ValidateBackward(p, q, k, v, out, lse, dout, dq, dk, dv, dsink, &grads);
    swa::attention::Backward(vp->problem, grads, swa::ThreadPool::Default());
  });
}

SWA_API const char* swa_last_error(void) { return swa::LastError(); }

SWA_API const char* swa_version(void) { return SWA_VERSION_STRING; }

}  // extern "C"
