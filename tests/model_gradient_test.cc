// The model's backward against central finite differences in double precision: each
// layer (RMSNorm, RoPE, SwiGLU, the loss, a whole block with attention and gated fusion)
// and the whole model with every feature of docs/MODEL.md switched on somewhere;
// then the f32 path (swa's kernels and SIMD ops) against the f64 path on the same weights.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "model/block.h"
#include "model/config.h"
#include "model/model.h"
#include "model/tensors.h"
#include "ops/layer_math.h"

namespace swa::model {
namespace {

std::vector<double> Normal(std::mt19937_64& rng, size_t n, double scale) {
  std::normal_distribution<double> dist(0.0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = dist(rng);
  return v;
}

double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks that `analytic` (d f / d x . dir) matches (f(x + h dir) - f(x - h dir)) / 2h.
template <class F>
void ExpectDirectionalDerivative(const F& f, std::vector<double>* x, const std::vector<double>& dir,
                                 double analytic, const std::string& what) {
  const double h = 1e-5;
  const std::vector<double> x0 = *x;
  for (size_t i = 0; i < x->size(); ++i) (*x)[i] = x0[i] + h * dir[i];
  const double up = f();
  for (size_t i = 0; i < x->size(); ++i) (*x)[i] = x0[i] - h * dir[i];
  const double down = f();
  *x = x0;
  const double numeric = (up - down) / (2 * h);
  EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << what;
}

TEST(LayerGradientTest, RmsNorm) {
  std::mt19937_64 rng(1);
  const int64_t n = 5, d = 11;
  std::vector<double> x = Normal(rng, n * d, 1.0), w = Normal(rng, d, 1.0), r = Normal(rng, n * d, 1.0);
  std::vector<double> y(n * d), rstd(n), dx(n * d), dw(d, 0.0);
  auto f = [&] {
    ops::plain::RmsNormForward(x.data(), w.data(), 1e-5, n, d, y.data(), rstd.data());
    return Dot(y, r);
  };
  f();
  ops::plain::RmsNormBackward(x.data(), w.data(), rstd.data(), r.data(), n, d, dx.data(), dw.data());
  const std::vector<double> dirx = Normal(rng, n * d, 1.0), dirw = Normal(rng, d, 1.0);
  ExpectDirectionalDerivative(f, &x, dirx, Dot(dx, dirx), "rmsnorm dx");
  ExpectDirectionalDerivative(f, &w, dirw, Dot(dw, dirw), "rmsnorm dw");
}

TEST(LayerGradientTest, SwiGlu) {
  std::mt19937_64 rng(2);
  const int64_t n = 40;
  std::vector<double> g = Normal(rng, n, 3.0), u = Normal(rng, n, 1.0), r = Normal(rng, n, 1.0);
  std::vector<double> out(n), dg(n), du(n);
  auto f = [&] {
    ops::plain::SwiGluForward(g.data(), u.data(), n, out.data());
    return Dot(out, r);
  };
  ops::plain::SwiGluBackward(g.data(), u.data(), r.data(), n, dg.data(), du.data());
  const std::vector<double> dir_g = Normal(rng, n, 1.0), dir_u = Normal(rng, n, 1.0);
  ExpectDirectionalDerivative(f, &g, dir_g, Dot(dg, dir_g), "swiglu d gate");
  ExpectDirectionalDerivative(f, &u, dir_u, Dot(du, dir_u), "swiglu d up");
}

TEST(LayerGradientTest, SoftmaxCrossEntropyWithAndWithoutCap) {
  std::mt19937_64 rng(3);
  const int64_t n = 6, v = 9;
  std::vector<double> z = Normal(rng, n * v, 4.0), dz(n * v);
  const std::vector<int32_t> targets = {1, 8, -1, 0, 4, 4};
  for (double cap : {0.0, 3.0}) {
    auto f = [&] {
      std::vector<double> scratch(n * v);
      return ops::plain::SoftmaxCrossEntropy(z.data(), targets.data(), n, v, cap, -1, 1.0 / 5,
                                             scratch.data()) /
             5;
    };
    ops::plain::SoftmaxCrossEntropy(z.data(), targets.data(), n, v, cap, -1, 1.0 / 5, dz.data());
    const std::vector<double> dir = Normal(rng, n * v, 1.0);
    ExpectDirectionalDerivative(f, &z, dir, Dot(dz, dir), "cross-entropy, cap " + std::to_string(cap));
  }
}

TEST(LayerGradientTest, RopeIsARotationAndItsInverseIsTheBackward) {
  std::mt19937_64 rng(4);
  const int64_t rows = 7, heads = 3, dim = 10;
  RopeTable table(10000.0, dim);
  table.Reserve(50);
  const std::vector<int32_t> positions = {0, 1, 2, 49, 17, 3, 0};
  std::vector<double> x = Normal(rng, rows * heads * dim, 1.0), r = Normal(rng, rows * heads * dim, 1.0);
  auto f = [&] {
    std::vector<double> y = x;
    table.Rotate(y.data(), rows, heads, positions.data(), false);
    return Dot(y, r);
  };
  std::vector<double> dx = r;
  table.Rotate(dx.data(), rows, heads, positions.data(), true);
  const std::vector<double> dir = Normal(rng, x.size(), 1.0);
  ExpectDirectionalDerivative(f, &x, dir, Dot(dx, dir), "rope");
  // The rotation by hand at position 49, pair 1: angle 49 * 10000^(-2/10).
  std::vector<double> y = x;
  table.Rotate(y.data(), rows, heads, positions.data(), false);
  const double angle = 49 * std::pow(10000.0, -0.2), a = x[3 * heads * dim + 1], b = x[3 * heads * dim + 6];
  EXPECT_NEAR(y[3 * heads * dim + 1], a * std::cos(angle) - b * std::sin(angle), 1e-12);
  EXPECT_NEAR(y[3 * heads * dim + 6], b * std::cos(angle) + a * std::sin(angle), 1e-12);
}

// A small config with every feature somewhere: per-head mixed windows with gated fusion,
// learned sinks, sink tokens and logit soft-capping in layer 0; ALiBi (no RoPE) with its
// own windows in layer 1; a RoPE layer with its own theta; GQA; final soft-capping; untied
// LM head.
ModelConfig EveryFeature() {
  ModelConfig c;
  c.vocab_size = 259;
  c.hidden_size = 16;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.intermediate_size = 24;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  c.tie_word_embeddings = false;
  c.final_logit_softcapping = 10;
  LayerConfig l0;
  l0.windows = {{2, 0}, {5, 0}, {-1, 0}, {2, 0}};
  l0.gated_fusion = true;
  l0.learned_sinks = true;
  l0.sink_tokens = 1;
  l0.attn_logit_softcapping = 5;
  LayerConfig l1;
  l1.windows = {{3, 0}, {3, 0}, {6, 0}, {-1, 0}};
  l1.alibi = true;
  LayerConfig l2;
  l2.windows = {{4, 0}, {4, 0}, {4, 0}, {4, 0}};
  l2.rope_theta = 500.0;
  c.layers = {l0, l1, l2};
  return c;
}

// Random parameters of a config (norm weights near 1, the rest small).
std::vector<double> RandomParams(const Model& model, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> p(model.param_floats(), 0.0);
  for (const ParamInfo& info : model.layout()) {
    const bool norm = info.name.find("norm") != std::string::npos;
    std::vector<double> v = Normal(rng, info.count, norm ? 0.2 : 0.3);
    for (int64_t i = 0; i < info.count; ++i) p[info.offset + i] = norm ? 1.0 + v[i] : v[i];
  }
  return p;
}

struct Stream {
  std::vector<int32_t> tokens, targets, cu;
};

Stream RandomStream(uint64_t seed) {
  std::mt19937_64 rng(seed);
  Stream s;
  s.cu = {0, 9, 21, 30};
  for (int t = 0; t < 30; ++t) {
    s.tokens.push_back(static_cast<int32_t>(rng() % 259));
    s.targets.push_back(t % 7 == 3 ? kPad : static_cast<int32_t>(rng() % 256));
  }
  return s;
}

TEST(ModelGradientTest, EveryParameterMatchesFiniteDifferencesInDouble) {
  ThreadPool pool;
  const Model model(EveryFeature(), 1);
  std::vector<double> params = RandomParams(model, 5);
  const Stream s = RandomStream(6);
  const TokenBatch batch{s.tokens.data(), s.targets.data(), 30, s.cu.data(), 3};
  Workspace<double> ws;
  std::vector<double> grads(params.size(), 0.0);
  const double loss = model.Loss(params.data(), batch, grads.data(), &ws, pool);
  EXPECT_GT(loss, 0.0);
  auto f = [&] {
    Workspace<double> w2;
    return model.Loss<double>(params.data(), batch, nullptr, &w2, pool);
  };
  std::mt19937_64 rng(7);
  // One random direction per tensor, so that a wrong gradient is named.
  for (const ParamInfo& info : model.layout()) {
    std::vector<double> dir(params.size(), 0.0);
    const std::vector<double> v = Normal(rng, info.count, 1.0);
    for (int64_t i = 0; i < info.count; ++i) dir[info.offset + i] = v[i];
    ExpectDirectionalDerivative(f, &params, dir, Dot(grads, dir), info.name);
    // A tensor whose gradient is zero would pass trivially: each must move the loss.
    double norm = 0;
    for (int64_t i = 0; i < info.count; ++i) norm += grads[info.offset + i] * grads[info.offset + i];
    EXPECT_GT(norm, 1e-12) << info.name << " gets no gradient";
  }
}

// A block's gradient with respect to its input, through attention with gates.
TEST(ModelGradientTest, BlockInputGradientMatchesFiniteDifferences) {
  ThreadPool pool;
  const Model model(EveryFeature(), 1);
  const std::vector<double> params = RandomParams(model, 8);
  const ModelTensors<const double> w = ViewTensors(model.config(), model.layout(), params.data());
  const ModelConfig& c = model.config();
  LayerAttention attention(c, c.layers[0], 1);
  RopeTable rope(c.rope_theta, c.head_dim);
  rope.Reserve(30);
  BlockSpec spec;
  spec.d = c.hidden_size;
  spec.hq = c.num_attention_heads;
  spec.hkv = c.num_key_value_heads;
  spec.head_dim = c.head_dim;
  spec.ffn = c.intermediate_size;
  int groups = 0;
  spec.group_of_head = GateGroups(c.layers[0], &groups);
  spec.gate_groups = groups;
  spec.attention = &attention;
  spec.rope = &rope;
  spec.threads = 1;
  const std::vector<int32_t> cu = {0, 9, 21, 30};
  std::vector<int32_t> positions;
  for (int s = 0; s < 3; ++s)
    for (int t = cu[s]; t < cu[s + 1]; ++t) positions.push_back(t - cu[s]);
  const Packing pack{30, cu.data(), 3};
  std::mt19937_64 rng(9);
  std::vector<double> x = Normal(rng, 30 * c.hidden_size, 1.0), r = Normal(rng, x.size(), 1.0);
  BlockActivations<double> acts;
  std::vector<double> y(x.size());
  auto f = [&] {
    BlockForward(spec, w.layers[0], pack, positions.data(), x.data(), &acts, y.data(), pool);
    return Dot(y, r);
  };
  f();
  std::vector<double> grad_buffer(params.size(), 0.0), dx(x.size());
  const ModelTensors<double> g = ViewTensors(c, model.layout(), grad_buffer.data());
  BlockScratch<double> scratch;
  BlockBackward(spec, w.layers[0], pack, positions.data(), acts, r.data(), dx.data(), g.layers[0], &scratch,
                pool);
  const std::vector<double> dir = Normal(rng, x.size(), 1.0);
  ExpectDirectionalDerivative(f, &x, dir, Dot(dx, dir), "block input");
}

// The f32 path (swa's attention kernels, the SIMD ops, sgemm) against the f64 path on the
// same weights: loss and every gradient within f32 accuracy.
TEST(ModelGradientTest, FloatPathMatchesDoublePath) {
  for (bool recompute : {false, true}) {
    ThreadPool pool;
    const Model model(EveryFeature(), 2, recompute);
    const std::vector<double> pd = RandomParams(model, 10);
    const std::vector<float> pf(pd.begin(), pd.end());
    const std::vector<double> pdr(pf.begin(), pf.end());  // the f32 weights, exactly
    const Stream s = RandomStream(11);
    const TokenBatch batch{s.tokens.data(), s.targets.data(), 30, s.cu.data(), 3};
    Workspace<double> wd;
    Workspace<float> wf;
    std::vector<double> gd(pd.size(), 0.0);
    std::vector<float> gf(pd.size(), 0.0f);
    const double ld = model.Loss(pdr.data(), batch, gd.data(), &wd, pool);
    const double lf = model.Loss(pf.data(), batch, gf.data(), &wf, pool);
    EXPECT_NEAR(lf, ld, 1e-5 * ld) << "recompute " << recompute;
    for (const ParamInfo& info : model.layout()) {
      double diff = 0, ref = 0;
      for (int64_t i = 0; i < info.count; ++i) {
        diff = std::max(diff, std::abs(gf[info.offset + i] - gd[info.offset + i]));
        ref = std::max(ref, std::abs(gd[info.offset + i]));
      }
      EXPECT_LE(diff, 1e-4 * ref) << info.name << " recompute " << recompute;
    }
  }
}

// An empty batch is a loss of 0 and no gradient, even with segments but no offsets.
TEST(ModelGradientTest, EmptyBatchHasZeroLoss) {
  ThreadPool pool;
  const Model model(EveryFeature(), 1);
  const std::vector<double> params = RandomParams(model, 12);
  std::vector<double> grads(params.size(), 0.0);
  Workspace<double> ws;
  const int32_t unused = 0;  // the loss needs a targets pointer, even for no tokens
  const TokenBatch empty{&unused, &unused, 0, nullptr, 2};
  EXPECT_EQ(model.Loss(params.data(), empty, grads.data(), &ws, pool), 0.0);
  for (double g : grads) EXPECT_EQ(g, 0.0);
}

}  // namespace
}  // namespace swa::model
