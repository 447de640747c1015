// Every class of bad argument gets a negative code and a message naming it, and
// nothing is written to the outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include "harness/attention_case.h"
#include "swa/swa.h"

namespace swa {
namespace {

using harness::AttnCase;
using harness::CaseData;

// A valid call that each test breaks in one way.
struct Call {
  CaseData data;
  swa_attention_params params;
  swa_tensor q, k, v, out;
  float* lse;
  std::vector<uint8_t> out_before;
  std::vector<float> lse_before;

  explicit Call(AttnCase c = Base()) : data(c) {
    params = data.params();
    q = data.q.view();
    k = data.k.view();
    v = data.v.view();
    out = data.out.view();
    lse = data.lse.data();
    out_before = data.out.ElementBytes();
    lse_before.assign(lse, lse + data.lse.size());
  }
  static AttnCase Base() {
    AttnCase c;
    c.lq = c.lk = 20;
    c.hq = 4;
    c.hkv = 2;
    c.dim = 8;
    return c;
  }
  int Run() { return swa_attention_forward(&params, &q, &k, &v, &out, lse); }
  bool OutputsUntouched() const {
    return data.out.ElementBytes() == out_before && data.out.GuardsIntact() && data.lse.GuardsIntact() &&
           std::memcmp(lse_before.data(), data.lse.data(), lse_before.size() * sizeof(float)) == 0;
  }
};

// Stores an out-of-range value into an enum field, as a C caller could.
template <class Enum>
void SetRawEnum(Enum* field, int value) {
  std::memcpy(field, &value, sizeof(int));
}

// Breaks a valid call with `edit`, runs it, and checks the code, message and outputs.
void ExpectRejected(const std::function<void(Call&)>& edit, const std::string& message_part,
                    int code = SWA_ERR_INVALID_ARGUMENT) {
  Call call;
  ASSERT_EQ(call.Run(), 0) << swa_last_error();  // the unbroken call works
  Call broken;
  edit(broken);
  const int rc = broken.Run();
  EXPECT_EQ(rc, code) << "expected rejection mentioning '" << message_part << "'";
  EXPECT_NE(std::string(swa_last_error()).find(message_part), std::string::npos)
      << "message: " << swa_last_error();
  EXPECT_TRUE(broken.OutputsUntouched()) << "a rejected call wrote to its outputs";
}

TEST(ValidationTest, NullPointers) {
  Call c;
  EXPECT_EQ(swa_attention_forward(nullptr, &c.q, &c.k, &c.v, &c.out, c.lse), SWA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(swa_last_error()).find("params"), std::string::npos);
  EXPECT_EQ(swa_attention_forward(&c.params, nullptr, &c.k, &c.v, &c.out, c.lse), SWA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(swa_attention_forward(&c.params, &c.q, nullptr, &c.v, &c.out, c.lse), SWA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(swa_attention_forward(&c.params, &c.q, &c.k, nullptr, &c.out, c.lse), SWA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(swa_attention_forward(&c.params, &c.q, &c.k, &c.v, nullptr, c.lse), SWA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(swa_last_error()).find("out"), std::string::npos);
  EXPECT_TRUE(c.OutputsUntouched());
  ExpectRejected([](Call& c) { c.q.data = nullptr; }, "q.data is NULL");
  ExpectRejected([](Call& c) { c.out.data = nullptr; }, "out.data is NULL");
  ExpectRejected([](Call& c) { c.params.num_global_tokens = 2; }, "global_tokens is NULL");
}

TEST(ValidationTest, NullDataIsFineForEmptyTensors) {
  AttnCase c = Call::Base();
  c.lq = 0;
  Call call(c);
  call.q.data = nullptr;
  call.out.data = nullptr;
  EXPECT_EQ(call.Run(), 0) << swa_last_error();
}

TEST(ValidationTest, Shapes) {
  ExpectRejected([](Call& c) { c.q.shape[1] = -1; }, "q.shape[1]");
  ExpectRejected([](Call& c) { c.k.shape[0] = 2; }, "batch size");
  ExpectRejected([](Call& c) { c.v.shape[1] = 19; }, "same shape");
  ExpectRejected([](Call& c) { c.out.shape[2] = 2; }, "out");
  ExpectRejected([](Call& c) { c.q.shape[2] = 0; }, "no heads");
  ExpectRejected(
      [](Call& c) {
        c.k.shape[3] = c.v.shape[3] = 4;
      },
      "head_dim");
}

TEST(ValidationTest, HeadDimLimits) {
  ExpectRejected([](Call& c) { c.q.shape[3] = c.k.shape[3] = c.v.shape[3] = c.out.shape[3] = 0; }, "head_dim");
  ExpectRejected([](Call& c) { c.q.shape[3] = c.k.shape[3] = c.v.shape[3] = c.out.shape[3] = 257; }, "head_dim");
}

TEST(ValidationTest, Strides) {
  ExpectRejected([](Call& c) { c.q.stride[3] = 2; }, "q.stride[3]");
  ExpectRejected([](Call& c) { c.k.stride[1] = -16; }, "k.stride[1] is negative");
  ExpectRejected([](Call& c) { c.out.stride[1] = 4; }, "overlapping strides");  // rows overlap heads
  ExpectRejected([](Call& c) { c.out.stride[2] = 0; }, "overlapping strides");
}

TEST(ValidationTest, DTypes) {
  ExpectRejected([](Call& c) { c.k.dtype = SWA_BF16; }, "same dtype");
  ExpectRejected([](Call& c) { c.out.dtype = SWA_F16; }, "same dtype");
  ExpectRejected([](Call& c) { SetRawEnum(&c.q.dtype, 7); }, "q.dtype");
}

TEST(ValidationTest, Devices) {
  ExpectRejected([](Call& c) { c.q.device = SWA_CUDA; }, "CUDA", SWA_ERR_UNSUPPORTED);
  ExpectRejected([](Call& c) { SetRawEnum(&c.v.device, 9); }, "v.device");
}

TEST(ValidationTest, GqaDivisibility) {
  AttnCase c = Call::Base();
  c.hq = 3;
  c.hkv = 2;
  Call call(c);
  EXPECT_EQ(call.Run(), SWA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(swa_last_error()).find("multiple of kv heads"), std::string::npos);
  EXPECT_TRUE(call.OutputsUntouched());
}

TEST(ValidationTest, CuSeqlens) {
  static const int32_t kGood[] = {0, 10, 20};
  static const int32_t kStartsAt1[] = {1, 10, 20};
  static const int32_t kDecreasing[] = {0, 15, 10, 20};
  static const int32_t kShort[] = {0, 10, 19};
  auto varlen = [](Call& c, const int32_t* cq, const int32_t* ck, int64_t n) {
    c.params.cu_seqlens_q = cq;
    c.params.cu_seqlens_k = ck;
    c.params.num_seqs = n;
  };
  {
    Call ok;
    varlen(ok, kGood, kGood, 2);
    EXPECT_EQ(ok.Run(), 0) << swa_last_error();
  }
  ExpectRejected([&](Call& c) { varlen(c, kGood, nullptr, 2); }, "together");
  ExpectRejected([&](Call& c) { varlen(c, kStartsAt1, kGood, 2); }, "cu_seqlens_q[0]");
  ExpectRejected([&](Call& c) { varlen(c, kDecreasing, kDecreasing, 3); }, "non-decreasing");
  ExpectRejected([&](Call& c) { varlen(c, kGood, kShort, 2); }, "packed length");
  ExpectRejected([&](Call& c) { varlen(c, kGood, kGood, -1); }, "num_seqs");
  ExpectRejected([&](Call& c) { c.params.num_seqs = 2; }, "num_seqs is set");
  AttnCase batched = Call::Base();
  batched.batch = 2;
  Call call(batched);
  varlen(call, kGood, kGood, 2);
  EXPECT_EQ(call.Run(), SWA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(swa_last_error()).find("batch == 1"), std::string::npos);
  EXPECT_TRUE(call.OutputsUntouched());
}

TEST(ValidationTest, WindowAndRuleValues) {
  static const int64_t kBadHeads[] = {3, -2, 0, 1};
  static const int64_t kUnsorted[] = {5, 2};
  static const int64_t kNegative[] = {-3, 2};
  ExpectRejected([](Call& c) { c.params.window_left = -2; }, "window_left");
  ExpectRejected([](Call& c) { c.params.window_right = -5; }, "window_right");
  ExpectRejected([&](Call& c) { c.params.head_window_left = kBadHeads; }, "head_window_left[1]");
  ExpectRejected([&](Call& c) { c.params.head_window_right = kBadHeads; }, "head_window_right[1]");
  ExpectRejected([](Call& c) { c.params.chunk_size = -4; }, "chunk_size");
  ExpectRejected([](Call& c) { c.params.chunk_overlap = -1; }, "chunk_overlap");
  ExpectRejected([](Call& c) { c.params.chunk_overlap = 3; }, "chunk_overlap needs chunk_size");
  ExpectRejected([](Call& c) { c.params.sink_tokens = -1; }, "sink_tokens");
  ExpectRejected([](Call& c) { c.params.num_global_tokens = -1; }, "num_global_tokens");
  ExpectRejected(
      [&](Call& c) {
        c.params.global_tokens = kUnsorted;
        c.params.num_global_tokens = 2;
      },
      "sorted");
  ExpectRejected(
      [&](Call& c) {
        c.params.global_tokens = kNegative;
        c.params.num_global_tokens = 2;
      },
      "negative");
}

TEST(ValidationTest, ScalarValues) {
  static const float kNanSlopes[] = {0.5f, NAN, 0.1f, 0.2f};
  static const float kInfSinks[] = {0.5f, 1.0f, INFINITY, 0.2f};
  ExpectRejected([](Call& c) { c.params.scale = NAN; }, "scale");
  ExpectRejected([](Call& c) { c.params.softcap = -1.0f; }, "softcap");
  ExpectRejected([](Call& c) { c.params.softcap = INFINITY; }, "softcap");
  ExpectRejected([&](Call& c) { c.params.alibi_slopes = kNanSlopes; }, "alibi_slopes[1]");
  ExpectRejected([&](Call& c) { c.params.sink_logits = kInfSinks; }, "sink_logits[2]");
  ExpectRejected([](Call& c) { c.params.num_threads = -2; }, "num_threads");
}

TEST(ValidationTest, SizesThatOverflow) {
  const int64_t big = int64_t{1} << 40;
  ExpectRejected([&](Call& c) { c.q.shape[1] = INT64_MAX; }, "larger than 2^40");
  ExpectRejected([&](Call& c) { c.k.stride[1] = INT64_MAX / 2; }, "overflows");
  // Shapes that fit one by one but whose element count does not.
  ExpectRejected(
      [&](Call& c) {
        for (swa_tensor* t : {&c.q, &c.k, &c.v, &c.out}) {
          t->shape[0] = big;
          t->shape[1] = big;
        }
      },
      "overflows");
}

TEST(ValidationTest, OutputsMustNotAliasInputs) {
  ExpectRejected([](Call& c) { c.out.data = c.q.data; }, "overlaps");
  ExpectRejected([](Call& c) { c.lse = static_cast<float*>(c.k.data); }, "overlaps");
}

TEST(ValidationTest, LastErrorIsPerThreadAndVersionIsSet) {
  EXPECT_STRNE(swa_version(), "");
  Call c;
  c.params.window_left = -3;
  ASSERT_NE(c.Run(), 0);
  std::string other;
  std::thread([&] { other = swa_last_error(); }).join();
  EXPECT_EQ(other, "");
  EXPECT_NE(std::string(swa_last_error()), "");
}

}  // namespace
}  // namespace swa
