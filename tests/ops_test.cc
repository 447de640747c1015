// Every SIMD op of src/ops against its plain twin (ops/scalar.h), on every target this CPU
// can run: each count from 0 to a few vectors, several misalignments, guard values around
// the outputs that must stay untouched, and special values (0, -0, inf, NaN, subnormals).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "ops/kernels.h"
#include "ops/layer_kernels.h"
#include "ops/layer_math.h"
#include "ops/scalar.h"
#include "ops/targets.h"

namespace swa {
namespace {

constexpr float kGuard = -12345.0f;
constexpr float kInf = std::numeric_limits<float>::infinity();

class OpsTest : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { ops::ForceTarget(GetParam()); }
  void TearDown() override { ops::ForceTarget(0); }
  // Counts 0 .. 3 vectors + 1 and the misalignments (in floats) every elementwise op runs.
  static std::vector<size_t> Counts() {
    std::vector<size_t> n;
    for (size_t i = 0; i <= 3 * ops::FloatLanes() + 1; ++i) n.push_back(i);
    return n;
  }
  std::mt19937 rng_{1234};
};

INSTANTIATE_TEST_SUITE_P(Targets, OpsTest, ::testing::ValuesIn(ops::RunnableTargets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return ops::TargetName(info.param);
                         });

TEST_P(OpsTest, DispatchesToTheForcedTarget) {
  EXPECT_EQ(ops::ActiveTargetName(), ops::TargetName(GetParam()));
}

// Runs an elementwise op on x[0, n) at each misalignment and checks y against `want`
// within `tolerance(want)`, NaN for NaN, and that the guards around y are untouched.
template <class Op, class Want, class Tolerance>
void CheckElementwise(const std::vector<float>& x, const Op& op, const Want& want, const Tolerance& tolerance,
                      const char* name) {
  for (size_t misalign = 0; misalign < 4; ++misalign) {
    const size_t n = x.size();
    std::vector<float> in(n + misalign + 8), out(n + misalign + 8, kGuard);
    std::copy(x.begin(), x.end(), in.begin() + misalign);
    op(in.data() + misalign, out.data() + misalign, n);
    for (size_t i = 0; i < out.size(); ++i) {
      if (i < misalign || i >= misalign + n) {
        ASSERT_EQ(out[i], kGuard) << name << ": wrote outside [0, " << n << ") at " << i;
        continue;
      }
      const float xi = x[i - misalign], yi = out[i];
      const double w = want(xi);
      if (std::isnan(w)) {
        EXPECT_TRUE(std::isnan(yi)) << name << "(" << xi << ") = " << yi;
      } else if (std::isinf(w)) {
        EXPECT_EQ(yi, static_cast<float>(w)) << name << "(" << xi << ")";
      } else {
        EXPECT_LE(std::abs(yi - w), tolerance(w)) << name << "(" << xi << ") = " << yi << ", want " << w;
      }
    }
  }
}

std::vector<float> RandomFloats(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> x(n);
  for (float& v : x) v = u(rng);
  return x;
}

// The softmax's exp against std::exp in double: a few ulps where it matters, exact 1 at
// 0, 0 for -inf and below the flush point, NaN kept.
TEST_P(OpsTest, ExpOfNonPositiveArguments) {
  std::vector<float> x;
  for (int i = 0; i <= 200000; ++i) x.push_back(-100.0f * static_cast<float>(i) / 200000.0f);
  for (float v : {0.0f, -0.0f, -1e-30f, -1e-7f, -0.5f, -0.3465736f, -86.0f, -86.8f, -86.99f, -87.5f, -1e30f})
    x.push_back(v);
  x.push_back(-kInf);
  x.push_back(std::nanf(""));
  x.push_back(-std::nanf(""));
  std::vector<float> y(x.size(), -1.0f);
  ops::ExpNonPositive(x.data(), y.data(), x.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) {
      EXPECT_TRUE(std::isnan(y[i])) << "exp(NaN) = " << y[i];
      continue;
    }
    const double want = ops::scalar::Exp(x[i]);
    if (x[i] < -87.0f) {
      EXPECT_EQ(y[i], 0.0f) << "exp(" << x[i] << ")";
    } else if (x[i] > -86.9f) {
      worst = std::max(worst, std::abs(y[i] - want) / want);
    }
  }
  // Positive arguments (the backward under an inconsistent lse) stay exp, up to +inf.
  const std::vector<float> positive = {1e-7f, 1.0f, 20.0f, 88.0f, 89.0f, 1e30f, kInf};
  std::vector<float> exp_positive(positive.size());
  ops::ExpNonPositive(positive.data(), exp_positive.data(), positive.size());
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(exp_positive[i], ops::scalar::Exp(positive[i]), 1e-6 * ops::scalar::Exp(positive[i]))
        << "exp(" << positive[i] << ")";
  }
  for (size_t i = 4; i < positive.size(); ++i) EXPECT_EQ(exp_positive[i], kInf);
  EXPECT_EQ(y[x.size() - 14], 1.0f);  // exp(0)
  EXPECT_EQ(y[x.size() - 13], 1.0f);  // exp(-0)
  EXPECT_LE(worst, 4 * 0x1p-24) << "worst relative error on [-86.9, 0]";
}

TEST_P(OpsTest, ExpAtEveryCountAndAlignment) {
  for (size_t n : Counts()) {
    CheckElementwise(
        RandomFloats(rng_, n, -80.0f, 0.0f),
        [](const float* x, float* y, size_t m) { ops::ExpNonPositive(x, y, m); },
        [](float x) { return ops::scalar::Exp(x); }, [](double w) { return 4 * 0x1p-24 * w; }, "exp");
  }
}

// tanh and soft-capping (Highway's rational tanh) against tanh in double: within a few
// ulps of the result, exact limits at +-inf, NaN kept.
TEST_P(OpsTest, TanhAndSoftcap) {
  auto tolerance = [](double w) { return 4 * 0x1p-24 * std::max(std::abs(w), 1e-30) + 1e-38; };
  std::vector<float> x = RandomFloats(rng_, 20000, -12.0f, 12.0f);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-6f, 0.25f, 0.5f, 0.625f, 1.0f, -1.0f, 9.0f, 9.5f, 20.0f,
                  -20.0f, 1e30f, -1e30f, kInf, -kInf, std::nanf("")})
    x.push_back(v);
  CheckElementwise(
      x, [](const float* in, float* out, size_t n) { ops::Tanh(in, out, n); },
      [](float v) { return ops::scalar::Tanh(v); }, tolerance, "tanh");
  for (float cap : {1.0f, 30.0f, 50.0f}) {
    CheckElementwise(
        x, [cap](const float* in, float* out, size_t n) { ops::Softcap(in, cap, out, n); },
        [cap](float v) { return ops::scalar::Softcap(v, cap); },
        // tanh's error plus the roundings of x / cap and cap * t.
        [](double w) { return 8 * 0x1p-24 * std::max(std::abs(w), 1e-30) + 1e-38; }, "softcap");
  }
  for (size_t n : Counts()) {
    CheckElementwise(
        RandomFloats(rng_, n, -5.0f, 5.0f),
        [](const float* in, float* out, size_t m) { ops::Tanh(in, out, m); },
        [](float v) { return ops::scalar::Tanh(v); }, tolerance, "tanh");
  }
}

// Bit patterns of every kind for a 16-bit dtype: random, zeros, subnormals, inf, NaN.
std::vector<uint16_t> Random16(std::mt19937& rng, size_t n) {
  std::uniform_int_distribution<int> u(0, 0xffff);
  std::vector<uint16_t> v(n);
  for (uint16_t& x : v) x = static_cast<uint16_t>(u(rng));
  const uint16_t special[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x7c00,
                              0xfc00, 0x7f80, 0xff80, 0x7e00, 0x7fc1};
  for (size_t i = 0; i < n && i < std::size(special); ++i) v[i] = special[i];
  return v;
}

bool SameFloat(float a, float b) { return (std::isnan(a) && std::isnan(b)) || FloatBits(a) == FloatBits(b); }

TEST_P(OpsTest, RowToFloatIsExact) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (size_t n : Counts()) {
      for (size_t misalign = 0; misalign < 3; ++misalign) {
        const size_t padded = n + misalign + 3;
        std::vector<uint16_t> bits = Random16(rng_, 2 * (n + misalign) + 2);
        const char* src = reinterpret_cast<const char*>(bits.data()) + misalign * DTypeSize(dtype);
        std::vector<float> got(padded + 2, kGuard), want(padded + 2, kGuard);
        ops::RowToFloat(src, dtype, n, padded, got.data());
        ops::scalar::RowToFloat(src, dtype, n, padded, want.data());
        for (size_t i = 0; i < got.size(); ++i) {
          ASSERT_TRUE(SameFloat(got[i], want[i]))
              << DTypeName(dtype) << " n=" << n << " element " << i << ": " << got[i] << " vs " << want[i];
        }
      }
    }
  }
}

TEST_P(OpsTest, RowFromFloatRoundsToNearestEven) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (size_t n : Counts()) {
      std::vector<float> src = RandomFloats(rng_, n, -70000.0f, 70000.0f);
      for (size_t i = 0; i < n; i += 3) src[i] *= 1e-6f;  // f16 subnormals
      if (n > 2) src[1] = std::nanf("");
      if (n > 3) src[2] = -kInf;
      for (float mul : {1.0f, 0.37f}) {
        std::vector<uint8_t> got(4 * n + 8, 0xAB), want(4 * n + 8, 0xAB);
        ops::RowFromFloat(src.data(), mul, n, dtype, got.data());
        ops::scalar::RowFromFloat(src.data(), mul, n, dtype, want.data());
        for (size_t i = 0; i < n; ++i) {
          const float g = LoadAsFloat(got.data(), dtype, static_cast<int64_t>(i));
          const float w = LoadAsFloat(want.data(), dtype, static_cast<int64_t>(i));
          ASSERT_TRUE(SameFloat(g, w))
              << DTypeName(dtype) << " element " << i << " of " << src[i] << " * " << mul;
        }
        for (size_t b = n * DTypeSize(dtype); b < got.size(); ++b)
          ASSERT_EQ(got[b], 0xAB) << "wrote past the row";
      }
    }
  }
}

TEST_P(OpsTest, AllFiniteFindsEveryNonFiniteEntry) {
  const size_t lanes = ops::FloatLanes();
  for (size_t dim : {size_t{1}, lanes - 1 + (lanes == 1), lanes, lanes + 3, 2 * lanes + 1}) {
    const size_t stride = (dim + lanes - 1) / lanes * lanes + lanes;
    for (size_t count : {size_t{0}, size_t{1}, size_t{5}}) {
      for (bool padded : {false, true}) {
        std::vector<float> rows = RandomFloats(rng_, count * stride, -3.0f, 3.0f);
        // Padding past dim: zero when padded (it is read), else non-finite (it must not be).
        for (size_t r = 0; r < count; ++r)
          for (size_t e = dim; e < stride; ++e)
            rows[r * stride + e] = padded && e < stride - lanes ? 0.0f : kInf;
        ASSERT_EQ(ops::AllFinite(rows.data(), stride, count, dim, padded),
                  ops::scalar::AllFinite(rows.data(), stride, count, dim));
        ASSERT_TRUE(ops::AllFinite(rows.data(), stride, count, dim, padded));
        for (size_t r = 0; r < count; ++r) {
          for (size_t e = 0; e < dim; ++e) {
            for (float bad : {kInf, -kInf, std::nanf("")}) {
              const float keep = rows[r * stride + e];
              rows[r * stride + e] = bad;
              EXPECT_FALSE(ops::AllFinite(rows.data(), stride, count, dim, padded))
                  << bad << " at row " << r << " element " << e << " dim " << dim;
              EXPECT_FALSE(ops::scalar::AllFinite(rows.data(), stride, count, dim));
              rows[r * stride + e] = keep;
            }
          }
        }
      }
    }
  }
}

// The tile GEMM on random shapes, strides, accumulation, padding and bands against the
// double-precision twin; rows and columns it must not write keep their guards.
TEST_P(OpsTest, TileGemmMatchesPlainGemm) {
  const size_t lanes = ops::FloatLanes();
  std::uniform_int_distribution<int> pick(0, 1 << 20);
  for (int trial = 0; trial < 400; ++trial) {
    ops::GemmArgs g;
    g.m = pick(rng_) % 20;
    g.n = pick(rng_) % (5 * lanes + 2);
    g.k = pick(rng_) % 40;
    const bool a_transposed = pick(rng_) % 2;
    g.accumulate = pick(rng_) % 2;
    g.b_padded = pick(rng_) % 2;
    const size_t vectors = (g.n + lanes - 1) / lanes;
    g.ldb = vectors * lanes + (pick(rng_) % 3) * lanes;
    g.ldc = vectors * lanes + (pick(rng_) % 2) * lanes + lanes;  // room for a guard vector
    const size_t lda = (a_transposed ? g.m : g.k) + pick(rng_) % 3;
    g.a_rs = a_transposed ? 1 : lda;
    g.a_cs = a_transposed ? lda : 1;
    std::vector<float> a = RandomFloats(rng_, (a_transposed ? g.k : g.m) * lda + 1, -1.0f, 1.0f);
    std::vector<float> b = RandomFloats(rng_, g.k * g.ldb + g.ldb, -1.0f, 1.0f);
    if (!g.b_padded) {
      // What TileGemm must not read: B past n in each row.
      for (size_t p = 0; p < g.k; ++p)
        for (size_t j = g.n; j < g.ldb; ++j) b[p * g.ldb + j] = std::nanf("");
    }
    std::vector<float> c0 = RandomFloats(rng_, (g.m + 1) * g.ldc, -1.0f, 1.0f);
    for (size_t r = 0; r < g.m; ++r)
      for (size_t j = vectors * lanes; j < g.ldc; ++j) c0[r * g.ldc + j] = kGuard;
    std::vector<ops::RowGroupBand> bands((g.m + ops::kGemmRowTile - 1) / ops::kGemmRowTile);
    const bool banded = pick(rng_) % 2;
    for (ops::RowGroupBand& band : bands) {
      const uint32_t v0 = pick(rng_) % (vectors + 1), v1 = v0 + pick(rng_) % (vectors + 2 - v0);
      const uint32_t k0 = pick(rng_) % (g.k + 1),
                     k1 = pick(rng_) % 4 == 0 ? UINT32_MAX : k0 + pick(rng_) % (g.k + 2 - k0);
      band = {v0, v1, k0, k1};
    }
    g.bands = banded ? bands.data() : nullptr;
    g.a = a.data();
    g.b = b.data();
    std::vector<float> got = c0, want = c0;
    g.c = got.data();
    ops::TileGemm(g);
    g.c = want.data();
    ops::scalar::TileGemm(g, lanes);
    for (size_t r = 0; r <= g.m; ++r) {
      const ops::RowGroupBand* band = banded && r < g.m ? &bands[r / ops::kGemmRowTile] : nullptr;
      const bool skipped = band != nullptr && band->k_begin >= std::min<size_t>(band->k_end, g.k);
      for (size_t j = 0; j < g.ldc; ++j) {
        const size_t i = r * g.ldc + j;
        const bool outside = r == g.m || j >= vectors * lanes || skipped;
        if (outside) {
          ASSERT_TRUE(SameFloat(got[i], c0[i])) << "trial " << trial << ": wrote C[" << r << "][" << j << "]";
          continue;
        }
        if (band != nullptr && (j / lanes < band->vec_begin || j / lanes >= band->vec_end))
          continue;  // unspecified
        ASSERT_NEAR(got[i], want[i], 1e-5 * (g.k + 1))
            << "trial " << trial << " C[" << r << "][" << j << "] m=" << g.m << " n=" << g.n << " k=" << g.k;
      }
    }
  }
}

TEST_P(OpsTest, DotRowsMatchesPlainDots) {
  const size_t lanes = ops::FloatLanes();
  std::uniform_int_distribution<int> pick(0, 1 << 20);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t rows = 1 + pick(rng_) % 9, cols = pick(rng_) % 70, dim = 1 + pick(rng_) % (4 * lanes + 3);
    const size_t ldq = (dim + lanes - 1) / lanes * lanes, ldk = dim + pick(rng_) % 5, lds = cols + 3;
    const size_t padded_rows = (rows + 3) / 4 * 4;
    std::vector<float> q(padded_rows * ldq, 0.0f);
    for (size_t r = 0; r < rows; ++r)
      for (size_t e = 0; e < dim; ++e) q[r * ldq + e] = RandomFloats(rng_, 1, -1.0f, 1.0f)[0];
    std::vector<float> k = RandomFloats(rng_, cols * ldk + 1, -1.0f, 1.0f);
    std::vector<float> got(padded_rows * lds, kGuard), want(padded_rows * lds, kGuard);
    ops::DotRows(rows, cols, dim, q.data(), ldq, k.data(), ldk, false, got.data(), lds);
    ops::scalar::DotRows(rows, cols, dim, q.data(), ldq, k.data(), ldk, want.data(), lds);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t j = 0; j < lds; ++j) {
        if (j >= cols) {
          ASSERT_EQ(got[r * lds + j], kGuard) << "wrote past the columns";
          continue;
        }
        ASSERT_NEAR(got[r * lds + j], want[r * lds + j], 1e-5 * dim) << "trial " << trial;
      }
    }
  }
}

// Largest |got - want| relative to max(1, |want|) over two arrays.
double MaxRelError(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
  }
  return worst;
}

std::vector<double> ToDouble(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

TEST_P(OpsTest, RmsNormMatchesPlainTwin) {
  for (int64_t d : {int64_t{1}, int64_t{3}, int64_t{8}, int64_t{17}, int64_t{64}, int64_t{383}}) {
    for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{5}}) {
      const std::vector<float> x = RandomFloats(rng_, n * d, -3.0f, 3.0f),
                               w = RandomFloats(rng_, d, 0.5f, 1.5f),
                               dy = RandomFloats(rng_, n * d, -1.0f, 1.0f);
      std::vector<float> y(n * d), rstd(n), dx(n * d), dw = RandomFloats(rng_, d, -1.0f, 1.0f);
      const std::vector<double> xd = ToDouble(x), wd = ToDouble(w), dyd = ToDouble(dy);
      std::vector<double> yd(n * d), rstdd(n), dxd(n * d), dwd = ToDouble(dw);
      ops::RmsNormForward(x.data(), w.data(), 1e-5, n, d, y.data(), rstd.data());
      ops::plain::RmsNormForward(xd.data(), wd.data(), 1e-5, n, d, yd.data(), rstdd.data());
      EXPECT_LE(MaxRelError(y, yd), 1e-5) << "d=" << d;
      EXPECT_LE(MaxRelError(rstd, rstdd), 1e-5) << "d=" << d;
      ops::RmsNormBackward(x.data(), w.data(), rstd.data(), dy.data(), n, d, dx.data(), dw.data());
      ops::plain::RmsNormBackward(xd.data(), wd.data(), rstdd.data(), dyd.data(), n, d, dxd.data(),
                                  dwd.data());
      EXPECT_LE(MaxRelError(dx, dxd), 1e-5) << "d=" << d;
      EXPECT_LE(MaxRelError(dw, dwd), 1e-5) << "d=" << d;
    }
  }
}

TEST_P(OpsTest, SwiGluMatchesPlainTwin) {
  for (size_t n : Counts()) {
    std::vector<float> g = RandomFloats(rng_, n, -8.0f, 8.0f), u = RandomFloats(rng_, n, -2.0f, 2.0f),
                       o = RandomFloats(rng_, n, -1.0f, 1.0f);
    if (n > 2) g[0] = 60.0f, g[1] = -60.0f;  // saturated sigmoid on both sides
    std::vector<float> out(n + 1, kGuard), dg(n + 1, kGuard), du(n + 1, kGuard);
    std::vector<double> outd(n), dgd(n), dud(n);
    const std::vector<double> gd = ToDouble(g), ud = ToDouble(u), od = ToDouble(o);
    ops::SwiGluForward(g.data(), u.data(), static_cast<int64_t>(n), out.data());
    ops::SwiGluBackward(g.data(), u.data(), o.data(), static_cast<int64_t>(n), dg.data(), du.data());
    ops::plain::SwiGluForward(gd.data(), ud.data(), static_cast<int64_t>(n), outd.data());
    ops::plain::SwiGluBackward(gd.data(), ud.data(), od.data(), static_cast<int64_t>(n), dgd.data(),
                               dud.data());
    EXPECT_EQ(out[n], kGuard);
    EXPECT_EQ(dg[n], kGuard);
    EXPECT_EQ(du[n], kGuard);
    out.pop_back();
    dg.pop_back();
    du.pop_back();
    EXPECT_LE(MaxRelError(out, outd), 1e-6) << "n=" << n;
    EXPECT_LE(MaxRelError(dg, dgd), 1e-6) << "n=" << n;
    EXPECT_LE(MaxRelError(du, dud), 1e-6) << "n=" << n;
  }
}

TEST_P(OpsTest, SoftmaxCrossEntropyMatchesPlainTwin) {
  std::uniform_int_distribution<int> pick(0, 1 << 20);
  for (int64_t v : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{259}}) {
    for (double cap : {0.0, 30.0, 2.0}) {
      const int64_t n = 6;
      const std::vector<float> z = RandomFloats(rng_, n * v, -20.0f, 20.0f);
      std::vector<int32_t> targets(n);
      for (int32_t& t : targets) t = pick(rng_) % static_cast<int>(v);
      targets[2] = -7;  // ignored
      const float scale = 1.0f / 5;
      std::vector<float> dz(n * v, kGuard);
      std::vector<double> dzd(n * v);
      const std::vector<double> zd = ToDouble(z);
      const double loss = ops::SoftmaxCrossEntropy(z.data(), targets.data(), n, v, cap, -7, scale, dz.data());
      const double want =
          ops::plain::SoftmaxCrossEntropy(zd.data(), targets.data(), n, v, cap, -7, 1.0 / 5, dzd.data());
      EXPECT_NEAR(loss, want, 1e-5 * std::max(1.0, std::abs(want))) << "v=" << v << " cap=" << cap;
      EXPECT_LE(MaxRelError(dz, dzd), 2e-6) << "v=" << v << " cap=" << cap;
      for (int64_t j = 0; j < v; ++j) EXPECT_EQ(dz[2 * v + j], 0.0f);
    }
  }
}

}  // namespace
}  // namespace swa
