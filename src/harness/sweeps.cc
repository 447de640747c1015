#include "harness/sweeps.h"

#include <random>
#include <tuple>
#include <utility>

namespace swa::harness {
namespace {

constexpr DType kDTypes[] = {DType::kF32, DType::kBF16, DType::kF16};

}  // namespace

std::vector<AttnCase> HeadDimCases() {
  std::vector<AttnCase> out;
  for (int64_t dim : {1, 7, 16, 59, 64, 80, 128, 256}) {
    for (DType t : kDTypes) {
      AttnCase c;
      c.dtype = t;
      c.dim = dim;
      c.lq = c.lk = 65;
      c.hq = 4;
      c.hkv = 2;
      c.left = 17;
      c.right = 0;
      c.threads = 2;
      c.seed = dim;
      out.push_back(c);
    }
  }
  return out;
}

std::vector<AttnCase> LengthCases() {
  std::vector<AttnCase> out;
  for (int64_t n : {1, 7, 63, 64, 65, 257, 1025}) {
    for (bool sliding : {false, true}) {
      AttnCase c;
      c.lq = c.lk = n;
      c.dim = 32;
      c.causal = !sliding;
      if (sliding) {
        c.left = 63;
        c.right = 0;
      }
      c.threads = 3;
      c.seed = n;
      out.push_back(c);
    }
  }
  return out;
}

std::vector<AttnCase> AsymmetricLengthCases() {
  std::vector<AttnCase> out;
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1025}, {7, 257}, {65, 257}, {64, 1025}, {65, 7},
                                                {257, 63}, {9, 0},   {0, 9},    {1, 1}};
  for (const auto& [lq, lk] : shapes) {
    for (int mode = 0; mode < 4; ++mode) {
      AttnCase c;
      c.lq = lq;
      c.lk = lk;
      c.dim = 24;
      c.batch = 2;
      c.seed = lq * 1000 + lk;
      if (mode == 1) c.causal = true;
      if (mode == 2) {
        c.left = 40;
        c.right = 0;
      }
      if (mode == 3) {
        c.left = 5;
        c.right = 3;
        c.sink_logits = true;
      }
      out.push_back(c);
    }
  }
  return out;
}

std::vector<AttnCase> WindowEdgeCases() {
  std::vector<AttnCase> out;
  const int64_t n = 65;
  for (int64_t left : {int64_t{0}, int64_t{1}, int64_t{2}, n - 1, n, n + 1, int64_t{-1}}) {
    for (int64_t right : {int64_t{0}, int64_t{1}, int64_t{2}, n - 1, n, n + 1, int64_t{-1}}) {
      for (bool causal : {false, true}) {
        AttnCase c;
        c.lq = c.lk = n;
        c.hq = c.hkv = 1;
        c.dim = 8;
        c.left = left;
        c.right = right;
        c.causal = causal;
        c.seed = static_cast<uint64_t>(left * 100 + right + 7);
        out.push_back(c);
      }
    }
  }
  return out;
}

std::vector<AttnCase> PerHeadWindowCases() {
  std::vector<AttnCase> out;
  for (bool causal : {false, true}) {
    for (int64_t n : {33, 130, 300}) {
      AttnCase c;
      c.lq = c.lk = n;
      c.hq = 6;
      c.hkv = 3;
      c.dim = 16;
      c.head_left = {0, 3, 64, -1, -1, 8};
      c.head_right = {0, 0, 0, -1, 0, 8};
      c.causal = causal;
      c.threads = 2;
      out.push_back(c);
      c.lq = n / 3;  // and bottom-right aligned against a longer key range
      out.push_back(c);
    }
  }
  return out;
}

std::vector<AttnCase> ChunkCases() {
  std::vector<AttnCase> out;
  for (int64_t chunk : {32, 64}) {
    for (int64_t overlap : {int64_t{0}, chunk / 8, chunk / 4, chunk}) {
      for (bool causal : {false, true}) {
        AttnCase c;
        c.lq = c.lk = 257;
        c.dim = 16;
        c.chunk = chunk;
        c.overlap = overlap;
        c.causal = causal;
        c.threads = 2;
        out.push_back(c);
        c.lq = 100;
        out.push_back(c);
      }
    }
  }
  return out;
}

std::vector<AttnCase> GroupedQueryCases() {
  std::vector<AttnCase> out;
  for (int64_t hkv : {8, 4, 2, 1}) {
    for (DType t : kDTypes) {
      AttnCase c;
      c.dtype = t;
      c.lq = c.lk = 297;
      c.hq = 8;
      c.hkv = hkv;
      c.dim = 32;
      c.left = 20;
      c.right = 0;
      c.threads = 3;
      out.push_back(c);
    }
  }
  return out;
}

std::vector<AttnCase> VarlenCases() {
  std::vector<AttnCase> out;
  const std::vector<std::vector<std::pair<int32_t, int32_t>>> packs = {
      {{100, 100}, {1, 77}, {65, 65}},
      {{0, 5}, {7, 0}, {30, 60}, {64, 64}, {1, 1}},
      {{130, 40}, {3, 300}},
  };
  for (const auto& pack : packs) {
    for (int mode = 0; mode < 3; ++mode) {
      AttnCase c;
      c.varlen = pack;
      c.hq = 4;
      c.hkv = 2;
      c.dim = 16;
      c.threads = 2;
      if (mode == 0) c.causal = true;
      if (mode == 1) {
        c.left = 10;
        c.right = 0;
        c.sink_tokens = 2;
        c.globals = {3, 50};
        c.sink_logits = true;
      }
      if (mode == 2) {
        c.chunk = 16;
        c.overlap = 4;
        c.alibi = true;
        c.layout = Layout::kPadded;
      }
      out.push_back(c);
    }
  }
  return out;
}

std::vector<AttnCase> ExtrasCases() {
  std::vector<AttnCase> out;
  for (DType t : kDTypes) {
    AttnCase c;
    c.dtype = t;
    c.lq = c.lk = 300;
    c.hq = 4;
    c.hkv = 2;
    c.dim = 40;
    c.left = 15;
    c.right = 0;
    c.sink_tokens = 4;
    out.push_back(c);
    c.sink_logits = true;
    out.push_back(c);
    c.sink_tokens = 0;
    c.globals = {0, 1, 64, 65, 130, 299, 500};
    out.push_back(c);
    c.causal = true;
    c.right = 5;
    out.push_back(c);
    c.alibi = true;
    c.scale = 0.4f;
    c.softcap = 5.0f;
    out.push_back(c);
  }
  return out;
}

std::vector<AttnCase> StridedLayoutCases() {
  std::vector<AttnCase> out;
  for (Layout layout : {Layout::kPadded, Layout::kHeadMajor}) {
    for (DType t : kDTypes) {
      AttnCase c;
      c.dtype = t;
      c.layout = layout;
      c.batch = 2;
      c.lq = 70;
      c.lk = 90;
      c.hq = 4;
      c.hkv = 2;
      c.dim = 48;
      c.left = 30;
      c.right = 2;
      c.threads = 2;
      out.push_back(c);
    }
  }
  return out;
}

std::vector<AttnCase> EmptyShapeCases() {
  std::vector<AttnCase> out;
  for (auto [b, lq, lk] : {std::tuple{0, 5, 5}, std::tuple{1, 0, 5}, std::tuple{1, 5, 0}, std::tuple{2, 0, 0}}) {
    AttnCase c;
    c.batch = b;
    c.lq = lq;
    c.lk = lk;
    out.push_back(c);
    c.sink_logits = true;
    out.push_back(c);
  }
  return out;
}

std::vector<AttnCase> RandomCases(uint64_t seed, int count, int64_t max_len) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  std::vector<AttnCase> out;
  for (int n = 0; n < count; ++n) {
    AttnCase c;
    c.seed = seed + n;
    c.dtype = kDTypes[pick(0, 2)];
    const int64_t dims[] = {1, 3, 8, 16, 33, 64, 96, 128};
    c.dim = dims[pick(0, 7)];
    c.hkv = pick(1, 3);
    c.hq = c.hkv * pick(1, 3);
    if (pick(0, 4) == 0) {
      for (int s = static_cast<int>(pick(1, 4)); s > 0; --s) {
        c.varlen.push_back({static_cast<int32_t>(pick(0, max_len * 3 / 4)), static_cast<int32_t>(pick(0, max_len * 3 / 4))});
      }
    } else {
      c.batch = pick(1, 2);
      c.lq = pick(1, max_len * 4 / 5);
      c.lk = pick(0, 1) ? c.lq : pick(1, max_len);
    }
    c.left = pick(0, 2) ? pick(0, 100) : -1;
    c.right = pick(0, 2) ? pick(0, 10) : -1;
    c.causal = pick(0, 1);
    if (pick(0, 3) == 0) {
      for (int64_t h = 0; h < c.hq; ++h) {
        c.head_left.push_back(pick(-1, 80));
        c.head_right.push_back(pick(-1, 4));
      }
    }
    if (pick(0, 4) == 0) {
      c.chunk = pick(1, 80);
      c.overlap = pick(0, c.chunk);
    }
    if (pick(0, 3) == 0) c.sink_tokens = pick(1, 8);
    c.sink_logits = pick(0, 3) == 0;
    if (pick(0, 4) == 0) c.globals = {pick(0, 10), pick(11, 90), pick(91, max_len)};
    c.alibi = pick(0, 4) == 0;
    if (pick(0, 4) == 0) c.softcap = static_cast<float>(pick(1, 30));
    if (pick(0, 4) == 0) c.scale = 0.05f * pick(1, 20);
    c.layout = static_cast<Layout>(pick(0, 2));
    c.threads = static_cast<int>(pick(1, 3));
    out.push_back(c);
  }
  return out;
}

}  // namespace swa::harness
