// OrderedCommits under a real thread pool with uneven task times: commits come in task
// order, a slot is never reused before its task is committed, and a failing task stops
// the call without hanging the others.
#include "attention/cpu/ordered_commits.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/parallel.h"

namespace swa::attention::cpu {
namespace {

TEST(OrderedCommitsTest, CommitsInTaskOrderWithBoundedSlots) {
  for (int threads : {1, 2, 3, 5}) {
    constexpr int64_t kTasks = 300;
    ThreadPool pool;
    OrderedCommits commits(2 * threads);
    std::vector<int64_t> slot_owner(static_cast<size_t>(commits.slots()), -1);
    std::vector<int64_t> order;
    bool slot_clobbered = false;
    pool.ParallelFor(kTasks, threads, [&](int64_t t, int) {
      ASSERT_TRUE(commits.WaitForSlot(t));
      const size_t slot = static_cast<size_t>(t % commits.slots());
      slot_owner[slot] = t;
      // Uneven work, so that later tasks often finish first.
      std::this_thread::sleep_for(std::chrono::microseconds((t * 7919) % 13 * 50));
      commits.Finish(t, [&](int64_t task, int64_t s) {
        if (slot_owner[static_cast<size_t>(s)] != task) slot_clobbered = true;
        order.push_back(task);
      });
    });
    ASSERT_EQ(commits.committed(), kTasks);
    ASSERT_EQ(static_cast<int64_t>(order.size()), kTasks);
    for (int64_t t = 0; t < kTasks; ++t) EXPECT_EQ(order[t], t) << threads << " threads";
    EXPECT_FALSE(slot_clobbered) << threads << " threads";
  }
}

TEST(OrderedCommitsTest, AbortReleasesWaitingTasks) {
  ThreadPool pool;
  OrderedCommits commits(2);
  EXPECT_THROW(pool.ParallelFor(50, 3,
                                [&](int64_t t, int) {
                                  if (!commits.WaitForSlot(t)) return;
                                  try {
                                    if (t == 0) {
                                      std::this_thread::sleep_for(std::chrono::milliseconds(20));
                                      throw std::runtime_error("task 0 failed");
                                    }
                                    commits.Finish(t, [](int64_t, int64_t) {});
                                  } catch (...) {
                                    commits.Abort();
                                    throw;
                                  }
                                }),
               std::runtime_error);
  EXPECT_EQ(commits.committed(), 0);
}

}  // namespace
}  // namespace swa::attention::cpu
