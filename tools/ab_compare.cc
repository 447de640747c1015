// Interleaved A/B timing of two builds of libswa.so on one shape, for judging a kernel
// change on a machine whose speed drifts: the two libraries run alternately, so a slow
// spell touches both, and each side reports its best run.
//
//   swa_ab OLD.so NEW.so forward|backward|decode N W [D [f32|bf16|f16 [REPS [HQ [HKV]]]]]
//
// decode: one query row against N keys (a decode step; the forward's decode kernel).
// Batch 1, causal window (W - 1, 0) (W = -1: full causal); defaults D 128, f32, 10 reps,
// 8 query heads, as many kv heads.
// Prints both best times and NEW/OLD. The two files must be different paths (copy one
// build's libswa.so aside before rebuilding).
#include <dlfcn.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "swa/swa.h"

namespace {

using InitFn = void (*)(swa_attention_params*);
using ForwardFn = int (*)(const swa_attention_params*, const swa_tensor*, const swa_tensor*,
                          const swa_tensor*, swa_tensor*, float*);
using BackwardFn = int (*)(const swa_attention_params*, const swa_tensor*, const swa_tensor*,
                           const swa_tensor*, const swa_tensor*, const float*, const swa_tensor*, swa_tensor*,
                           swa_tensor*, swa_tensor*, float*);

struct Library {
  InitFn init = nullptr;
  ForwardFn forward = nullptr;
  BackwardFn backward = nullptr;
};

bool Open(const char* path, Library* lib) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    std::fprintf(stderr, "%s\n", dlerror());
    return false;
  }
  lib->init = reinterpret_cast<InitFn>(dlsym(handle, "swa_attention_params_init"));
  lib->forward = reinterpret_cast<ForwardFn>(dlsym(handle, "swa_attention_forward"));
  lib->backward = reinterpret_cast<BackwardFn>(dlsym(handle, "swa_attention_backward"));
  return lib->init && lib->forward && lib->backward;
}

// A contiguous [1, n, heads, dim] tensor over `bytes`, filled with values in [-1, 1).
struct Tensor {
  std::vector<uint8_t> bytes;
  swa_tensor view{};
  Tensor(swa_dtype dtype, int64_t n, int64_t heads, int64_t dim, std::mt19937* rng) {
    const size_t esize = dtype == SWA_F32 ? 4 : 2;
    bytes.resize(static_cast<size_t>(n * heads * dim) * esize);
    for (size_t i = 0; i < bytes.size() / esize; ++i) {
      const float x = std::uniform_real_distribution<float>(-1.0f, 1.0f)(*rng);
      uint32_t bits;
      std::memcpy(&bits, &x, 4);
      if (dtype == SWA_F32) {
        std::memcpy(bytes.data() + 4 * i, &x, 4);
      } else {  // truncation is good enough for timing inputs; f16 from a small range
        const uint16_t half = dtype == SWA_BF16 ? static_cast<uint16_t>(bits >> 16)
                                                : static_cast<uint16_t>(0x3800 | (bits >> 16 & 0x83ff));
        std::memcpy(bytes.data() + 2 * i, &half, 2);
      }
    }
    view.data = bytes.data();
    view.dtype = dtype;
    view.device = SWA_CPU;
    const int64_t shape[4] = {1, n, heads, dim}, stride[4] = {n * heads * dim, heads * dim, dim, 1};
    std::memcpy(view.shape, shape, sizeof shape);
    std::memcpy(view.stride, stride, sizeof stride);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: %s OLD.so NEW.so forward|backward|decode N W [D [f32|bf16|f16 [REPS [HQ [HKV]]]]]\n",
                 argv[0]);
    return 2;
  }
  Library lib[2];
  if (!Open(argv[1], &lib[0]) || !Open(argv[2], &lib[1])) return 2;
  const std::string mode = argv[3];
  if (mode != "forward" && mode != "backward" && mode != "decode") {
    std::fprintf(stderr, "mode must be forward, backward or decode, got %s\n", argv[3]);
    return 2;
  }
  const bool backward = mode == "backward";
  const int64_t n = std::atoll(argv[4]), window = std::atoll(argv[5]);
  const int64_t dim = argc > 6 ? std::atoll(argv[6]) : 128;
  const std::string dtype_name = argc > 7 ? argv[7] : "f32";
  const swa_dtype dtype = dtype_name == "bf16" ? SWA_BF16 : dtype_name == "f16" ? SWA_F16 : SWA_F32;
  const int reps = argc > 8 ? std::atoi(argv[8]) : 10;
  const int64_t heads = argc > 9 ? std::atoll(argv[9]) : 8,
                kv_heads = argc > 10 ? std::atoll(argv[10]) : heads;
  std::mt19937 rng(1);
  const int64_t lq = mode == "decode" ? 1 : n;  // query rows
  Tensor q(dtype, lq, heads, dim, &rng), k(dtype, n, kv_heads, dim, &rng), v(dtype, n, kv_heads, dim, &rng);
  Tensor out(dtype, lq, heads, dim, &rng), dout(dtype, lq, heads, dim, &rng);
  Tensor dq(dtype, lq, heads, dim, &rng), dk(dtype, n, kv_heads, dim, &rng),
      dv(dtype, n, kv_heads, dim, &rng);
  std::vector<float> lse(static_cast<size_t>(lq * heads));
  swa_attention_params p;
  lib[0].init(&p);
  p.causal = 1;
  p.window_left = window < 0 ? -1 : window - 1;
  p.window_right = 0;
  if (lib[0].forward(&p, &q.view, &k.view, &v.view, &out.view, lse.data()) != 0) return 1;
  double best[2] = {1e30, 1e30};
  for (int rep = 0; rep < reps; ++rep) {
    for (int side = 0; side < 2; ++side) {
      const auto t0 = std::chrono::steady_clock::now();
      const int rc = backward ? lib[side].backward(&p, &q.view, &k.view, &v.view, &out.view, lse.data(),
                                                   &dout.view, &dq.view, &dk.view, &dv.view, nullptr)
                              : lib[side].forward(&p, &q.view, &k.view, &v.view, &out.view, lse.data());
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rc != 0) return 1;
      best[side] = std::min(best[side], seconds);
    }
  }
  std::printf("%s N=%lld W=%lld D=%lld H=%lld/%lld %s: old %.2f ms, new %.2f ms, new/old %.3f\n", argv[3],
              static_cast<long long>(n), static_cast<long long>(window), static_cast<long long>(dim),
              static_cast<long long>(heads), static_cast<long long>(kv_heads), dtype_name.c_str(),
              best[0] * 1e3, best[1] * 1e3, best[1] / best[0]);
  return 0;
}
