/* swa — sliding-window attention engine. Plain C ABI; the contract is docs/ATTENTION.md.
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
  void* data;
  swa_dtype dtype;
  swa_device device;
  int64_t shape[4];  /* [batch, seqlen, heads, head_dim] */
  int64_t stride[4]; /* in elements */
} swa_tensor;

typedef struct {
  int64_t window_left, window_right; /* -1 = unbounded */
  const int64_t* head_window_left;   /* optional [Hq], overrides */
  const int64_t* head_window_right;  /* optional [Hq] */
  int causal;
  float scale;               /* 0 => 1/sqrt(head_dim) */
  float softcap;             /* 0 => none */
  const float* alibi_slopes; /* optional [Hq] */
  int64_t sink_tokens;
  const float* sink_logits;          /* optional [Hq] */
  int64_t chunk_size, chunk_overlap; /* 0 => sliding window rule */
  const int64_t* global_tokens;      /* optional, sorted key positions */
  int64_t num_global_tokens;
  const int32_t* cu_seqlens_q; /* optional [num_seqs + 1]; then B == 1 */
  const int32_t* cu_seqlens_k;
  int64_t num_seqs;
  int num_threads; /* 0 => all cores */
} swa_attention_params;

/* Full attention defaults: windows (-1, -1), not causal, scale 0 (1/sqrt(D)), no
 * softcap, ALiBi, sinks, chunks, global tokens or varlen; all cores. */
SWA_API void swa_attention_params_init(swa_attention_params* p);

SWA_API int swa_attention_forward(const swa_attention_params* p, const swa_tensor* q, const swa_tensor* k,
                                  const swa_tensor* v, swa_tensor* out, float* lse /* [B,Hq,Lq] or NULL */);

SWA_API int swa_attention_backward(const swa_attention_params* p, const swa_tensor* q, const swa_tensor* k,
                                   const swa_tensor* v, const swa_tensor* out, const float* lse,
                                   const swa_tensor* dout, swa_tensor* dq, swa_tensor* dk, swa_tensor* dv,
                                   float* dsink /* [Hq] or NULL */);

/* Thread-local; message of the last failing call ("" if none failed yet). */
SWA_API const char* swa_last_error(void);
SWA_API const char* swa_version(void);

/* ---- Streaming KV cache (one attention layer) ------------------------------------------
 *
 * Per sequence, the keys and values of the last `capacity` positions in a ring buffer
 * (slot = position mod capacity) plus `sink_tokens` pinned slots, so that a stream of any
 * length runs in constant memory and time per token. capacity = (largest left window over
 * the heads) + max_chunk, or chunk_size - 1 + chunk_overlap + max_chunk with chunked
 * attention. A layer with an unbounded left window on any head, or with global tokens,
 * keeps every position instead: its storage grows in pages of page_tokens rows.
 *
 * Positions are absolute: a sequence that has seen n positions holds keys 0..n-1 (those
 * still resident). Appending T keys puts them at n..n+T-1; attending Lq queries places
 * them at the Lq newest positions (bottom-right aligned, as in swa_attention_forward), so
 * that append(T) then attend(T) equals swa_attention_forward over all keys seen so far.
 *
 * Append accepts any T: positions that no later attend can see are not stored. Attend
 * accepts at most max_chunk queries per sequence (the ring keeps exactly what they need);
 * swa_kv_cache_append_attend splits larger chunks internally.
 *
 * Batches: functions take an array of num_seqs sequence ids. Tensors are then either
 * [num_seqs, T, heads, head_dim] (the same T for every sequence) or, with a cu_seqlens
 * array [num_seqs + 1], packed as [1, total, heads, head_dim] (FlashAttention's varlen).
 * A sequence id may appear at most once per call. lse is [num_seqs, Hq, T] or
 * [1, Hq, total].
 *
 * Tensors must have the cache's dtype, head counts and head_dim. A cache is not safe to
 * use from several threads at once; different caches are independent. On error nothing
 * is changed and swa_last_error() says why. */

typedef struct swa_kv_cache swa_kv_cache;

typedef enum {
  /* Keys are stored after RoPE at their absolute position; queries rotated at theirs. */
  SWA_POSITIONS_ABSOLUTE = 0,
  /* StreamingLLM: keys are stored before RoPE and rotated at attend time with their
   * position inside the cache (sinks 0..S-1, then the visible ring keys in order), and
   * the queries likewise; windows, ALiBi and causality use the same in-cache positions.
   * Not available with chunked attention. */
  SWA_POSITIONS_CACHE_RELATIVE = 1
} swa_position_mode;

typedef struct {
  swa_dtype dtype;      /* stored K/V dtype; q, k, v, out use it too   */
  int64_t num_heads;    /* Hq */
  int64_t num_kv_heads; /* Hkv; Hq % Hkv == 0 */
  int64_t head_dim;
  swa_attention_params attention; /* the layer's rule; arrays are copied at create;
                                     cu_seqlens must be NULL, num_seqs 0          */
  int64_t max_chunk;              /* most queries per sequence in one attend (>= 1) */
  int64_t max_positions;          /* per sequence; appending past it fails (0 = none) */
  int64_t page_tokens;            /* rows per page of a growing cache (0 => 1024) */
  swa_position_mode position_mode;
  /* RoPE applied by the cache, "rotate half" layout (GPT-NeoX, Hugging Face Llama): with
     R = rope_dims, pair (x[i], x[i + R/2]) for i < R/2 turns by position * theta^(-2i/R);
     elements R.. pass through (partial rotary). See docs/KV_CACHE.md. */
  int rope;          /* 0: no rotation (the caller's q, k are used as is) */
  float rope_theta;  /* 0 => 10000 */
  int64_t rope_dims; /* R: rotated elements per head, even; 0 => head_dim
                        (head_dim - 1 when odd) */
} swa_kv_cache_config;

typedef struct {
  int64_t capacity;   /* ring slots per sequence (sinks excluded); -1: grows in pages */
  int64_t sink_slots; /* pinned slots per sequence (0 for a growing cache) */
  int64_t max_chunk;
  int64_t num_sequences;
  int64_t bytes_used; /* K/V storage held by all sequences */
} swa_kv_cache_stats;

/* Defaults: f32, 1 head of dim 64, full-attention params, max_chunk 1, absolute
 * positions, no RoPE. */
SWA_API void swa_kv_cache_config_init(swa_kv_cache_config* config);

SWA_API int swa_kv_cache_create(const swa_kv_cache_config* config, swa_kv_cache** cache);
SWA_API void swa_kv_cache_destroy(swa_kv_cache* cache); /* NULL is a no-op */

/* Sequences: add (a new, empty stream; the id must be unused), reset (back to position 0,
 * storage kept), remove (storage freed). Others are untouched. */
SWA_API int swa_kv_cache_add_sequence(swa_kv_cache* cache, int64_t seq_id);
SWA_API int swa_kv_cache_reset_sequence(swa_kv_cache* cache, int64_t seq_id);
SWA_API int swa_kv_cache_remove_sequence(swa_kv_cache* cache, int64_t seq_id);

/* k, v: [num_seqs, T, Hkv, D], or [1, total, Hkv, D] with cu_seqlens. */
SWA_API int swa_kv_cache_append(swa_kv_cache* cache, const int64_t* seq_ids, int64_t num_seqs,
                                const swa_tensor* k, const swa_tensor* v,
                                const int32_t* cu_seqlens /* or NULL */);

/* q, out: [num_seqs, T, Hq, D], or [1, total, Hq, D] with cu_seqlens_q. */
SWA_API int swa_kv_cache_attend(swa_kv_cache* cache, const int64_t* seq_ids, int64_t num_seqs,
                                const swa_tensor* q, const int32_t* cu_seqlens_q /* or NULL */,
                                swa_tensor* out, float* lse /* or NULL */);

/* Append k, v and attend q (the same token counts per sequence), in pieces of at most
 * max_chunk tokens per sequence: a prefill of any length in one call. */
SWA_API int swa_kv_cache_append_attend(swa_kv_cache* cache, const int64_t* seq_ids, int64_t num_seqs,
                                       const swa_tensor* q, const swa_tensor* k, const swa_tensor* v,
                                       const int32_t* cu_seqlens /* or NULL */, swa_tensor* out,
                                       float* lse /* or NULL */);

SWA_API int swa_kv_cache_get_stats(const swa_kv_cache* cache, swa_kv_cache_stats* stats);
/* Positions seen by the sequence (the next key's position). */
SWA_API int swa_kv_cache_seq_positions(const swa_kv_cache* cache, int64_t seq_id, int64_t* positions);
/* Writes up to max_ids ids (ascending) and the number of sequences. */
SWA_API int swa_kv_cache_seq_ids(const swa_kv_cache* cache, int64_t* ids, int64_t max_ids, int64_t* count);
/* Copies the stored keys and values of positions [first_position, first_position + L)
 * into k, v [1, L, Hkv, D] (as stored: after RoPE in the absolute mode). Every position
 * must be resident (a sink or in the ring). */
SWA_API int swa_kv_cache_read(const swa_kv_cache* cache, int64_t seq_id, int64_t first_position,
                              swa_tensor* k, swa_tensor* v);

/* A binary file (format in docs/KV_CACHE.md): config, per-sequence positions and the
 * resident keys and values. load creates a new cache; a truncated or corrupt file is an
 * error. */
SWA_API int swa_kv_cache_save(const swa_kv_cache* cache, const char* path);
SWA_API int swa_kv_cache_load(const char* path, swa_kv_cache** cache);

/* ---- The model of docs/MODEL.md ----------------------------------------------------
 *
 * A decoder-only byte transformer loaded from a checkpoint (safetensors, Hugging Face
 * Llama/Mistral tensor names, the config as JSON in __metadata__["config"]). Tokens are
 * bytes 0..255 and BOS 256, EOS 257, PAD 258.
 *
 * Parameters live in one flat float buffer: every tensor at an offset of its own
 * (swa_model_param), padding between tensors. Gradients use the same layout, so a
 * gradient buffer holds swa_model_flat_size() floats.
 *
 * Batches are packed documents, as in the attention's varlen API: tokens [n] with
 * cu_seqlens [num_seqs + 1] (0 = c_0 <= c_1 <= ... <= c_num_seqs = n); document s is
 * tokens [c_s, c_s+1), attended alone, with positions from 0. A NULL cu_seqlens makes the
 * n tokens one document (num_seqs must then be 0 or 1). n <= INT32_MAX.
 *
 * A model is not safe to use from several threads at once; different models are
 * independent. On error nothing is written and swa_last_error() says why. */

typedef struct swa_model swa_model;

/* Reads a checkpoint (tensors stored as F32, BF16, F16 or F64; computed in f32).
 * num_threads: 0 => all cores. */
SWA_API int swa_model_load(const char* path, int num_threads, swa_model** model);
SWA_API void swa_model_destroy(swa_model* model); /* NULL is a no-op */

/* The config as JSON (docs/MODEL.md's field names), NUL-terminated. *needed is the
 * size in bytes with the NUL; buf may be NULL when size is 0 (a size query). A buffer
 * smaller than *needed is an error. */
SWA_API int swa_model_config_json(const swa_model* model, char* buf, int64_t size, int64_t* needed);

SWA_API int swa_model_vocab_size(const swa_model* model, int64_t* vocab_size);
/* Number of parameters (the tensors' elements, padding excluded). */
SWA_API int swa_model_param_count(const swa_model* model, int64_t* count);
/* Floats in the flat parameter and gradient buffer (padding included). */
SWA_API int swa_model_flat_size(const swa_model* model, int64_t* floats);
/* The tensors, in layout order: how many, and the name of tensor `index` (written to buf
 * like swa_model_config_json). */
SWA_API int swa_model_num_tensors(const swa_model* model, int64_t* num_tensors);
SWA_API int swa_model_tensor_name(const swa_model* model, int64_t index, char* buf, int64_t size,
                                  int64_t* needed);
/* Where the tensor `name` lives in the flat buffer: floats [offset, offset + count),
 * row-major in its Hugging Face shape. An unknown name is an error. */
SWA_API int swa_model_param(const swa_model* model, const char* name, int64_t* offset, int64_t* count);

/* logits [n, vocab_size] after final soft-capping. */
SWA_API int swa_model_logits(swa_model* model, const int32_t* tokens, int64_t n,
                             const int32_t* cu_seqlens /* [num_seqs + 1] or NULL */, int64_t num_seqs,
                             float* logits /* [n, vocab_size] */);

/* The mean cross-entropy of targets [n] (PAD = 258: no target at that token) over the
 * non-PAD targets (0, with zero gradients, when there are none), and with grads its
 * gradient with respect to every parameter: written, not added; padding set to 0. */
SWA_API int swa_model_loss(swa_model* model, const int32_t* tokens, const int32_t* targets, int64_t n,
                           const int32_t* cu_seqlens /* [num_seqs + 1] or NULL */, int64_t num_seqs,
                           double* loss, float* grads /* [flat size] or NULL */);

/* Writes a checkpoint of the model's parameters, stored as SWA_F32 or SWA_BF16 (rounded
 * to nearest even); the file is replaced atomically. */
SWA_API int swa_model_save(const swa_model* model, const char* path, swa_dtype dtype);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SWA_SWA_H_ */
