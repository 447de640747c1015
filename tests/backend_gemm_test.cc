// The model's f32 GEMM (model/backend.h) against a plain double loop, for every
// transpose combination, with padded leading dimensions, alpha and beta: one-row
// products (a decode step, sent to sgemv) and several rows (sgemm), and an empty sum.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "model/backend.h"

namespace swa::model {
namespace {

struct Case {
  bool trans_a, trans_b;
  int64_t m, n, k;
};

class BackendGemmTest : public ::testing::TestWithParam<Case> {};

TEST_P(BackendGemmTest, MatchesPlainLoop) {
  const Case c = GetParam();
  // Stored shapes: A is [m, k] or, transposed, [k, m]; B is [k, n] or [n, k]. Rows are
  // padded by 3 so that a stride mix-up reads the wrong numbers.
  const int64_t a_rows = c.trans_a ? c.k : c.m, a_cols = c.trans_a ? c.m : c.k;
  const int64_t b_rows = c.trans_b ? c.n : c.k, b_cols = c.trans_b ? c.k : c.n;
  const int64_t lda = a_cols + 3, ldb = b_cols + 3, ldc = c.n + 3;
  std::mt19937_64 rng(static_cast<uint64_t>(c.m * 131 + c.n * 17 + c.k + c.trans_a * 2 + c.trans_b));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(std::max<int64_t>(a_rows, 1) * lda));
  std::vector<float> b(static_cast<size_t>(std::max<int64_t>(b_rows, 1) * ldb));
  std::vector<float> out(static_cast<size_t>(c.m * ldc));
  for (float& x : a) x = dist(rng);
  for (float& x : b) x = dist(rng);
  for (float& x : out) x = dist(rng);
  const std::vector<float> before = out;
  const float alpha = 0.75f, beta = -0.5f;

  Backend<float>::Gemm(c.trans_a, c.trans_b, c.m, c.n, c.k, alpha, a.data(), lda, b.data(), ldb, beta,
                       out.data(), ldc);

  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const size_t at = static_cast<size_t>(i * ldc + j);
      if (j >= c.n) {
        EXPECT_EQ(out[at], before[at]) << "padding of row " << i << " was written";
        continue;
      }
      double sum = 0;
      for (int64_t p = 0; p < c.k; ++p) {
        const double av =
            c.trans_a ? a[static_cast<size_t>(p * lda + i)] : a[static_cast<size_t>(i * lda + p)];
        const double bv =
            c.trans_b ? b[static_cast<size_t>(j * ldb + p)] : b[static_cast<size_t>(p * ldb + j)];
        sum += av * bv;
      }
      const double want = alpha * sum + beta * static_cast<double>(before[at]);
      EXPECT_NEAR(out[at], want, 1e-5 * (1 + c.k)) << "C[" << i << "][" << j << "]";
    }
  }
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (int64_t m : {1, 3}) {
        cases.push_back({ta, tb, m, 37, 29});
        cases.push_back({ta, tb, m, 1, 64});
        cases.push_back({ta, tb, m, 5, 0});  // empty sum: C = beta C
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllTransposes, BackendGemmTest, ::testing::ValuesIn(Cases()));

}  // namespace
}  // namespace swa::model
