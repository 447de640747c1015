#include "common/parallel.h"

#include <algorithm>
#include <chrono>
#include <exception>

namespace swa {

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

ThreadPool& ThreadPool::Default() {
  static ThreadPool* pool = new ThreadPool();  // leaked on purpose: no exit-order issues
  return *pool;
}

int ThreadPool::HardwareThreads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int ThreadPool::ResolveThreads(int requested) {
  const int n = requested <= 0 ? HardwareThreads() : requested;
  return std::min(n, kMaxThreads);
}

void ThreadPool::EnsureWorkers(int count) {
  while (static_cast<int>(workers_.size()) < count) {
    const int id = static_cast<int>(workers_.size()) + 1;
    workers_.emplace_back([this, id] { WorkerLoop(id); });
  }
}

void ThreadPool::RunTasks(int worker) {
  for (;;) {
    const int64_t t = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (t >= num_tasks_ || failed_.load(std::memory_order_relaxed)) return;
    try {
      (*task_)(t, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      failed_ = true;
    }
  }
}

void ThreadPool::WorkerLoop(int worker) {
  uint64_t seen = 0;
  for (;;) {
    // Spin briefly before sleeping: back-to-back calls (a decode step per token) then
    // find their workers awake instead of paying a futex wake-up each.
    const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
    while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < spin_until) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || (generation_ != seen && worker <= active_workers_); });
      if (stop_) return;
      seen = generation_;
    }
    RunTasks(worker);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_ == 0) done_.notify_all();
    }
  }
}

void ThreadPool::ParallelFor(int64_t num_tasks, int threads, const Task& task) {
  if (num_tasks <= 0) return;
  threads = static_cast<int>(std::min<int64_t>(std::clamp(threads, 1, kMaxThreads), num_tasks));
  if (threads == 1) {
    for (int64_t t = 0; t < num_tasks; ++t) task(t, 0);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  EnsureWorkers(threads - 1);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    num_tasks_ = num_tasks;
    next_task_ = 0;
    failed_ = false;
    error_ = nullptr;
    active_workers_ = threads - 1;
    busy_ = threads - 1;
    ++generation_;
  }
  wake_.notify_all();
  RunTasks(0);
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return busy_ == 0; });
    task_ = nullptr;
    error = error_;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace swa
