// Commits per-task results in task order, whatever the thread count or timing.
//
// The backward's tasks each produce a dQ contribution that overlaps other tasks' rows.
// Adding them into dq as they finish would make the summation order (and so the bits)
// depend on scheduling. Instead task t computes into slot t % slots and, when done,
// the contributions are committed strictly in the order 0, 1, 2, ...: whichever thread
// finds the next task done commits it (and any done tasks after it). Before computing,
// task t waits until task t - slots has been committed, which frees its slot; memory is
// bounded by `slots` buffers.
//
// No deadlock: ThreadPool hands out tasks in increasing order, so the lowest
// uncommitted task has been claimed, and it never waits (its slot's previous user is
// older, hence committed).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

namespace swa::attention::cpu {

class OrderedCommits {
 public:
  explicit OrderedCommits(int64_t slots) : done_(static_cast<size_t>(slots), -1) {}

  int64_t slots() const { return static_cast<int64_t>(done_.size()); }
  int64_t committed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return next_;
  }

  // Blocks until task t may use slot t % slots(). Returns false if the call was
  // aborted (another task failed): the task must then return without computing.
  bool WaitForSlot(int64_t t) {
    std::unique_lock<std::mutex> lock(mutex_);
    freed_.wait(lock, [&] { return aborted_ || next_ > t - slots(); });
    return !aborted_;
  }

  // Marks task t done, then commits every consecutive done task from the oldest
  // uncommitted one on, calling commit(task, slot) for each, one at a time, in order.
  template <class Commit>
  void Finish(int64_t t, Commit&& commit) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_[Slot(t)] = t;
    if (committing_) return;  // the thread that is committing will find it
    committing_ = true;
    while (!aborted_ && done_[Slot(next_)] == next_) {
      const int64_t task = next_;
      lock.unlock();
      try {
        commit(task, Slot(task));
      } catch (...) {
        lock.lock();
        committing_ = false;
        throw;
      }
      lock.lock();
      done_[Slot(task)] = -1;
      ++next_;
      freed_.notify_all();
    }
    committing_ = false;
  }

  // Wakes every waiting task and stops further commits (a task failed).
  void Abort() {
    std::lock_guard<std::mutex> lock(mutex_);
    aborted_ = true;
    freed_.notify_all();
  }

 private:
  size_t Slot(int64_t t) const { return static_cast<size_t>(t % slots()); }

  mutable std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<int64_t> done_;  // per slot: the done, uncommitted task in it, or -1
  int64_t next_ = 0;           // oldest uncommitted task
  bool committing_ = false;
  bool aborted_ = false;
};

}  // namespace swa::attention::cpu
