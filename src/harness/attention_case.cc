#include "harness/attention_case.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "attention/reference.h"
#include "attention/validate.h"

namespace swa::harness {

std::string AttnCase::Name() const {
  std::ostringstream s;
  s << DTypeName(dtype);
  if (varlen.empty()) {
    s << " B" << batch << " Lq" << lq << " Lk" << lk;
  } else {
    s << " varlen[";
    for (size_t i = 0; i < varlen.size(); ++i) s << (i ? "," : "") << varlen[i].first << "/" << varlen[i].second;
    s << "]";
  }
  s << " H" << hq << "/" << hkv << " D" << dim;
  if (chunk > 0) {
    s << " chunk(" << chunk << "," << overlap << ")";
  } else if (left >= 0 || right >= 0) {
    s << " win(" << left << "," << right << ")";
  }
  if (!head_left.empty() || !head_right.empty()) {
    s << " heads(";
    for (int64_t h = 0; h < hq; ++h) {
      s << (h ? " " : "") << (head_left.empty() ? left : head_left[h]) << ","
        << (head_right.empty() ? right : head_right[h]);
    }
    s << ")";
  }
  if (causal) s << " causal";
  if (sink_tokens) s << " sinks" << sink_tokens;
  if (sink_logits) s << " sinklogits";
  if (!globals.empty()) s << " globals" << globals.size();
  if (alibi) s << " alibi";
  if (softcap > 0) s << " softcap" << softcap;
  if (scale != 0) s << " scale" << scale;
  if (layout != Layout::kContiguous) s << " " << LayoutName(layout);
  s << " t" << threads;
  return s.str();
}

int64_t AttnCase::TotalQ() const {
  if (varlen.empty()) return lq;
  int64_t n = 0;
  for (const auto& [a, b] : varlen) n += a;
  return n;
}

int64_t AttnCase::TotalK() const {
  if (varlen.empty()) return lk;
  int64_t n = 0;
  for (const auto& [a, b] : varlen) n += b;
  return n;
}

CaseData::CaseData(const AttnCase& c)
    : q(c.dtype, c.Batch(), c.TotalQ(), c.hq, c.dim, c.layout),
      k(c.dtype, c.Batch(), c.TotalK(), c.hkv, c.dim, c.layout),
      v(c.dtype, c.Batch(), c.TotalK(), c.hkv, c.dim, c.layout),
      out(c.dtype, c.Batch(), c.TotalQ(), c.hq, c.dim, c.layout),
      lse(c.Batch() * c.hq * c.TotalQ(), std::nanf("")),
      spec_(c) {
  std::mt19937_64 rng(c.seed);
  q.FillNormal(rng);
  k.FillNormal(rng);
  v.FillNormal(rng);
  out.Poison();
  swa_attention_params_init(&params_);
  params_.window_left = c.left;
  params_.window_right = c.right;
  params_.causal = c.causal;
  params_.scale = c.scale;
  params_.softcap = c.softcap;
  params_.sink_tokens = c.sink_tokens;
  params_.chunk_size = c.chunk;
  params_.chunk_overlap = c.overlap;
  params_.num_threads = c.threads;
  if (!c.head_left.empty()) {
    head_left_ = c.head_left;
    params_.head_window_left = head_left_.data();
  }
  if (!c.head_right.empty()) {
    head_right_ = c.head_right;
    params_.head_window_right = head_right_.data();
  }
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  if (c.alibi) {
    for (int64_t h = 0; h < c.hq; ++h) slopes_.push_back(std::exp2(-8.0f * (h + 1) / c.hq));
    params_.alibi_slopes = slopes_.data();
  }
  if (c.sink_logits) {
    for (int64_t h = 0; h < c.hq; ++h) sinks_.push_back(4.0f * unit(rng) - 2.0f);
    params_.sink_logits = sinks_.data();
  }
  if (!c.globals.empty()) {
    globals_ = c.globals;
    params_.global_tokens = globals_.data();
    params_.num_global_tokens = static_cast<int64_t>(globals_.size());
  }
  if (!c.varlen.empty()) {
    cu_q_.push_back(0);
    cu_k_.push_back(0);
    for (const auto& [a, b] : c.varlen) {
      cu_q_.push_back(cu_q_.back() + a);
      cu_k_.push_back(cu_k_.back() + b);
    }
    params_.cu_seqlens_q = cu_q_.data();
    params_.cu_seqlens_k = cu_k_.data();
    params_.num_seqs = static_cast<int64_t>(c.varlen.size());
  }
}

double ForwardTolerance(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 2e-5;
    case DType::kF16:
      return 2e-3;
    case DType::kBF16:
      return 1.6e-2;
  }
  return 0;
}

bool CaseResult::Passed() const {
  return code == 0 && out_err <= tolerance && lse_err <= kLseTolerance && nan_parity && guards_intact;
}

std::string CaseResult::Describe() const {
  std::ostringstream s;
  if (code != 0) {
    s << "returned " << code << ": " << message;
    return s.str();
  }
  s << "out_err " << out_err << " (tol " << tolerance << "), lse_err " << lse_err << " (tol " << kLseTolerance
    << ")";
  if (!nan_parity) s << ", NaN/Inf pattern differs from the oracle (" << first_mismatch << ")";
  if (!guards_intact) s << ", wrote outside its outputs";
  return s.str();
}

namespace {

bool SameNonFinite(double got, double ref) {
  if (std::isnan(ref) || std::isnan(got)) return std::isnan(ref) && std::isnan(got);
  if (std::isinf(ref) || std::isinf(got)) return got == ref;
  return true;
}

}  // namespace

CaseResult RunForwardCase(const AttnCase& c, void (*prepare)(CaseData&)) {
  CaseData data(c);
  if (prepare) prepare(data);
  CaseResult r;
  r.tolerance = ForwardTolerance(c.dtype);
  r.code = swa_attention_forward(&data.params(), &data.q.view(), &data.k.view(), &data.v.view(),
                                 &data.out.view(), data.lse.data());
  if (r.code != 0) {
    r.message = swa_last_error();
    return r;
  }
  r.guards_intact = data.q.GuardsIntact() && data.k.GuardsIntact() && data.v.GuardsIntact() &&
                    data.out.GuardsIntact() && data.lse.GuardsIntact();
  const auto vp = attention::ValidateForward(&data.params(), &data.q.view(), &data.k.view(),
                                             &data.v.view(), &data.out.view(), data.lse.data());
  const auto ref = attention::ReferenceForward(vp->problem);
  const int64_t rows = c.TotalQ();
  double max_ref = 0, max_diff = 0;
  for (int64_t b = 0; b < c.Batch(); ++b)
    for (int64_t l = 0; l < rows; ++l)
      for (int64_t h = 0; h < c.hq; ++h)
        for (int64_t d = 0; d < c.dim; ++d) {
          const double want = ref.out[((b * rows + l) * c.hq + h) * c.dim + d];
          const double got = data.out.Get(b, l, h, d);
          if (!SameNonFinite(got, want) && r.nan_parity) {
            r.nan_parity = false;
            r.first_mismatch = "out[" + std::to_string(b) + "," + std::to_string(l) + "," + std::to_string(h) + "," +
                               std::to_string(d) + "] = " + std::to_string(got) + ", oracle " + std::to_string(want);
          }
          if (!std::isfinite(want) || !std::isfinite(got)) continue;
          max_ref = std::max(max_ref, std::abs(want));
          max_diff = std::max(max_diff, std::abs(got - want));
        }
  r.out_err = max_diff / (max_ref > 0 ? max_ref : 1.0);
  for (int64_t i = 0; i < data.lse.size(); ++i) {
    const double want = ref.lse[i], got = data.lse.data()[i];
    if (!SameNonFinite(got, want) && r.nan_parity) {
      r.nan_parity = false;
      r.first_mismatch = "lse[" + std::to_string(i) + "] = " + std::to_string(got) + ", oracle " + std::to_string(want);
    }
    if (std::isfinite(want) && std::isfinite(got)) {
      r.lse_err = std::max(r.lse_err, std::abs(got - want) / std::max(1.0, std::abs(want)));
    }
  }
  r.out_bytes = data.out.ElementBytes();
  r.lse_bytes.resize(data.lse.size() * sizeof(float));
  if (!r.lse_bytes.empty()) std::memcpy(r.lse_bytes.data(), data.lse.data(), r.lse_bytes.size());
  return r;
}

}  // namespace swa::harness
