#include "service/watch_wire.h"

#include <google/protobuf/io/coded_stream.h>
#include <grpc/slice.h>

#include <algorithm>
#include <utility>

#include "kanban/v1/kanban.pb.h"
#include "service/convert.h"

namespace kanban::service {
namespace {

using google::protobuf::io::CodedOutputStream;

// Field 1 (events), wire type 2 (length-delimited); field 2 (bookmark_seq),
// wire type 0 (varint). Fixed by kanban.proto; watch_wire_test checks them
// against protobuf's own serialization.
constexpr uint8_t kEventsTag = (1 << 3) | 2;
constexpr uint8_t kBookmarkTag = (2 << 3) | 0;

// Events per hub read while encoding.
constexpr size_t kUpdateChunk = 1024;

}  // namespace

grpc::Slice EncodeEventField(const storage::Event& event) {
  v1::Event proto;
  ToProto(event, &proto);
  const size_t size = proto.ByteSizeLong();
  const size_t total =
      1 + CodedOutputStream::VarintSize32(static_cast<uint32_t>(size)) + size;
  // Serialized straight into the slice gRPC will send: no intermediate string.
  grpc_slice slice = grpc_slice_malloc(total);
  uint8_t* p = GRPC_SLICE_START_PTR(slice);
  *p++ = kEventsTag;
  p = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(size), p);
  proto.SerializeWithCachedSizesToArray(p);
  return grpc::Slice(slice, grpc::Slice::STEAL_REF);
}

grpc::Slice EncodeBookmarkField(int64_t seq) {
  if (seq == 0) return grpc::Slice();
  const uint64_t value = static_cast<uint64_t>(seq);  // As protobuf encodes an int64.
  // At most 11 bytes: gRPC keeps it inline, no allocation.
  grpc_slice slice = grpc_slice_malloc(1 + CodedOutputStream::VarintSize64(value));
  uint8_t* p = GRPC_SLICE_START_PTR(slice);
  *p++ = kBookmarkTag;
  CodedOutputStream::WriteVarint64ToArray(value, p);
  return grpc::Slice(slice, grpc::Slice::STEAL_REF);
}

WireCache::WireCache(size_t capacity, int64_t head)
    : capacity_(std::max<size_t>(capacity, 1)), head_(head) {
  absl::MutexLock lock(&mu_);
  first_seq_ = head + 1;
}

void WireCache::Update(const storage::EventHub& hub) {
  int64_t head = head_.load(std::memory_order_relaxed);
  while (true) {
    std::vector<storage::EventHub::EventPtr> events;
    if (hub.Read(head, kUpdateChunk, &events) == storage::EventHub::ReadStatus::kTooOld) {
      // The ring moved past what was encoded: start again at the hub's head.
      // Correct, only slower: the skipped events are encoded by whoever sends
      // them.
      absl::MutexLock lock(&mu_);
      slices_.clear();
      head = hub.head();
      first_seq_ = head + 1;
      head_.store(head, std::memory_order_release);
      continue;
    }
    if (events.empty()) return;
    // Encoded outside the lock: watchers keep looking up meanwhile.
    std::vector<grpc::Slice> encoded;
    encoded.reserve(events.size());
    for (const auto& event : events) encoded.push_back(EncodeEventField(*event));
    head = events.back()->seq;
    {
      absl::MutexLock lock(&mu_);
      // Retention may have made the hub skip seqs (never within a read).
      if (events.front()->seq != first_seq_ + static_cast<int64_t>(slices_.size())) {
        slices_.clear();
        first_seq_ = events.front()->seq;
      }
      for (grpc::Slice& slice : encoded) slices_.push_back(std::move(slice));
      while (slices_.size() > capacity_) {
        slices_.pop_front();
        ++first_seq_;
      }
    }
    // Visible only once cached (Read ends at a change boundary, so head()
    // never splits a change).
    head_.store(head, std::memory_order_release);
  }
}

void WireCache::Skip(const storage::EventHub& hub) {
  absl::MutexLock lock(&mu_);
  slices_.clear();
  const int64_t head = hub.head();
  first_seq_ = head + 1;
  head_.store(head, std::memory_order_release);
}

std::vector<grpc::Slice> WireCache::Lookup(
    const std::vector<storage::EventHub::EventPtr>& events) const {
  std::vector<grpc::Slice> out(events.size());
  absl::MutexLock lock(&mu_);
  const int64_t end = first_seq_ + static_cast<int64_t>(slices_.size());
  for (size_t i = 0; i < events.size(); ++i) {
    const int64_t seq = events[i]->seq;
    if (seq >= first_seq_ && seq < end)
      out[i] = slices_[static_cast<size_t>(seq - first_seq_)];
  }
  return out;
}

size_t WireCache::size() const {
  absl::MutexLock lock(&mu_);
  return slices_.size();
}

}  // namespace kanban::service
