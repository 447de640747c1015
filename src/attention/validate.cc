#include "attention/validate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "common/byte_range.h"
#include "common/error.h"

namespace swa::attention {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// a * b, or throws if it overflows int64 (both non-negative).
int64_t CheckedMul(int64_t a, int64_t b, const std::string& what) {
  if (a != 0 && b > kInt64Max / a) ThrowInvalid(what + ": size overflows int64");
  return a * b;
}
int64_t CheckedAdd(int64_t a, int64_t b, const std::string& what) {
  if (b > kInt64Max - a) ThrowInvalid(what + ": size overflows int64");
  return a + b;
}

// One argument's memory, named for messages.
struct NamedRange {
  const char* name;
  ByteRange bytes;
};

template <class Enum>
int RawEnum(const Enum* field) {
  static_assert(sizeof(Enum) == sizeof(int));
  int raw;
  std::memcpy(&raw, field, sizeof(int));
  return raw;
}

// Checks one tensor's own fields; returns its memory range.
NamedRange CheckTensor(const swa_tensor* t, const char* name, bool is_output) {
  const std::string n = name;
  if (t == nullptr) ThrowInvalid(n + " is NULL");
  // Read the enums as raw integers: a caller may pass any value, and loading an
  // out-of-range value as the enum type would itself be undefined behaviour.
  const int device = RawEnum(&t->device), dtype = RawEnum(&t->dtype);
  if (device == SWA_CUDA) {
    throw Error(SWA_ERR_UNSUPPORTED, n + " is a CUDA tensor; this build has no CUDA backend");
  }
  if (device != SWA_CPU) ThrowInvalid(n + ".device is not a valid swa_device");
  if (dtype != SWA_F32 && dtype != SWA_BF16 && dtype != SWA_F16) {
    ThrowInvalid(n + ".dtype is not a valid swa_dtype");
  }
  static const char* kDims[4] = {"batch", "seqlen", "heads", "head_dim"};
  for (int d = 0; d < 4; ++d) {
    if (t->shape[d] < 0) ThrowInvalid(n + ".shape[" + std::to_string(d) + "] (" + kDims[d] + ") is negative");
    if (t->shape[d] > kMaxExtent) {
      ThrowInvalid(n + ".shape[" + std::to_string(d) + "] (" + kDims[d] + ") is larger than 2^40");
    }
    if (t->stride[d] < 0) ThrowInvalid(n + ".stride[" + std::to_string(d) + "] is negative");
  }
  if (t->shape[2] < 1) ThrowInvalid(n + " has no heads (shape[2] must be >= 1)");
  if (t->shape[3] < 1 || t->shape[3] > kMaxHeadDim) {
    ThrowInvalid(n + ".shape[3] (head_dim) must be in [1, " + std::to_string(kMaxHeadDim) + "], got " +
                 std::to_string(t->shape[3]));
  }
  if (t->stride[3] != 1) ThrowInvalid(n + ".stride[3] must be 1 (head_dim is contiguous)");
  // Elements and the largest element offset must fit in int64 bytes.
  int64_t elements = 1;
  for (int d = 0; d < 4; ++d) elements = CheckedMul(elements, t->shape[d], n);
  const int64_t elem_size = DTypeSize(static_cast<DType>(t->dtype));
  NamedRange range{name, {}};
  if (elements == 0) return range;
  int64_t last = 0;
  for (int d = 0; d < 4; ++d) last = CheckedAdd(last, CheckedMul(t->stride[d], t->shape[d] - 1, n), n);
  const int64_t bytes = CheckedMul(CheckedAdd(last, 1, n), elem_size, n);
  if (t->data == nullptr) ThrowInvalid(n + ".data is NULL but the tensor has elements");
  const uintptr_t base = reinterpret_cast<uintptr_t>(t->data);
  if (base > std::numeric_limits<uintptr_t>::max() - static_cast<uintptr_t>(bytes)) {
    ThrowInvalid(n + ": memory range wraps around the address space");
  }
  if (base % static_cast<uintptr_t>(elem_size) != 0) {
    ThrowInvalid(n + ".data is not aligned to its element size");
  }
  if (is_output) {
    // No two elements of an output may share memory: sorted by stride, each dimension
    // must step past everything the smaller dimensions span.
    std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, extent) of dims with extent > 1
    for (int d = 0; d < 4; ++d) {
      if (t->shape[d] > 1) dims.emplace_back(t->stride[d], t->shape[d]);
    }
    std::sort(dims.begin(), dims.end());
    int64_t span = 0;  // largest offset reachable with the smaller dimensions
    for (const auto& [stride, extent] : dims) {
      if (stride <= span) ThrowInvalid(n + " has overlapping strides (an output must not alias itself)");
      span += stride * (extent - 1);
    }
  }
  range.bytes = {base, base + static_cast<uintptr_t>(bytes)};
  return range;
}

TensorRef MakeRef(const swa_tensor* t) {
  TensorRef r;
  r.data = t->data;
  r.batch = t->shape[0];
  r.seqlen = t->shape[1];
  r.heads = t->shape[2];
  r.dim = t->shape[3];
  r.stride_b = t->stride[0];
  r.stride_l = t->stride[1];
  r.stride_h = t->stride[2];
  return r;
}

bool SameShape(const swa_tensor* a, const swa_tensor* b) {
  return std::equal(a->shape, a->shape + 4, b->shape);
}

std::string ShapeString(const swa_tensor* t) {
  return "[" + std::to_string(t->shape[0]) + ", " + std::to_string(t->shape[1]) + ", " +
         std::to_string(t->shape[2]) + ", " + std::to_string(t->shape[3]) + "]";
}

void CheckFinite(float x, const std::string& what) {
  if (!std::isfinite(x)) ThrowInvalid(what + " must be finite");
}

void CheckWindow(int64_t w, const std::string& what) {
  if (w < -1) ThrowInvalid(what + " must be -1 (unbounded) or >= 0, got " + std::to_string(w));
}

// The query side of every forward: out has q's shape, Hq is a multiple of `hkv`, and
// the problem takes q's dtype and sizes and the q and out views.
void BuildQuerySide(const swa_tensor* q, const swa_tensor* out, int64_t hkv, Problem* pr) {
  if (!SameShape(out, q))
    ThrowInvalid("out " + ShapeString(out) + " must have the shape of q " + ShapeString(q));
  const int64_t hq = q->shape[2];
  if (hkv < 1 || hq % hkv != 0) {
    ThrowInvalid("query heads (" + std::to_string(hq) + ") must be a multiple of kv heads (" +
                 std::to_string(hkv) + ")");
  }
  pr->dtype = static_cast<DType>(q->dtype);
  pr->batch = q->shape[0];
  pr->hq = hq;
  pr->hkv = hkv;
  pr->dim = q->shape[3];
  pr->q = MakeRef(q);
  pr->out = MakeRef(out);
  // lse holds B * Hq * Lq floats; that count must fit too.
  CheckedMul(CheckedMul(CheckedMul(pr->batch, hq, "lse"), q->shape[1], "lse"), 4, "lse");
}

// Shared by forward and backward: params, q, k, v, out and the derived problem.
void BuildProblem(const swa_attention_params* params, const swa_tensor* q, const swa_tensor* k,
                  const swa_tensor* v, const swa_tensor* out, ValidatedProblem* vp) {
  if (params == nullptr) ThrowInvalid("params is NULL");
  Problem& pr = vp->problem;
  if (q->dtype != k->dtype || q->dtype != v->dtype || q->dtype != out->dtype) {
    ThrowInvalid("q, k, v and out must have the same dtype");
  }
  if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0]) {
    ThrowInvalid("k and v must have the batch size of q (q " + ShapeString(q) + ", k " + ShapeString(k) +
                 ", v " + ShapeString(v) + ")");
  }
  if (!SameShape(k, v))
    ThrowInvalid("k " + ShapeString(k) + " and v " + ShapeString(v) + " must have the same shape");
  if (k->shape[3] != q->shape[3]) ThrowInvalid("k and q must have the same head_dim");
  BuildQuerySide(q, out, k->shape[2], &pr);
  pr.k = MakeRef(k);
  pr.v = MakeRef(v);

  ValidateRule(params, &vp->rule, &pr);

  // Sequences: one per batch entry, or the packed ones of a varlen call.
  const bool varlen = params->cu_seqlens_q != nullptr || params->cu_seqlens_k != nullptr;
  if (varlen) {
    if (params->cu_seqlens_q == nullptr || params->cu_seqlens_k == nullptr) {
      ThrowInvalid("cu_seqlens_q and cu_seqlens_k must be given together");
    }
    if (params->num_seqs < 0) ThrowInvalid("num_seqs must be >= 0");
    if (pr.batch != 1) ThrowInvalid("varlen (cu_seqlens) needs batch == 1, got " + std::to_string(pr.batch));
    CheckCuSeqlens(params->cu_seqlens_q, params->num_seqs, q->shape[1], "cu_seqlens_q");
    CheckCuSeqlens(params->cu_seqlens_k, params->num_seqs, k->shape[1], "cu_seqlens_k");
    pr.num_seqs = params->num_seqs;
    pr.cu_seqlens_q = params->cu_seqlens_q;
    pr.cu_seqlens_k = params->cu_seqlens_k;
  } else {
    if (params->num_seqs != 0) ThrowInvalid("num_seqs is set but cu_seqlens_q/cu_seqlens_k are NULL");
    pr.num_seqs = pr.batch;
  }
}

NamedRange FloatRange(const float* p, int64_t count, const char* name) {
  return {name, FloatBytes(p, count)};
}

// Outputs must not overlap each other or any input.
void CheckNoAliasing(const std::vector<NamedRange>& inputs, const std::vector<NamedRange>& outputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    for (const NamedRange& in : inputs) {
      if (Overlaps(outputs[i].bytes, in.bytes)) {
        ThrowInvalid(std::string(outputs[i].name) + " overlaps the memory of " + in.name);
      }
    }
    for (size_t j = i + 1; j < outputs.size(); ++j) {
      if (Overlaps(outputs[i].bytes, outputs[j].bytes)) {
        ThrowInvalid(std::string(outputs[i].name) + " overlaps the memory of " + outputs[j].name);
      }
    }
  }
}

}  // namespace

void ValidateRule(const swa_attention_params* params, RuleStorage* storage, Problem* problem) {
  if (params == nullptr) ThrowInvalid("params is NULL");
  Problem& pr = *problem;
  const int64_t hq = pr.hq;
  // Scalars.
  CheckWindow(params->window_left, "window_left");
  CheckWindow(params->window_right, "window_right");
  if (params->num_threads < 0) ThrowInvalid("num_threads must be >= 0 (0 = all cores)");
  CheckFinite(params->scale, "scale");
  CheckFinite(params->softcap, "softcap");
  if (params->softcap < 0) ThrowInvalid("softcap must be >= 0 (0 = none)");
  if (params->sink_tokens < 0) ThrowInvalid("sink_tokens must be >= 0");
  if (params->chunk_size < 0) ThrowInvalid("chunk_size must be >= 0 (0 = sliding window rule)");
  if (params->chunk_overlap < 0) ThrowInvalid("chunk_overlap must be >= 0");
  if (params->chunk_overlap > 0 && params->chunk_size == 0) {
    ThrowInvalid("chunk_overlap needs chunk_size > 0");
  }
  // Per-head arrays.
  std::vector<HeadWindow>& windows = storage->windows;
  windows.assign(hq, HeadWindow{params->window_left, params->window_right});
  for (int64_t h = 0; h < hq; ++h) {
    if (params->head_window_left) {
      CheckWindow(params->head_window_left[h], "head_window_left[" + std::to_string(h) + "]");
      windows[h].left = params->head_window_left[h];
    }
    if (params->head_window_right) {
      CheckWindow(params->head_window_right[h], "head_window_right[" + std::to_string(h) + "]");
      windows[h].right = params->head_window_right[h];
    }
    if (params->alibi_slopes) CheckFinite(params->alibi_slopes[h], "alibi_slopes[" + std::to_string(h) + "]");
    if (params->sink_logits) CheckFinite(params->sink_logits[h], "sink_logits[" + std::to_string(h) + "]");
  }
  // Global tokens: non-negative and sorted; duplicates are dropped.
  std::vector<int64_t>& globals = storage->global_tokens;
  globals.clear();
  if (params->num_global_tokens < 0) ThrowInvalid("num_global_tokens must be >= 0");
  if (params->num_global_tokens > 0 && params->global_tokens == nullptr) {
    ThrowInvalid("global_tokens is NULL but num_global_tokens > 0");
  }
  for (int64_t g = 0; g < params->num_global_tokens; ++g) {
    const int64_t pos = params->global_tokens[g];
    if (pos < 0) ThrowInvalid("global_tokens[" + std::to_string(g) + "] is negative");
    if (g > 0 && pos < params->global_tokens[g - 1]) {
      ThrowInvalid("global_tokens must be sorted ascending (at index " + std::to_string(g) + ")");
    }
    if (globals.empty() || globals.back() != pos) globals.push_back(pos);
  }

  pr.mask.causal = params->causal != 0;
  pr.mask.chunk_size = params->chunk_size;
  pr.mask.chunk_overlap = params->chunk_overlap;
  pr.mask.sink_tokens = params->sink_tokens;
  pr.mask.global_tokens = globals.empty() ? nullptr : globals.data();
  pr.mask.num_global_tokens = static_cast<int64_t>(globals.size());
  pr.scale_exact = params->scale != 0.0f ? static_cast<double>(params->scale)
                                         : 1.0 / std::sqrt(static_cast<double>(pr.dim));
  pr.scale = static_cast<float>(pr.scale_exact);
  pr.softcap = params->softcap;
  storage->alibi_slopes.assign(params->alibi_slopes, params->alibi_slopes + (params->alibi_slopes ? hq : 0));
  storage->sink_logits.assign(params->sink_logits, params->sink_logits + (params->sink_logits ? hq : 0));
  pr.windows = windows.data();
  pr.alibi_slopes = params->alibi_slopes ? storage->alibi_slopes.data() : nullptr;
  pr.sink_logits = params->sink_logits ? storage->sink_logits.data() : nullptr;
  pr.threads = params->num_threads;
}

std::unique_ptr<ValidatedProblem> ValidateForward(const swa_attention_params* params, const swa_tensor* q,
                                                  const swa_tensor* k, const swa_tensor* v,
                                                  const swa_tensor* out, const float* lse) {
  auto vp = std::make_unique<ValidatedProblem>();
  if (params == nullptr) ThrowInvalid("params is NULL");
  const NamedRange rq = CheckTensor(q, "q", false);
  const NamedRange rk = CheckTensor(k, "k", false);
  const NamedRange rv = CheckTensor(v, "v", false);
  const NamedRange ro = CheckTensor(out, "out", true);
  BuildProblem(params, q, k, v, out, vp.get());
  Problem& pr = vp->problem;
  pr.lse = const_cast<float*>(lse);
  const NamedRange rl = FloatRange(lse, pr.batch * pr.hq * pr.q.seqlen, "lse");
  CheckNoAliasing({rq, rk, rv}, {ro, rl});
  return vp;
}

void CheckTensorArgument(const swa_tensor* t, const char* name, bool is_output) {
  CheckTensor(t, name, is_output);
}

void ValidateQueries(const swa_tensor* q, const swa_tensor* out, const float* lse, int64_t hkv,
                     const int32_t* cu_seqlens_q, int64_t num_seqs) {
  const NamedRange rq = CheckTensor(q, "q", false);
  const NamedRange ro = CheckTensor(out, "out", true);
  if (q->dtype != out->dtype) ThrowInvalid("q and out must have the same dtype");
  Problem pr;
  BuildQuerySide(q, out, hkv, &pr);
  if (cu_seqlens_q != nullptr) {
    if (num_seqs < 0) ThrowInvalid("num_seqs must be >= 0");
    if (pr.batch != 1) ThrowInvalid("varlen (cu_seqlens) needs batch == 1, got " + std::to_string(pr.batch));
    CheckCuSeqlens(cu_seqlens_q, num_seqs, q->shape[1], "cu_seqlens_q");
  } else if (num_seqs != 0) {
    ThrowInvalid("num_seqs is set but cu_seqlens_q is NULL");
  }
  const NamedRange rl = FloatRange(lse, pr.batch * pr.hq * pr.q.seqlen, "lse");
  CheckNoAliasing({rq}, {ro, rl});
}

void CheckCuSeqlens(const int32_t* cu, int64_t num_seqs, int64_t total, const char* name) {
  const std::string n = name;
  if (cu[0] != 0) ThrowInvalid(n + "[0] must be 0");
  for (int64_t s = 0; s < num_seqs; ++s) {
    if (cu[s + 1] < cu[s])
      ThrowInvalid(n + " must be non-decreasing (at index " + std::to_string(s + 1) + ")");
  }
  if (cu[num_seqs] != total) {
    ThrowInvalid(n + "[num_seqs] = " + std::to_string(cu[num_seqs]) + " must equal the packed length " +
                 std::to_string(total));
  }
}

std::unique_ptr<ValidatedProblem> ValidateBackward(const swa_attention_params* params, const swa_tensor* q,
                                                   const swa_tensor* k, const swa_tensor* v,
                                                   const swa_tensor* out, const float* lse,
                                                   const swa_tensor* dout, const swa_tensor* dq,
                                                   const swa_tensor* dk, const swa_tensor* dv,
                                                   const float* dsink, BackwardTensors* grads) {
  auto vp = std::make_unique<ValidatedProblem>();
  if (params == nullptr) ThrowInvalid("params is NULL");
  const NamedRange rq = CheckTensor(q, "q", false);
  const NamedRange rk = CheckTensor(k, "k", false);
  const NamedRange rv = CheckTensor(v, "v", false);
  const NamedRange ro = CheckTensor(out, "out", false);
  const NamedRange rdo = CheckTensor(dout, "dout", false);
  const NamedRange rdq = CheckTensor(dq, "dq", true);
  const NamedRange rdk = CheckTensor(dk, "dk", true);
  const NamedRange rdv = CheckTensor(dv, "dv", true);
  BuildProblem(params, q, k, v, out, vp.get());
  Problem& pr = vp->problem;
  const int64_t lse_count = pr.batch * pr.hq * pr.q.seqlen;
  if (lse == nullptr && lse_count > 0) ThrowInvalid("lse is NULL; the backward needs the forward's lse");
  if (dout->dtype != q->dtype || dq->dtype != q->dtype || dk->dtype != q->dtype || dv->dtype != q->dtype) {
    ThrowInvalid("dout, dq, dk and dv must have the dtype of q");
  }
  if (!SameShape(dout, q))
    ThrowInvalid("dout " + ShapeString(dout) + " must have the shape of out " + ShapeString(q));
  if (!SameShape(dq, q))
    ThrowInvalid("dq " + ShapeString(dq) + " must have the shape of q " + ShapeString(q));
  if (!SameShape(dk, k))
    ThrowInvalid("dk " + ShapeString(dk) + " must have the shape of k " + ShapeString(k));
  if (!SameShape(dv, v))
    ThrowInvalid("dv " + ShapeString(dv) + " must have the shape of v " + ShapeString(v));
  grads->dout = MakeRef(dout);
  grads->dq = MakeRef(dq);
  grads->dk = MakeRef(dk);
  grads->dv = MakeRef(dv);
  grads->lse = lse;
  grads->dsink = const_cast<float*>(dsink);
  const NamedRange rl = FloatRange(lse, lse_count, "lse");
  const NamedRange rs = FloatRange(dsink, pr.hq, "dsink");
  CheckNoAliasing({rq, rk, rv, ro, rdo, rl}, {rdq, rdk, rdv, rs});
  return vp;
}

}  // namespace swa::attention
