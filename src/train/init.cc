#include "train/init.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <string>

#include "model/param_layout.h"

namespace swa::train {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Uniform in (0, 1]: 53 random bits, never 0 (log(0) below).
double UnitOpen(std::mt19937_64& rng) { return (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53; }

}  // namespace

void InitParameters(const model::ModelConfig& config, const std::vector<model::ParamInfo>& layout,
                    uint64_t seed, float* params) {
  std::fill_n(params, model::LayoutFloats(config), 0.0f);
  std::mt19937_64 rng(seed);
  const double residual_std = kInitStd / std::sqrt(2.0 * static_cast<double>(config.num_hidden_layers));
  for (const model::ParamInfo& p : layout) {
    float* w = params + p.offset;  // [p.count]
    if (EndsWith(p.name, "layernorm.weight") || p.name == "model.norm.weight") {
      std::fill_n(w, p.count, 1.0f);
      continue;
    }
    if (EndsWith(p.name, ".sinks") || EndsWith(p.name, ".gate.bias")) continue;  // stays 0
    const double stddev =
        EndsWith(p.name, "o_proj.weight") || EndsWith(p.name, "down_proj.weight") ? residual_std : kInitStd;
    // Box-Muller: two uniforms give two independent standard normals.
    for (int64_t i = 0; i < p.count; i += 2) {
      const double radius = std::sqrt(-2.0 * std::log(UnitOpen(rng)));
      const double angle = 2.0 * std::numbers::pi * UnitOpen(rng);
      w[i] = static_cast<float>(stddev * radius * std::cos(angle));
      if (i + 1 < p.count) w[i + 1] = static_cast<float>(stddev * radius * std::sin(angle));
    }
  }
}

}  // namespace swa::train
