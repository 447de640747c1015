// The learning-rate schedule: linear warmup, then a cosine decay to a floor.
#pragma once

#include <cstdint>

namespace swa::train {

// For step t (1-based), warmup W >= 0, total T >= max(W, 1):
//   t <= W:      max_lr * t / W                   (max_lr / W at t = 1, max_lr at t = W)
//   W < t < T:   min_lr + (max_lr - min_lr) * (1 + cos(pi * (t - W) / (T - W))) / 2
//   t >= T:      min_lr
// The cosine starts at max_lr just after warmup and reaches min_lr at t = T. With W = 0
// there is no warmup; with W = T the schedule holds max_lr until T and min_lr after.
double LearningRate(int64_t step, int64_t warmup, int64_t total, double max_lr, double min_lr);

}  // namespace swa::train
