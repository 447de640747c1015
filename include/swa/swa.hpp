// The C++ layer over the C ABI: value types, a parameter builder and exceptions.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "swa/swa.h"

namespace swa {

// Every failing call throws this; code() is the C API's negative return code.
class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

inline void CheckCode(int code) {
  if (code != SWA_OK) throw Error(code, swa_last_error());
}

// A contiguous BSHD view: [batch, seqlen, heads, head_dim].
inline swa_tensor MakeTensor(void* data, swa_dtype dtype, int64_t batch, int64_t seqlen,
                             int64_t heads, int64_t head_dim) {
  swa_tensor t{};
  t.data = data;
  t.dtype = dtype;
  t.device = SWA_CPU;
  t.shape[0] = batch;
  t.shape[1] = seqlen;
  t.shape[2] = heads;
  t.shape[3] = head_dim;
  t.stride[3] = 1;
  t.stride[2] = head_dim;
  t.stride[1] = heads * head_dim;
  t.stride[0] = seqlen * heads * head_dim;
  return t;
}

// swa_attention_params with full-attention defaults and chainable setters.
struct AttentionParams : swa_attention_params {
  AttentionParams() { swa_attention_params_init(this); }

  // (left, right) window; -1 = unbounded. "W tokens including self" is (W - 1, 0).
  AttentionParams& Window(int64_t left, int64_t right) {
    window_left = left;
    window_right = right;
    return *this;
  }
  AttentionParams& Causal(bool on = true) {
    causal = on ? 1 : 0;
    return *this;
  }
  AttentionParams& Scale(float s) {
    scale = s;
    return *this;
  }
  AttentionParams& Softcap(float c) {
    softcap = c;
    return *this;
  }
  AttentionParams& Chunks(int64_t size, int64_t overlap) {
    chunk_size = size;
    chunk_overlap = overlap;
    return *this;
  }
  AttentionParams& Sinks(int64_t tokens) {
    sink_tokens = tokens;
    return *this;
  }
  AttentionParams& Threads(int n) {
    num_threads = n;
    return *this;
  }
};

inline void AttentionForward(const swa_attention_params& p, const swa_tensor& q,
                             const swa_tensor& k, const swa_tensor& v, swa_tensor& out,
                             float* lse = nullptr) {
  CheckCode(swa_attention_forward(&p, &q, &k, &v, &out, lse));
}

inline void AttentionBackward(const swa_attention_params& p, const swa_tensor& q,
                              const swa_tensor& k, const swa_tensor& v, const swa_tensor& out,
                              const float* lse, const swa_tensor& dout, swa_tensor& dq,
                              swa_tensor& dk, swa_tensor& dv, float* dsink = nullptr) {
  CheckCode(swa_attention_backward(&p, &q, &k, &v, &out, lse, &dout, &dq, &dk, &dv, dsink));
}

}  // namespace swa
