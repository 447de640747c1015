// A small persistent thread pool. Work is a list of independent tasks; which worker
// runs a task never changes what the task computes, so results are identical for any
// thread count. `worker` (0..threads-1) indexes per-thread scratch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace swa {

class ThreadPool {
 public:
  using Task = std::function<void(int64_t task, int worker)>;

  ThreadPool() = default;
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs task(0..num_tasks-1) on up to `threads` workers (the caller is worker 0) and
  // returns when all are done. Rethrows the first exception a task threw.
  void ParallelFor(int64_t num_tasks, int threads, const Task& task);

  // The process-wide pool behind the C API.
  static ThreadPool& Default();
  // Number of hardware threads (at least 1).
  static int HardwareThreads();
  // Maps the API's num_threads (0 = all cores) to a worker count in [1, kMaxThreads].
  static int ResolveThreads(int requested);
  static constexpr int kMaxThreads = 256;

 private:
  void EnsureWorkers(int count);
  void WorkerLoop(int worker);
  void RunTasks(int worker);

  std::mutex call_mutex_;  // one ParallelFor at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const Task* task_ = nullptr;
  int64_t num_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<bool> failed_{false};
  int active_workers_ = 0;  // helpers taking part in the current call
  int busy_ = 0;            // helpers not yet finished with the current call
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace swa
