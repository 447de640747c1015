/* swa — sliding-window attention engine. Plain C ABI (see shared/DESIGN.md, section 2).
 *
 * Layout is FlashAttention's BSHD: q [B, Lq, Hq, D], k and v [B, Lk, Hkv, D],
 * out [B, Lq, Hq, D], lse [B, Hq, Lq] (float32). Strides are in elements and the last
 * stride of every tensor is 1. Every function returns 0 on success and a negative
 * code on failure; on failure nothing is written and swa_last_error() says why. */
#ifndef SWA_SWA_H_
#define SWA_SWA_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SWA_API __declspec(dllexport)
#else
#define SWA_API __attribute__((visibility("default")))
#endif

typedef enum { SWA_F32 = 0, SWA_BF16 = 1, SWA_F16 = 2 } swa_dtype;
typedef enum { SWA_CPU = 0, SWA_CUDA = 1 } swa_device;

/* Return codes (0 is success). */
#define SWA_OK 0
#define SWA_ERR_INVALID_ARGUMENT (-1) /* a NULL, shape, stride, dtype or value error */
#define SWA_ERR_UNSUPPORTED (-2)      /* valid, but not built in (e.g. CUDA)        */
#define SWA_ERR_OUT_OF_MEMORY (-3)    /* scratch allocation failed                 */
#define SWA_ERR_INTERNAL (-4)         /* a bug: please report                      */

typedef struct {
  void*      data;
  swa_dtype  dtype;
  swa_device device;
  int64_t    shape[4];  /* [batch, seqlen, heads, head_dim] */
  int64_t   stride[4];  /* in elements */
} swa_tensor;

typedef struct {
  int64_t        window_left, window_right;   /* -1 = unbounded */
  const int64_t* head_window_left;            /* optional [Hq], overrides */
  const int64_t* head_window_right;           /* optional [Hq] */
  int            causal;
  float          scale;                       /* 0 => 1/sqrt(head_dim) */
  float          softcap;                     /* 0 => none */
  const float*   alibi_slopes;                /* optional [Hq] */
  int64_t        sink_tokens;
  const float*   sink_logits;                 /* optional [Hq] */
  int64_t        chunk_size, chunk_overlap;   /* 0 => sliding window rule */
  const int64_t* global_tokens;               /* optional, sorted key positions */
  int64_t        num_global_tokens;
  const int32_t* cu_seqlens_q;                /* optional [num_seqs + 1]; then B == 1 */
  const int32_t* cu_seqlens_k;
  int64_t        num_seqs;
  int            num_threads;                 /* 0 => all cores */
} swa_attention_params;

/* Full attention defaults: windows (-1, -1), not causal, scale 0 (1/sqrt(D)), no
 * softcap, ALiBi, sinks, chunks, global tokens or varlen; all cores. */
SWA_API void swa_attention_params_init(swa_attention_params* p);

SWA_API int swa_attention_forward(const swa_attention_params* p,
                                  const swa_tensor* q, const swa_tensor* k,
                                  const swa_tensor* v, swa_tensor* out,
                                  float* lse /* [B,Hq,Lq] or NULL */);

SWA_API int swa_attention_backward(const swa_attention_params* p,
                                   const swa_tensor* q, const swa_tensor* k,
                                   const swa_tensor* v, const swa_tensor* out,
                                   const float* lse, const swa_tensor* dout,
                                   swa_tensor* dq, swa_tensor* dk, swa_tensor* dv,
                                   float* dsink /* [Hq] or NULL */);

/* Thread-local; message of the last failing call ("" if none failed yet). */
SWA_API const char* swa_last_error(void);
SWA_API const char* swa_version(void);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* SWA_SWA_H_ */
