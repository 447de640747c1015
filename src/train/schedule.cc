#include "train/schedule.h"

#include <cmath>
#include <numbers>
#include <string>

#include "common/error.h"

namespace swa::train {

double LearningRate(int64_t step, int64_t warmup, int64_t total, double max_lr, double min_lr) {
  if (step < 1) ThrowInvalid("learning rate: step must be >= 1, got " + std::to_string(step));
  if (warmup < 0 || total < 1 || warmup > total)
    ThrowInvalid("learning rate: need 0 <= warmup <= total and total >= 1, got warmup " +
                 std::to_string(warmup) + ", total " + std::to_string(total));
  if (step <= warmup) return max_lr * static_cast<double>(step) / static_cast<double>(warmup);
  if (step >= total) return min_lr;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
  return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace swa::train
