// Counts what ATen's CPU allocator hands out while a CpuAllocations lives: the bytes
// alive and their peak, for tests of how many maps a computation holds at once on the
// CPU (the CUDA caching allocator keeps its own statistics; the CPU allocator keeps none).
#pragma once

#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace dpunet::test {

class CpuAllocations : public c10::Allocator {
 public:
  CpuAllocations() : inner_(c10::GetCPUAllocator()) { c10::SetCPUAllocator(this, kPriority); }
  ~CpuAllocations() override { c10::SetCPUAllocator(inner_, kPriority); }
  CpuAllocations(const CpuAllocations&) = delete;
  CpuAllocations& operator=(const CpuAllocations&) = delete;

  // Bytes allocated through this counter and not yet freed.
  int64_t current() const { return counts_->current.load(); }
  // The most that were alive at once since construction or the last reset_peak().
  int64_t peak() const { return counts_->peak.load(); }
  void reset_peak() { counts_->peak.store(counts_->current.load()); }

  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr inner = inner_->allocate(n);
    void* data = inner.get();
    // Only allocations whose context is their data (the default CPU allocator's) are
    // counted, so that raw_allocate, which oneDNN's workspaces use, works through this.
    if (data == nullptr || inner.get_context() != data) return inner;
    const c10::DeleterFnPtr inner_deleter = inner.get_deleter();
    const c10::Device device = inner.device();
    (void)inner.release_context();
    counts_->add(static_cast<int64_t>(n));
    {
      Live& live = live_allocations();
      const std::lock_guard<std::mutex> lock(live.mutex);
      live.entries[data] = {static_cast<int64_t>(n), counts_, inner_deleter};
    }
    return {data, data, &release, device};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }

 private:
  // Above the default allocator's registration, so that setting it back also takes.
  static constexpr uint8_t kPriority = 100;

  struct Counts {
    std::atomic<int64_t> current{0}, peak{0};
    void add(int64_t n) {
      const int64_t now = current.fetch_add(n) + n;
      int64_t seen = peak.load();
      while (now > seen && !peak.compare_exchange_weak(seen, now)) {
      }
    }
  };
  // Every counted allocation, by address: a deleter gets the address alone. The counts
  // outlive this counter when a tensor does.
  struct Entry {
    int64_t bytes = 0;
    std::shared_ptr<Counts> counts;
    c10::DeleterFnPtr inner_deleter = nullptr;
  };
  struct Live {
    std::mutex mutex;
    std::unordered_map<void*, Entry> entries;
  };
  static Live& live_allocations() {
    static Live live;
    return live;
  }
  static void release(void* data) {
    Entry entry;
    {
      Live& live = live_allocations();
      const std::lock_guard<std::mutex> lock(live.mutex);
      const auto found = live.entries.find(data);
      if (found == live.entries.end()) return;  // not one of ours: cannot happen
      entry = std::move(found->second);
      live.entries.erase(found);
    }
    entry.counts->current.fetch_sub(entry.bytes);
    entry.inner_deleter(data);
  }

  c10::Allocator* inner_;
  std::shared_ptr<Counts> counts_ = std::make_shared<Counts>();
};

}  // namespace dpunet::test
