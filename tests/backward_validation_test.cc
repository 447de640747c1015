// Bad arguments specific to swa_attention_backward get a negative code and a message
// naming them, and nothing is written to dq, dk, dv or dsink.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "harness/attention_case.h"
#include "swa/swa.h"

namespace swa {
namespace {

using harness::AttnCase;
using harness::CaseData;
using harness::GuardedFloats;
using harness::GuardedTensor;
using harness::Layout;

// A valid backward call that each test breaks in one way.
struct Call {
  CaseData data;
  GuardedTensor dout_t, dq_t, dk_t, dv_t;
  GuardedFloats dsink_buf;
  swa_attention_params params;
  swa_tensor q, k, v, out, dout, dq, dk, dv;
  const float* lse;
  float* dsink;
  std::vector<uint8_t> dq_before, dk_before, dv_before;
  std::vector<float> dsink_before;

  explicit Call(const AttnCase& c = Base())
      : data(c),
        dout_t(c.dtype, c.Batch(), c.TotalQ(), c.hq, c.dim, Layout::kContiguous),
        dq_t(c.dtype, c.Batch(), c.TotalQ(), c.hq, c.dim, Layout::kContiguous),
        dk_t(c.dtype, c.Batch(), c.TotalK(), c.hkv, c.dim, Layout::kContiguous),
        dv_t(c.dtype, c.Batch(), c.TotalK(), c.hkv, c.dim, Layout::kContiguous),
        dsink_buf(c.hq, -7.0f) {
    // A real forward provides out and lse.
    EXPECT_EQ(swa_attention_forward(&data.params(), &data.q.view(), &data.k.view(), &data.v.view(),
                                    &data.out.view(), data.lse.data()),
              0)
        << swa_last_error();
    std::mt19937_64 rng(5);
    dout_t.FillNormal(rng);
    dq_t.Poison();
    dk_t.Poison();
    dv_t.Poison();
    params = data.params();
    q = data.q.view();
    k = data.k.view();
    v = data.v.view();
    out = data.out.view();
    lse = data.lse.data();
    dout = dout_t.view();
    dq = dq_t.view();
    dk = dk_t.view();
    dv = dv_t.view();
    dsink = dsink_buf.data();
    dq_before = dq_t.ElementBytes();
    dk_before = dk_t.ElementBytes();
    dv_before = dv_t.ElementBytes();
    dsink_before.assign(dsink, dsink + c.hq);
  }
  static AttnCase Base() {
    AttnCase c;
    c.lq = c.lk = 20;
    c.hq = 4;
    c.hkv = 2;
    c.dim = 8;
    c.sink_logits = true;
    return c;
  }
  int Run() { return swa_attention_backward(&params, &q, &k, &v, &out, lse, &dout, &dq, &dk, &dv, dsink); }
  bool OutputsUntouched() const {
    return dq_t.ElementBytes() == dq_before && dk_t.ElementBytes() == dk_before &&
           dv_t.ElementBytes() == dv_before && dq_t.GuardsIntact() && dk_t.GuardsIntact() &&
           dv_t.GuardsIntact() && dsink_buf.GuardsIntact() &&
           std::memcmp(dsink_before.data(), dsink_buf.data(), dsink_before.size() * sizeof(float)) == 0;
  }
};

// Breaks a valid call with `edit`, runs it, and checks the code, message and outputs.
void ExpectRejected(const std::function<void(Call&)>& edit, const std::string& message_part,
                    int code = SWA_ERR_INVALID_ARGUMENT) {
  {
    Call call;
    ASSERT_EQ(call.Run(), 0) << swa_last_error();  // the unbroken call works
  }
  Call broken;
  edit(broken);
  const int rc = broken.Run();
  EXPECT_EQ(rc, code) << "expected rejection mentioning '" << message_part << "'";
  EXPECT_NE(std::string(swa_last_error()).find(message_part), std::string::npos)
      << "message: " << swa_last_error();
  EXPECT_TRUE(broken.OutputsUntouched()) << "a rejected call wrote to its outputs";
}

TEST(BackwardValidationTest, ValidCallWritesEveryOutput) {
  Call c;
  ASSERT_EQ(c.Run(), 0) << swa_last_error();
  EXPECT_NE(c.dq_t.ElementBytes(), c.dq_before);
  EXPECT_NE(c.dk_t.ElementBytes(), c.dk_before);
  EXPECT_NE(c.dv_t.ElementBytes(), c.dv_before);
  for (int64_t h = 0; h < 4; ++h) EXPECT_NE(c.dsink[h], -7.0f);
}

TEST(BackwardValidationTest, NullPointers) {
  ExpectRejected([](Call& c) { c.lse = nullptr; }, "lse is NULL");
  Call c;
  EXPECT_EQ(swa_attention_backward(&c.params, &c.q, &c.k, &c.v, &c.out, c.lse, nullptr, &c.dq, &c.dk, &c.dv,
                                   c.dsink),
            SWA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(swa_last_error()).find("dout is NULL"), std::string::npos) << swa_last_error();
  EXPECT_EQ(swa_attention_backward(&c.params, &c.q, &c.k, &c.v, nullptr, c.lse, &c.dout, &c.dq, &c.dk, &c.dv,
                                   c.dsink),
            SWA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(swa_last_error()).find("out is NULL"), std::string::npos) << swa_last_error();
  EXPECT_EQ(swa_attention_backward(&c.params, &c.q, &c.k, &c.v, &c.out, c.lse, &c.dout, nullptr, &c.dk, &c.dv,
                                   c.dsink),
            SWA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(swa_last_error()).find("dq is NULL"), std::string::npos) << swa_last_error();
  EXPECT_EQ(swa_attention_backward(&c.params, &c.q, &c.k, &c.v, &c.out, c.lse, &c.dout, &c.dq, nullptr, &c.dv,
                                   c.dsink),
            SWA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(swa_last_error()).find("dk is NULL"), std::string::npos) << swa_last_error();
  EXPECT_EQ(swa_attention_backward(&c.params, &c.q, &c.k, &c.v, &c.out, c.lse, &c.dout, &c.dq, &c.dk, nullptr,
                                   c.dsink),
            SWA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(swa_last_error()).find("dv is NULL"), std::string::npos) << swa_last_error();
  EXPECT_EQ(
      swa_attention_backward(nullptr, &c.q, &c.k, &c.v, &c.out, c.lse, &c.dout, &c.dq, &c.dk, &c.dv, c.dsink),
      SWA_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(c.OutputsUntouched());
  ExpectRejected([](Call& c) { c.dout.data = nullptr; }, "dout.data is NULL");
  ExpectRejected([](Call& c) { c.dk.data = nullptr; }, "dk.data is NULL");
}

TEST(BackwardValidationTest, NullDataAndLseAreFineForEmptyTensors) {
  AttnCase c = Call::Base();
  c.lq = 0;
  Call call(c);
  call.q.data = call.out.data = call.dout.data = call.dq.data = nullptr;
  call.lse = nullptr;
  EXPECT_EQ(call.Run(), 0) << swa_last_error();
  // No query rows: dk and dv are zero, and so is dsink.
  for (int64_t l = 0; l < c.lk; ++l)
    for (int64_t h = 0; h < c.hkv; ++h)
      for (int64_t d = 0; d < c.dim; ++d) {
        ASSERT_EQ(call.dk_t.Get(0, l, h, d), 0.0f);
        ASSERT_EQ(call.dv_t.Get(0, l, h, d), 0.0f);
      }
  for (int64_t h = 0; h < c.hq; ++h) EXPECT_EQ(call.dsink[h], 0.0f);
}

TEST(BackwardValidationTest, GradientShapesMustMatch) {
  ExpectRejected([](Call& c) { c.dout.shape[1] = 19; }, "dout");
  ExpectRejected([](Call& c) { c.dout.shape[2] = 2; }, "dout");
  ExpectRejected([](Call& c) { c.dq.shape[3] = 4; }, "dq");
  ExpectRejected([](Call& c) { c.dq.shape[1] = 10; }, "dq");
  ExpectRejected([](Call& c) { c.dk.shape[2] = 4; }, "dk");
  ExpectRejected([](Call& c) { c.dv.shape[1] = 21; }, "dv");
  ExpectRejected([](Call& c) { c.dk.shape[0] = 2; }, "dk");
  ExpectRejected([](Call& c) { c.dq.stride[3] = 2; }, "dq.stride[3]");
}

TEST(BackwardValidationTest, GradientDTypesMustMatch) {
  ExpectRejected([](Call& c) { c.dout.dtype = SWA_BF16; }, "dtype of q");
  ExpectRejected([](Call& c) { c.dq.dtype = SWA_F16; }, "dtype of q");
  ExpectRejected([](Call& c) { c.dk.dtype = SWA_BF16; }, "dtype of q");
  ExpectRejected([](Call& c) { c.dv.dtype = SWA_F16; }, "dtype of q");
  ExpectRejected([](Call& c) { c.dq.device = SWA_CUDA; }, "CUDA", SWA_ERR_UNSUPPORTED);
}

TEST(BackwardValidationTest, OutputsMustNotAliasInputsOrEachOther) {
  ExpectRejected([](Call& c) { c.dq.data = c.q.data; }, "dq overlaps the memory of q");
  ExpectRejected([](Call& c) { c.dq.data = c.dout.data; }, "dq overlaps the memory of dout");
  ExpectRejected([](Call& c) { c.dk.data = c.v.data; }, "dk overlaps the memory of v");
  ExpectRejected([](Call& c) { c.dv.data = c.out.data; }, "dv overlaps the memory of out");
  ExpectRejected([](Call& c) { c.dv.data = c.dk.data; }, "overlaps the memory of dv");
  ExpectRejected([](Call& c) { c.dsink = const_cast<float*>(c.lse); }, "dsink overlaps the memory of lse");
  ExpectRejected([](Call& c) { c.dsink = static_cast<float*>(c.dq.data); }, "overlaps the memory of dsink");
  ExpectRejected([](Call& c) { c.dk.stride[1] = 0; }, "overlapping strides");
}

TEST(BackwardValidationTest, ParamsAreValidatedAsInTheForward) {
  ExpectRejected([](Call& c) { c.params.window_left = -2; }, "window_left");
  ExpectRejected([](Call& c) { c.params.num_threads = -1; }, "num_threads");
  static const int32_t kShort[] = {0, 10, 19};
  ExpectRejected(
      [](Call& c) {
        c.params.cu_seqlens_q = kShort;
        c.params.cu_seqlens_k = kShort;
        c.params.num_seqs = 2;
      },
      "packed length");
}

}  // namespace
}  // namespace swa
