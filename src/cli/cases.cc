#include "cli/cases.h"

namespace swa::cli {

std::vector<harness::AttnCase> CheckCases(int threads) {
  using harness::AttnCase;
  std::vector<AttnCase> cases;
  auto add = [&](AttnCase c) {
    c.threads = threads;
    c.seed = cases.size() + 1;
    cases.push_back(c);
  };
  AttnCase base;
  base.lq = base.lk = 257;
  base.hq = base.hkv = 4;
  base.dim = 64;

  AttnCase c = base;
  add(c);  // full attention
  c.causal = true;
  add(c);
  c = base;
  c.left = 31;
  c.right = 0;  // causal sliding window of 32 tokens
  add(c);
  c = base;
  c.left = c.right = 16;  // symmetric band
  add(c);
  c = base;
  c.head_left = {0, 7, 64, -1};
  c.head_right = {0, 0, 0, -1};  // narrow, wide and global heads in one call
  add(c);
  c = base;
  c.chunk = 64;
  c.overlap = 8;
  c.causal = true;
  add(c);
  c = base;
  c.left = 15;
  c.right = 0;
  c.sink_tokens = 4;
  c.sink_logits = true;
  add(c);
  c = base;
  c.left = 15;
  c.right = 0;
  c.globals = {0, 100, 200};
  add(c);
  c = base;
  c.left = 63;
  c.right = 0;
  c.alibi = true;
  c.softcap = 20.0f;
  c.scale = 0.5f;
  add(c);
  c = base;
  c.hq = 8;
  c.hkv = 2;
  c.left = 31;
  c.right = 0;
  add(c);  // GQA
  c.hkv = 1;
  add(c);  // MQA
  c = base;
  c.varlen = {{100, 120}, {1, 50}, {77, 77}, {0, 9}};
  c.left = 20;
  c.right = 0;
  add(c);
  c = base;
  c.lq = 1;
  c.lk = 1025;
  c.left = 255;
  c.right = 0;
  add(c);  // decode: one query against a long cache
  for (DType t : {DType::kBF16, DType::kF16}) {
    c = base;
    c.dtype = t;
    c.left = 31;
    c.right = 0;
    c.layout = harness::Layout::kPadded;
    add(c);
  }
  return cases;
}

}  // namespace swa::cli
