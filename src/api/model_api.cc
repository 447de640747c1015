// The C ABI of the model (docs/MODEL.md): check the handle and every argument, then
// hand over to model::Model, turning exceptions into return codes (common/error.h). Every
// check runs before any output is touched, so that a failing call writes nothing.
#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/parallel.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "swa/swa.h"

// The opaque C handle: the model, its parameters and the memory its calls reuse.
struct swa_model {
  std::unique_ptr<swa::model::Model> impl;
  std::vector<float> params;  // [flat size]
  std::string config_json;
  swa::model::Workspace<float> workspace;
  std::vector<float> grads;  // [flat size], the loss's gradient before it is copied out
};

namespace {

using swa::ThrowInvalid;
using swa::model::TokenBatch;

swa_model& Handle(swa_model* model) {
  if (model == nullptr || model->impl == nullptr) ThrowInvalid("model is NULL");
  return *model;
}

const swa_model& Handle(const swa_model* model) {
  if (model == nullptr || model->impl == nullptr) ThrowInvalid("model is NULL");
  return *model;
}

void CheckOut(const void* p, const char* name) {
  if (p == nullptr) ThrowInvalid(std::string(name) + " is NULL");
}

// Copies `text` and its NUL into buf [size], or only reports the size when buf is NULL
// and size is 0. Checks everything before writing.
void WriteString(const std::string& text, char* buf, int64_t size, int64_t* needed, const char* what) {
  CheckOut(needed, "needed");
  if (size < 0) ThrowInvalid("size must be >= 0, got " + std::to_string(size));
  if (size > 0) CheckOut(buf, "buf");
  const int64_t bytes = static_cast<int64_t>(text.size()) + 1;
  if (buf != nullptr && size < bytes) {
    ThrowInvalid(std::string("buf is too small for the ") + what + ": " + std::to_string(size) +
                 " bytes given, " + std::to_string(bytes) + " needed");
  }
  if (buf != nullptr) std::memcpy(buf, text.c_str(), static_cast<size_t>(bytes));
  *needed = bytes;
}

// A validated batch; `one_segment` backs cu_seqlens when the caller passed NULL.
struct CheckedBatch {
  TokenBatch batch;
  int32_t one_segment[2] = {0, 0};
};

// Checks a batch's arguments as the C API states them (counts, NULLs, ids inside the
// vocabulary, cu_seqlens rising from 0 to n) before any work.
void CheckBatch(int64_t vocab, const int32_t* tokens, const int32_t* targets, bool wants_targets, int64_t n,
                const int32_t* cu_seqlens, int64_t num_seqs, CheckedBatch* out) {
  if (n < 0) ThrowInvalid("n (the token count) must be >= 0, got " + std::to_string(n));
  if (n > INT32_MAX) {
    ThrowInvalid("n (the token count) " + std::to_string(n) +
                 " exceeds INT32_MAX, the largest cu_seqlens value");
  }
  if (num_seqs < 0) ThrowInvalid("num_seqs must be >= 0, got " + std::to_string(num_seqs));
  if (n > 0) CheckOut(tokens, "tokens");
  if (wants_targets && n > 0) CheckOut(targets, "targets");
  for (int64_t t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= vocab) {
      ThrowInvalid("tokens[" + std::to_string(t) + "] = " + std::to_string(tokens[t]) +
                   " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  for (int64_t t = 0; wants_targets && t < n; ++t) {
    if (targets[t] < 0 || targets[t] >= vocab) {
      ThrowInvalid("targets[" + std::to_string(t) + "] = " + std::to_string(targets[t]) +
                   " is outside the vocabulary [0, " + std::to_string(vocab) + ") (PAD " +
                   std::to_string(swa::model::kPad) + " marks no target)");
    }
  }
  TokenBatch& b = out->batch;
  b.tokens = tokens;
  b.targets = wants_targets ? targets : nullptr;
  b.n = n;
  if (cu_seqlens == nullptr) {
    if (num_seqs > 1) {
      ThrowInvalid("cu_seqlens is NULL (one document) but num_seqs is " + std::to_string(num_seqs));
    }
    out->one_segment[1] = static_cast<int32_t>(n);
    b.cu_seqlens = out->one_segment;
    b.segments = 1;
    return;
  }
  if (num_seqs > INT32_MAX) ThrowInvalid("num_seqs " + std::to_string(num_seqs) + " exceeds INT32_MAX");
  if (cu_seqlens[0] != 0) ThrowInvalid("cu_seqlens[0] must be 0, got " + std::to_string(cu_seqlens[0]));
  for (int64_t s = 0; s < num_seqs; ++s) {
    if (cu_seqlens[s + 1] < cu_seqlens[s]) {
      ThrowInvalid("cu_seqlens must be non-decreasing: cu_seqlens[" + std::to_string(s + 1) +
                   "] = " + std::to_string(cu_seqlens[s + 1]) + " < cu_seqlens[" + std::to_string(s) +
                   "] = " + std::to_string(cu_seqlens[s]));
    }
  }
  if (cu_seqlens[num_seqs] != n) {
    ThrowInvalid("cu_seqlens[num_seqs] = " + std::to_string(cu_seqlens[num_seqs]) +
                 " must equal n (the token count) " + std::to_string(n));
  }
  b.cu_seqlens = cu_seqlens;
  b.segments = num_seqs;
}

}  // namespace

extern "C" {

SWA_API int swa_model_load(const char* path, int num_threads, swa_model** model) {
  return swa::GuardCall([&] {
    CheckOut(path, "path");
    CheckOut(model, "model (the output pointer)");
    if (num_threads < 0)
      ThrowInvalid("num_threads must be >= 0 (0 = all cores), got " + std::to_string(num_threads));
    swa::model::Checkpoint ckpt = swa::model::LoadCheckpoint(path);
    auto handle = std::make_unique<swa_model>();
    handle->config_json = swa::model::ConfigToJson(ckpt.config);
    handle->impl = std::make_unique<swa::model::Model>(std::move(ckpt.config), num_threads);
    handle->params = std::move(ckpt.params);
    *model = handle.release();
  });
}

SWA_API void swa_model_destroy(swa_model* model) { delete model; }

SWA_API int swa_model_config_json(const swa_model* model, char* buf, int64_t size, int64_t* needed) {
  return swa::GuardCall([&] { WriteString(Handle(model).config_json, buf, size, needed, "config"); });
}

SWA_API int swa_model_vocab_size(const swa_model* model, int64_t* vocab_size) {
  return swa::GuardCall([&] {
    const swa_model& m = Handle(model);
    CheckOut(vocab_size, "vocab_size");
    *vocab_size = m.impl->config().vocab_size;
  });
}

SWA_API int swa_model_param_count(const swa_model* model, int64_t* count) {
  return swa::GuardCall([&] {
    const swa_model& m = Handle(model);
    CheckOut(count, "count");
    int64_t total = 0;
    for (const swa::model::ParamInfo& p : m.impl->layout()) total += p.count;
    *count = total;
  });
}

SWA_API int swa_model_flat_size(const swa_model* model, int64_t* floats) {
  return swa::GuardCall([&] {
    const swa_model& m = Handle(model);
    CheckOut(floats, "floats");
    *floats = m.impl->param_floats();
  });
}

SWA_API int swa_model_num_tensors(const swa_model* model, int64_t* num_tensors) {
  return swa::GuardCall([&] {
    const swa_model& m = Handle(model);
    CheckOut(num_tensors, "num_tensors");
    *num_tensors = static_cast<int64_t>(m.impl->layout().size());
  });
}

SWA_API int swa_model_tensor_name(const swa_model* model, int64_t index, char* buf, int64_t size,
                                  int64_t* needed) {
  return swa::GuardCall([&] {
    const std::vector<swa::model::ParamInfo>& layout = Handle(model).impl->layout();
    const int64_t count = static_cast<int64_t>(layout.size());
    if (index < 0 || index >= count) {
      ThrowInvalid("index " + std::to_string(index) + " is outside [0, " + std::to_string(count) + ")");
    }
    WriteString(layout[index].name, buf, size, needed, "tensor name");
  });
}

SWA_API int swa_model_param(const swa_model* model, const char* name, int64_t* offset, int64_t* count) {
  return swa::GuardCall([&] {
    const swa_model& m = Handle(model);
    CheckOut(name, "name");
    CheckOut(offset, "offset");
    CheckOut(count, "count");
    const std::vector<swa::model::ParamInfo>& layout = m.impl->layout();
    const auto it = std::find_if(layout.begin(), layout.end(),
                                 [&](const swa::model::ParamInfo& p) { return p.name == name; });
    if (it == layout.end()) ThrowInvalid(std::string("no tensor named \"") + name + "\" in this model");
    *offset = it->offset;
    *count = it->count;
  });
}

SWA_API int swa_model_logits(swa_model* model, const int32_t* tokens, int64_t n, const int32_t* cu_seqlens,
                             int64_t num_seqs, float* logits) {
  return swa::GuardCall([&] {
    swa_model& m = Handle(model);
    CheckedBatch checked;
    CheckBatch(m.impl->config().vocab_size, tokens, nullptr, false, n, cu_seqlens, num_seqs, &checked);
    if (n > 0) CheckOut(logits, "logits");
    if (n == 0) return;
    m.impl->Logits(m.params.data(), checked.batch, logits, &m.workspace, swa::ThreadPool::Default());
  });
}

SWA_API int swa_model_loss(swa_model* model, const int32_t* tokens, const int32_t* targets, int64_t n,
                           const int32_t* cu_seqlens, int64_t num_seqs, double* loss, float* grads) {
  return swa::GuardCall([&] {
    swa_model& m = Handle(model);
    CheckedBatch checked;
    CheckBatch(m.impl->config().vocab_size, tokens, targets, true, n, cu_seqlens, num_seqs, &checked);
    CheckOut(loss, "loss");
    double value = 0.0;
    if (grads != nullptr) m.grads.assign(static_cast<size_t>(m.impl->param_floats()), 0.0f);
    if (n > 0) {
      value = m.impl->Loss(m.params.data(), checked.batch, grads != nullptr ? m.grads.data() : nullptr,
                           &m.workspace, swa::ThreadPool::Default());
    }
    if (grads != nullptr) std::copy(m.grads.begin(), m.grads.end(), grads);
    *loss = value;
  });
}

SWA_API int swa_model_save(const swa_model* model, const char* path, swa_dtype dtype) {
  return swa::GuardCall([&] {
    const swa_model& m = Handle(model);
    CheckOut(path, "path");
    // Read as a raw integer: a C caller may pass any value, and loading one outside the
    // enum's range as swa_dtype would itself be undefined behaviour in C++.
    static_assert(sizeof(dtype) == sizeof(int));
    int raw = 0;
    std::memcpy(&raw, &dtype, sizeof(raw));
    swa::model::StoredDType stored;
    if (raw == SWA_F32) {
      stored = swa::model::StoredDType::kF32;
    } else if (raw == SWA_BF16) {
      stored = swa::model::StoredDType::kBF16;
    } else {
      ThrowInvalid("dtype " + std::to_string(raw) +
                   ": checkpoints are stored as SWA_F32 (0) or SWA_BF16 (1)");
    }
    swa::model::SaveCheckpoint(path, m.impl->config(), m.params.data(), stored);
  });
}

}  // extern "C"
