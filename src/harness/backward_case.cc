#include "harness/backward_case.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>

#include "attention/reference.h"
#include "attention/validate.h"

namespace swa::harness {

double BackwardTolerance(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 1e-4;
    case DType::kF16:
      return 3e-3;
    case DType::kBF16:
      return 3e-2;
  }
  return 0;
}

bool BackwardResult::Passed() const {
  return code == 0 && dq_err <= tolerance && dk_err <= tolerance && dv_err <= tolerance &&
         dsink_err <= tolerance && all_finite && guards_intact && inputs_untouched;
}

std::string BackwardResult::Describe() const {
  std::ostringstream s;
  if (code != 0) {
    s << "returned " << code << ": " << message;
    return s.str();
  }
  s << "dq_err " << dq_err << ", dk_err " << dk_err << ", dv_err " << dv_err << ", dsink_err " << dsink_err
    << " (tol " << tolerance << ")";
  if (!all_finite) s << ", non-finite gradient (" << first_bad << ")";
  if (!guards_intact) s << ", wrote outside its outputs";
  if (!inputs_untouched) s << ", modified an input";
  return s.str();
}

namespace {

std::vector<uint8_t> FloatBytes(const GuardedFloats& f) {
  std::vector<uint8_t> bytes(static_cast<size_t>(f.size()) * sizeof(float));
  if (!bytes.empty()) std::memcpy(bytes.data(), f.data(), bytes.size());
  return bytes;
}

// Compares a gradient tensor with the oracle's (contiguous [B, L, H, D]) values.
double CompareTensor(const GuardedTensor& got, const std::vector<double>& want, const char* name,
                     BackwardResult* r) {
  const swa_tensor& v = got.view();
  double max_ref = 0, max_diff = 0;
  for (int64_t b = 0; b < v.shape[0]; ++b)
    for (int64_t l = 0; l < v.shape[1]; ++l)
      for (int64_t h = 0; h < v.shape[2]; ++h)
        for (int64_t d = 0; d < v.shape[3]; ++d) {
          const double ref =
              want[static_cast<size_t>(((b * v.shape[1] + l) * v.shape[2] + h) * v.shape[3] + d)];
          const double x = got.Get(b, l, h, d);
          if (!std::isfinite(x)) {
            if (r->all_finite) {
              r->first_bad = std::string(name) + "[" + std::to_string(b) + "," + std::to_string(l) + "," +
                             std::to_string(h) + "," + std::to_string(d) + "] = " + std::to_string(x);
            }
            r->all_finite = false;
            continue;
          }
          max_ref = std::max(max_ref, std::abs(ref));
          max_diff = std::max(max_diff, std::abs(x - ref));
        }
  return max_diff / (max_ref > 0 ? max_ref : 1.0);
}

}  // namespace

BackwardResult RunBackwardCase(const AttnCase& c, const BackwardOptions& options) {
  CaseData data(c);
  const Layout grad_layout = options.grad_layout.value_or(c.layout);
  BackwardResult r;
  r.tolerance = BackwardTolerance(c.dtype);

  // The forward's outputs, from the oracle, stored as the caller's forward would.
  {
    const auto vp = attention::ValidateForward(&data.params(), &data.q.view(), &data.k.view(), &data.v.view(),
                                               &data.out.view(), data.lse.data());
    const auto ref = attention::ReferenceForward(vp->problem);
    const int64_t rows = c.TotalQ();
    for (int64_t b = 0; b < c.Batch(); ++b)
      for (int64_t l = 0; l < rows; ++l)
        for (int64_t h = 0; h < c.hq; ++h)
          for (int64_t d = 0; d < c.dim; ++d) {
            data.out.Set(b, l, h, d, static_cast<float>(ref.out[((b * rows + l) * c.hq + h) * c.dim + d]));
          }
    for (int64_t i = 0; i < data.lse.size(); ++i) data.lse.data()[i] = static_cast<float>(ref.lse[i]);
  }
  GuardedTensor dout(c.dtype, c.Batch(), c.TotalQ(), c.hq, c.dim, c.layout);
  std::mt19937_64 rng(c.seed * 7919 + 13);
  dout.FillNormal(rng);
  GuardedTensor dq(c.dtype, c.Batch(), c.TotalQ(), c.hq, c.dim, grad_layout);
  GuardedTensor dk(c.dtype, c.Batch(), c.TotalK(), c.hkv, c.dim, grad_layout);
  GuardedTensor dv(c.dtype, c.Batch(), c.TotalK(), c.hkv, c.dim, grad_layout);
  dq.Poison();
  dk.Poison();
  dv.Poison();
  GuardedFloats dsink(c.hq, std::numeric_limits<float>::quiet_NaN());

  const std::vector<uint8_t> q0 = data.q.ElementBytes(), k0 = data.k.ElementBytes(),
                             v0 = data.v.ElementBytes(), out0 = data.out.ElementBytes(),
                             dout0 = dout.ElementBytes(), lse0 = FloatBytes(data.lse);
  r.code = swa_attention_backward(&data.params(), &data.q.view(), &data.k.view(), &data.v.view(),
                                  &data.out.view(), data.lse.data(), &dout.view(), &dq.view(), &dk.view(),
                                  &dv.view(), options.pass_dsink ? dsink.data() : nullptr);
  if (r.code != 0) {
    r.message = swa_last_error();
    return r;
  }
  r.guards_intact = data.q.GuardsIntact() && data.k.GuardsIntact() && data.v.GuardsIntact() &&
                    data.out.GuardsIntact() && data.lse.GuardsIntact() && dout.GuardsIntact() &&
                    dq.GuardsIntact() && dk.GuardsIntact() && dv.GuardsIntact() && dsink.GuardsIntact();
  r.inputs_untouched = data.q.ElementBytes() == q0 && data.k.ElementBytes() == k0 &&
                       data.v.ElementBytes() == v0 && data.out.ElementBytes() == out0 &&
                       dout.ElementBytes() == dout0 && FloatBytes(data.lse) == lse0;

  r.dq_bytes = dq.ElementBytes();
  r.dk_bytes = dk.ElementBytes();
  r.dv_bytes = dv.ElementBytes();
  if (options.pass_dsink) r.dsink_bytes = FloatBytes(dsink);
  if (!options.check_oracle) return r;

  attention::BackwardTensors grads;
  const auto vp = attention::ValidateBackward(&data.params(), &data.q.view(), &data.k.view(), &data.v.view(),
                                              &data.out.view(), data.lse.data(), &dout.view(), &dq.view(),
                                              &dk.view(), &dv.view(), nullptr, &grads);
  const attention::ReferenceBackwardResult ref = attention::ReferenceBackward(vp->problem, grads.dout);
  r.dq_err = CompareTensor(dq, ref.dq, "dq", &r);
  r.dk_err = CompareTensor(dk, ref.dk, "dk", &r);
  r.dv_err = CompareTensor(dv, ref.dv, "dv", &r);
  if (options.pass_dsink) {
    double max_ref = 0, max_diff = 0;
    for (int64_t h = 0; h < c.hq; ++h) {
      const double x = dsink.data()[h];
      if (!std::isfinite(x)) {
        if (r.all_finite) r.first_bad = "dsink[" + std::to_string(h) + "] = " + std::to_string(x);
        r.all_finite = false;
        continue;
      }
      max_ref = std::max(max_ref, std::abs(ref.dsink[h]));
      max_diff = std::max(max_diff, std::abs(x - ref.dsink[h]));
    }
    r.dsink_err = max_diff / (max_ref > 0 ? max_ref : 1.0);
  }
  return r;
}

}  // namespace swa::harness
