#include "model/block.h"

#include <algorithm>

#include "model/backend.h"
#include "model/row_chunks.h"
#include "ops/layer_math.h"

namespace swa::model {
namespace {

template <class T>
void Resize(std::vector<T>* v, int64_t n) {
  v->resize(static_cast<size_t>(n));
}

// y = rmsnorm(x, w) over n rows of d, row-parallel.
template <class T>
void NormForward(const BlockSpec& s, const T* x, const T* w, int64_t n, T* y, T* rstd, ThreadPool& pool) {
  ForRowChunks(n, pool, s.threads, [&](int64_t, int64_t b, int64_t e) {
    Backend<T>::RmsNormForward(x + b * s.d, w, s.eps, e - b, s.d, y + b * s.d, rstd + b);
  });
}

// dx = dres + d rmsnorm(x, w)/dx . dy; dw += the weight's gradient, summed chunk by chunk.
template <class T>
void NormBackward(const BlockSpec& s, const T* x, const T* w, const T* rstd, const T* dy, const T* dres,
                  int64_t n, T* dx, T* dw, std::vector<T>* parts, ThreadPool& pool) {
  const int64_t chunks = RowChunks(n);
  parts->assign(static_cast<size_t>(chunks * s.d), T(0));
  ForRowChunks(n, pool, s.threads, [&](int64_t c, int64_t b, int64_t e) {
    // The normalisation's gradient goes to dx first (dx may be dres: add row by row).
    std::vector<T> rows(static_cast<size_t>((e - b) * s.d));
    Backend<T>::RmsNormBackward(x + b * s.d, w, rstd + b, dy + b * s.d, e - b, s.d, rows.data(),
                                parts->data() + c * s.d);
    for (int64_t i = 0; i < (e - b) * s.d; ++i) dx[b * s.d + i] = dres[b * s.d + i] + rows[i];
  });
  SumChunks(*parts, chunks, s.d, dw);
}

// o [n, Hq*D] = the attention output, each head scaled by its group's gate.
template <class T>
void GateHeads(const BlockSpec& s, const T* attn, const T* gate, int64_t n, T* o) {
  const int64_t hd = s.hq * s.head_dim;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < s.hq; ++h) {
      const T g = gate[t * s.gate_groups + s.group_of_head[h]];
      for (int64_t e = 0; e < s.head_dim; ++e)
        o[t * hd + h * s.head_dim + e] = attn[t * hd + h * s.head_dim + e] * g;
    }
  }
}

}  // namespace

template <class T>
void BlockForward(const BlockSpec& s, const LayerTensors<const T>& w, const Packing& pack,
                  const int32_t* positions, const T* x, BlockActivations<T>* a, T* y, ThreadPool& pool) {
  using B = Backend<T>;
  const int64_t n = pack.tokens, d = s.d, hqd = s.hq * s.head_dim, hkvd = s.hkv * s.head_dim, f = s.ffn;
  const int64_t g = s.gate_groups;
  Resize(&a->x, n * d);
  Resize(&a->h1, n * d);
  Resize(&a->rstd1, n);
  Resize(&a->q, n * hqd);
  Resize(&a->k, n * hkvd);
  Resize(&a->v, n * hkvd);
  Resize(&a->attn, n * hqd);
  Resize(&a->lse, s.hq * n);
  Resize(&a->gate, n * g);
  Resize(&a->x_mid, n * d);
  Resize(&a->h2, n * d);
  Resize(&a->rstd2, n);
  Resize(&a->mlp_gate, n * f);
  Resize(&a->up, n * f);
  std::copy(x, x + n * d, a->x.begin());

  // h1 [n, d] = rmsnorm(x, input_layernorm)
  NormForward(s, x, w.input_norm, n, a->h1.data(), a->rstd1.data(), pool);
  // q [n, Hq*D] = h1 q_proj^T; k, v [n, Hkv*D] likewise; RoPE at each token's position
  B::Gemm(false, true, n, hqd, d, 1, a->h1.data(), d, w.q_proj, d, 0, a->q.data(), hqd);
  B::Gemm(false, true, n, hkvd, d, 1, a->h1.data(), d, w.k_proj, d, 0, a->k.data(), hkvd);
  B::Gemm(false, true, n, hkvd, d, 1, a->h1.data(), d, w.v_proj, d, 0, a->v.data(), hkvd);
  if (s.rope != nullptr) {
    ForRowChunks(n, pool, s.threads, [&](int64_t, int64_t b, int64_t e) {
      s.rope->Rotate(a->q.data() + b * hqd, e - b, s.hq, positions + b, false);
      s.rope->Rotate(a->k.data() + b * hkvd, e - b, s.hkv, positions + b, false);
    });
  }
  // a [n, Hq*D], lse [Hq, n] = attention(q, k, v)
  s.attention->Forward(pack, a->q.data(), a->k.data(), a->v.data(), w.sinks, a->attn.data(), a->lse.data(),
                       pool);
  // o = a, or a_h * sigmoid(h1 gate.weight^T + gate.bias)[group(h)]
  std::vector<T> gated;
  const T* o = a->attn.data();
  if (g > 0) {
    B::Gemm(false, true, n, g, d, 1, a->h1.data(), d, w.gate_w, d, 0, a->gate.data(), g);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t j = 0; j < g; ++j)
        a->gate[t * g + j] = ops::plain::Sigmoid(a->gate[t * g + j] + w.gate_b[j]);
    }
    gated.resize(static_cast<size_t>(n * hqd));
    GateHeads(s, a->attn.data(), a->gate.data(), n, gated.data());
    o = gated.data();
  }
  // x_mid [n, d] = x + o o_proj^T
  std::copy(x, x + n * d, a->x_mid.begin());
  B::Gemm(false, true, n, d, hqd, 1, o, hqd, w.o_proj, hqd, 1, a->x_mid.data(), d);
  // h2 = rmsnorm(x_mid, post_attention_layernorm)
  NormForward(s, a->x_mid.data(), w.post_norm, n, a->h2.data(), a->rstd2.data(), pool);
  // mlp_gate, up [n, F] = h2 gate_proj^T, h2 up_proj^T; m = silu(mlp_gate) * up
  B::Gemm(false, true, n, f, d, 1, a->h2.data(), d, w.mlp_gate, d, 0, a->mlp_gate.data(), f);
  B::Gemm(false, true, n, f, d, 1, a->h2.data(), d, w.mlp_up, d, 0, a->up.data(), f);
  std::vector<T> m(static_cast<size_t>(n * f));
  ForRowChunks(n, pool, s.threads, [&](int64_t, int64_t b, int64_t e) {
    B::SwiGluForward(a->mlp_gate.data() + b * f, a->up.data() + b * f, (e - b) * f, m.data() + b * f);
  });
  // y [n, d] = x_mid + m down_proj^T
  std::copy(a->x_mid.begin(), a->x_mid.end(), y);
  B::Gemm(false, true, n, d, f, 1, m.data(), f, w.mlp_down, f, 1, y, d);
}

template <class T>
void BlockBackward(const BlockSpec& s, const LayerTensors<const T>& w, const Packing& pack,
                   const int32_t* positions, const BlockActivations<T>& a, const T* dy, T* dx,
                   const LayerTensors<T>& g, BlockScratch<T>* z, ThreadPool& pool) {
  using B = Backend<T>;
  const int64_t n = pack.tokens, d = s.d, hqd = s.hq * s.head_dim, hkvd = s.hkv * s.head_dim, f = s.ffn;
  const int64_t groups = s.gate_groups;
  Resize(&z->o, n * hqd);
  Resize(&z->d_o, n * hqd);
  Resize(&z->dq, n * hqd);
  Resize(&z->dk, n * hkvd);
  Resize(&z->dv, n * hkvd);
  Resize(&z->dh, n * d);
  Resize(&z->dm, n * f);
  Resize(&z->du, n * f);
  Resize(&z->dup, n * f);

  // MLP. y = x_mid + m down^T:  dm [n, F] = dy down;  d down += dy^T m
  ForRowChunks(n, pool, s.threads, [&](int64_t, int64_t b, int64_t e) {  // m, recomputed into du
    B::SwiGluForward(a.mlp_gate.data() + b * f, a.up.data() + b * f, (e - b) * f, z->du.data() + b * f);
  });
  B::Gemm(true, false, d, f, n, 1, dy, d, z->du.data(), f, 1, g.mlp_down, f);
  B::Gemm(false, false, n, f, d, 1, dy, d, w.mlp_down, f, 0, z->dm.data(), f);
  // m = silu(mlp_gate) * up
  ForRowChunks(n, pool, s.threads, [&](int64_t, int64_t b, int64_t e) {
    B::SwiGluBackward(a.mlp_gate.data() + b * f, a.up.data() + b * f, z->dm.data() + b * f, (e - b) * f,
                      z->du.data() + b * f, z->dup.data() + b * f);
  });
  // mlp_gate = h2 gate_proj^T, up = h2 up_proj^T:  dh2 = du gate_proj + dup up_proj
  B::Gemm(true, false, f, d, n, 1, z->du.data(), f, a.h2.data(), d, 1, g.mlp_gate, d);
  B::Gemm(true, false, f, d, n, 1, z->dup.data(), f, a.h2.data(), d, 1, g.mlp_up, d);
  B::Gemm(false, false, n, d, f, 1, z->du.data(), f, w.mlp_gate, d, 0, z->dh.data(), d);
  B::Gemm(false, false, n, d, f, 1, z->dup.data(), f, w.mlp_up, d, 1, z->dh.data(), d);
  // h2 = rmsnorm(x_mid):  dx_mid [n, d] = dy + norm'(dh2)
  std::vector<T> dmid(static_cast<size_t>(n * d));
  NormBackward(s, a.x_mid.data(), w.post_norm, a.rstd2.data(), z->dh.data(), dy, n, dmid.data(), g.post_norm,
               &z->norm_parts, pool);

  // Attention output. x_mid = x + o o_proj^T:  d_o = dx_mid o_proj;  d o_proj += dx_mid^T o
  const T* o = a.attn.data();
  if (groups > 0) {
    GateHeads(s, a.attn.data(), a.gate.data(), n, z->o.data());
    o = z->o.data();
  }
  B::Gemm(true, false, d, hqd, n, 1, dmid.data(), d, o, hqd, 1, g.o_proj, hqd);
  B::Gemm(false, false, n, hqd, d, 1, dmid.data(), d, w.o_proj, hqd, 0, z->d_o.data(), hqd);
  // h1's gradient from q, k, v and (gated fusion) the gate logits, summed in dh.
  std::fill(z->dh.begin(), z->dh.end(), T(0));
  T* da = z->d_o.data();  // d a: d_o itself without gates
  if (groups > 0) {
    // o_h = a_h s_g:  d a_h = d_o_h s_g;  d s_g = sum over h in g of d_o_h . a_h;
    // s = sigmoid(l):  d l = d s s (1 - s);  l = h1 gate.weight^T + gate.bias
    Resize(&z->dgate, n * groups);
    std::fill(z->dgate.begin(), z->dgate.end(), T(0));
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < s.hq; ++h) {
        const int64_t j = s.group_of_head[h];
        T* drow = z->d_o.data() + t * hqd + h * s.head_dim;
        const T* arow = a.attn.data() + t * hqd + h * s.head_dim;
        T dot = 0;
        for (int64_t e = 0; e < s.head_dim; ++e) dot += drow[e] * arow[e];
        z->dgate[t * groups + j] += dot;
        const T sg = a.gate[t * groups + j];
        for (int64_t e = 0; e < s.head_dim; ++e) drow[e] *= sg;
      }
      for (int64_t j = 0; j < groups; ++j) {
        const T sg = a.gate[t * groups + j];
        z->dgate[t * groups + j] *= sg * (T(1) - sg);
        g.gate_b[j] += z->dgate[t * groups + j];
      }
    }
    B::Gemm(true, false, groups, d, n, 1, z->dgate.data(), groups, a.h1.data(), d, 1, g.gate_w, d);
    B::Gemm(false, false, n, d, groups, 1, z->dgate.data(), groups, w.gate_w, d, 1, z->dh.data(), d);
  }
  // a = attention(q, k, v)
  s.attention->Backward(pack, a.q.data(), a.k.data(), a.v.data(), w.sinks, a.attn.data(), a.lse.data(), da,
                        z->dq.data(), z->dk.data(), z->dv.data(), g.sinks, pool);
  // RoPE is a rotation: its backward turns the gradients back.
  if (s.rope != nullptr) {
    ForRowChunks(n, pool, s.threads, [&](int64_t, int64_t b, int64_t e) {
      s.rope->Rotate(z->dq.data() + b * hqd, e - b, s.hq, positions + b, true);
      s.rope->Rotate(z->dk.data() + b * hkvd, e - b, s.hkv, positions + b, true);
    });
  }
  // q = h1 q_proj^T (k, v alike):  dh1 += dq q_proj;  d q_proj += dq^T h1
  B::Gemm(true, false, hqd, d, n, 1, z->dq.data(), hqd, a.h1.data(), d, 1, g.q_proj, d);
  B::Gemm(true, false, hkvd, d, n, 1, z->dk.data(), hkvd, a.h1.data(), d, 1, g.k_proj, d);
  B::Gemm(true, false, hkvd, d, n, 1, z->dv.data(), hkvd, a.h1.data(), d, 1, g.v_proj, d);
  B::Gemm(false, false, n, d, hqd, 1, z->dq.data(), hqd, w.q_proj, d, 1, z->dh.data(), d);
  B::Gemm(false, false, n, d, hkvd, 1, z->dk.data(), hkvd, w.k_proj, d, 1, z->dh.data(), d);
  B::Gemm(false, false, n, d, hkvd, 1, z->dv.data(), hkvd, w.v_proj, d, 1, z->dh.data(), d);
  // h1 = rmsnorm(x):  dx = dx_mid + norm'(dh1)
  NormBackward(s, a.x.data(), w.input_norm, a.rstd1.data(), z->dh.data(), dmid.data(), n, dx, g.input_norm,
               &z->norm_parts, pool);
}

template void BlockForward(const BlockSpec&, const LayerTensors<const float>&, const Packing&, const int32_t*,
                           const float*, BlockActivations<float>*, float*, ThreadPool&);
template void BlockForward(const BlockSpec&, const LayerTensors<const double>&, const Packing&,
                           const int32_t*, const double*, BlockActivations<double>*, double*, ThreadPool&);
template void BlockBackward(const BlockSpec&, const LayerTensors<const float>&, const Packing&,
                            const int32_t*, const BlockActivations<float>&, const float*, float*,
                            const LayerTensors<float>&, BlockScratch<float>*, ThreadPool&);
template void BlockBackward(const BlockSpec&, const LayerTensors<const double>&, const Packing&,
                            const int32_t*, const BlockActivations<double>&, const double*, double*,
                            const LayerTensors<double>&, BlockScratch<double>*, ThreadPool&);

}  // namespace swa::model
