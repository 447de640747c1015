#include "attention/reference.h"

#include <cmath>
#include <limits>

#include "attention/rule.h"

namespace swa::attention {
namespace {

// Where the oracle reads a tensor: through the problem's view in its dtype, or, for the
// model's float64 gradient checks, from a double array laid out like that view.
struct Source {
  const TensorRef* view;
  DType dtype;
  const double* f64 = nullptr;
};

// Loads row (b, l, h) of a tensor as doubles.
void LoadRow(const Source& t, int64_t b, int64_t l, int64_t h, double* row) {
  const int64_t base = t.view->Offset(b, l, h);
  for (int64_t d = 0; d < t.view->dim; ++d) {
    row[d] = t.f64 != nullptr ? t.f64[base + d] : LoadAsFloat(t.view->data, t.dtype, base + d);
  }
}

// The inputs of one oracle call: q, k, v, dout, and the sink logits in double.
struct Inputs {
  Source q, k, v, dout;
  std::vector<double> sinks;  // [hq] or empty
  const double* Sink(int64_t h) const { return sinks.empty() ? nullptr : &sinks[h]; }
};

Inputs ProblemInputs(const Problem& p, const TensorRef* dout) {
  Inputs in{{&p.q, p.dtype}, {&p.k, p.dtype}, {&p.v, p.dtype}, {dout, p.dtype}, {}};
  if (p.sink_logits != nullptr) in.sinks.assign(p.sink_logits, p.sink_logits + p.hq);
  return in;
}

Inputs F64Inputs(const Problem& p, const double* q, const double* k, const double* v, const double* dout,
                 const double* sinks) {
  Inputs in{{&p.q, p.dtype, q}, {&p.k, p.dtype, k}, {&p.v, p.dtype, v}, {&p.out, p.dtype, dout}, {}};
  if (sinks != nullptr) in.sinks.assign(sinks, sinks + p.hq);
  return in;
}

// Scores of one query row against every key of its sequence; invisible keys are
// marked in `visible`. `x` receives the pre-softcap scaled dot products.
struct RowScores {
  std::vector<double> s, x;
  std::vector<char> visible;
};

void ScoreRow(const Problem& p, const Inputs& in, const Sequence& seq, const BandRule& rule, int64_t h,
              int64_t i, const std::vector<double>& q_row, RowScores* r) {
  const int64_t kvh = h / p.group();
  r->s.assign(seq.lk, 0.0);
  r->x.assign(seq.lk, 0.0);
  r->visible.assign(seq.lk, 0);
  std::vector<double> k_row(p.dim);
  const int64_t pos = rule.Position(i);
  for (int64_t j = 0; j < seq.lk; ++j) {
    if (!rule.Visible(i, j)) continue;
    LoadRow(in.k, seq.batch, seq.k_begin + j, kvh, k_row.data());
    double dot = 0.0;
    for (int64_t d = 0; d < p.dim; ++d) dot += q_row[d] * k_row[d];
    const double x = p.scale_exact * dot;
    double s = x;
    if (p.softcap > 0) s = p.softcap * std::tanh(x / p.softcap);
    if (p.alibi_slopes) s -= static_cast<double>(p.alibi_slopes[h]) * std::abs(static_cast<double>(pos - j));
    r->x[j] = x;
    r->s[j] = s;
    r->visible[j] = 1;
  }
}

// log(sum_j exp(s_j) [+ exp(sink)]) over visible keys; +inf if no key (and no sink)
// carries any mass. NaN scores propagate; a +inf score gives NaN (softmax of +inf is
// undefined).
double LogSumExp(const RowScores& r, const double* sink) {
  double m = sink ? static_cast<double>(*sink) : -std::numeric_limits<double>::infinity();
  for (size_t j = 0; j < r.s.size(); ++j) {
    if (!r.visible[j]) continue;
    if (std::isnan(r.s[j])) return r.s[j];
    m = std::max(m, r.s[j]);
  }
  if (m == -std::numeric_limits<double>::infinity()) return std::numeric_limits<double>::infinity();
  double sum = sink ? std::exp(*sink - m) : 0.0;
  for (size_t j = 0; j < r.s.size(); ++j) {
    if (r.visible[j]) sum += std::exp(r.s[j] - m);
  }
  return m + std::log(sum);
}

ReferenceForwardResult Forward(const Problem& p, const Inputs& in) {
  ReferenceForwardResult res;
  const int64_t lq_total = p.q.seqlen;
  res.out.assign(p.batch * lq_total * p.hq * p.dim, 0.0);
  res.lse.assign(p.batch * p.hq * lq_total, 0.0);
  std::vector<double> q_row(p.dim), v_row(p.dim);
  RowScores r;
  for (int64_t si = 0; si < p.num_seqs; ++si) {
    const Sequence seq = p.Seq(si);
    for (int64_t h = 0; h < p.hq; ++h) {
      const BandRule rule(p.mask, p.windows[h], seq.lq, seq.lk);
      const double* sink = in.Sink(h);
      for (int64_t i = 0; i < seq.lq; ++i) {
        LoadRow(in.q, seq.batch, seq.q_begin + i, h, q_row.data());
        ScoreRow(p, in, seq, rule, h, i, q_row, &r);
        const double lse = LogSumExp(r, sink);
        res.lse[p.LseIndex(seq, h, i)] = lse;  // the sink logit itself for a sinked empty row
        double* o = &res.out[((seq.batch * lq_total + seq.q_begin + i) * p.hq + h) * p.dim];
        if (std::isinf(lse) && lse > 0) continue;  // no visible key: zeros
        for (int64_t j = 0; j < seq.lk; ++j) {
          if (!r.visible[j]) continue;
          const double w = std::exp(r.s[j] - lse);
          LoadRow(in.v, seq.batch, seq.k_begin + j, h / p.group(), v_row.data());
          for (int64_t d = 0; d < p.dim; ++d) o[d] += w * v_row[d];
        }
      }
    }
  }
  return res;
}

ReferenceBackwardResult Backward(const Problem& p, const Inputs& in) {
  ReferenceBackwardResult g;
  const int64_t lq_total = p.q.seqlen, lk_total = p.k.seqlen;
  g.dq.assign(p.batch * lq_total * p.hq * p.dim, 0.0);
  g.dk.assign(p.batch * lk_total * p.hkv * p.dim, 0.0);
  g.dv.assign(p.batch * lk_total * p.hkv * p.dim, 0.0);
  g.dsink.assign(p.hq, 0.0);
  std::vector<double> q_row(p.dim), k_row(p.dim), v_row(p.dim), do_row(p.dim), o_row(p.dim);
  RowScores r;
  for (int64_t si = 0; si < p.num_seqs; ++si) {
    const Sequence seq = p.Seq(si);
    for (int64_t h = 0; h < p.hq; ++h) {
      const int64_t kvh = h / p.group();
      const BandRule rule(p.mask, p.windows[h], seq.lq, seq.lk);
      const double* sink = in.Sink(h);
      for (int64_t i = 0; i < seq.lq; ++i) {
        LoadRow(in.q, seq.batch, seq.q_begin + i, h, q_row.data());
        LoadRow(in.dout, seq.batch, seq.q_begin + i, h, do_row.data());
        ScoreRow(p, in, seq, rule, h, i, q_row, &r);
        const double lse = LogSumExp(r, sink);
        if (std::isinf(lse) && lse > 0) continue;  // no visible key: no gradient
        // o_i = sum_j P_ij v_j, then D_i = dO_i . o_i.
        std::fill(o_row.begin(), o_row.end(), 0.0);
        for (int64_t j = 0; j < seq.lk; ++j) {
          if (!r.visible[j]) continue;
          LoadRow(in.v, seq.batch, seq.k_begin + j, kvh, v_row.data());
          const double w = std::exp(r.s[j] - lse);
          for (int64_t d = 0; d < p.dim; ++d) o_row[d] += w * v_row[d];
        }
        double di = 0.0;
        for (int64_t d = 0; d < p.dim; ++d) di += do_row[d] * o_row[d];
        // dsink = -P_sink * D_i (the sink joins the denominator and carries no value).
        if (sink) g.dsink[h] -= std::exp(*sink - lse) * di;
        double* dq = &g.dq[((seq.batch * lq_total + seq.q_begin + i) * p.hq + h) * p.dim];
        for (int64_t j = 0; j < seq.lk; ++j) {
          if (!r.visible[j]) continue;
          const int64_t krow = ((seq.batch * lk_total + seq.k_begin + j) * p.hkv + kvh) * p.dim;
          LoadRow(in.k, seq.batch, seq.k_begin + j, kvh, k_row.data());
          LoadRow(in.v, seq.batch, seq.k_begin + j, kvh, v_row.data());
          const double pij = std::exp(r.s[j] - lse);
          double dp = 0.0;
          for (int64_t d = 0; d < p.dim; ++d) dp += do_row[d] * v_row[d];
          double ds = pij * (dp - di);  // d loss / d s_ij
          if (p.softcap > 0) {          // s = c tanh(x / c): ds/dx = 1 - tanh^2
            const double t = std::tanh(r.x[j] / p.softcap);
            ds *= 1.0 - t * t;
          }
          const double dx = ds * p.scale_exact;  // x = scale * q.k
          for (int64_t d = 0; d < p.dim; ++d) {
            dq[d] += dx * k_row[d];
            g.dk[krow + d] += dx * q_row[d];
            g.dv[krow + d] += pij * do_row[d];
          }
        }
      }
    }
  }
  return g;
}

}  // namespace

ReferenceForwardResult ReferenceForward(const Problem& p) { return Forward(p, ProblemInputs(p, nullptr)); }

ReferenceBackwardResult ReferenceBackward(const Problem& p, const TensorRef& dout) {
  return Backward(p, ProblemInputs(p, &dout));
}

ReferenceForwardResult ReferenceForwardF64(const Problem& p, const double* q, const double* k,
                                           const double* v, const double* sink_logits) {
  return Forward(p, F64Inputs(p, q, k, v, nullptr, sink_logits));
}

ReferenceBackwardResult ReferenceBackwardF64(const Problem& p, const double* q, const double* k,
                                             const double* v, const double* dout, const double* sink_logits) {
  return Backward(p, F64Inputs(p, q, k, v, dout, sink_logits));
}

}  // namespace swa::attention
