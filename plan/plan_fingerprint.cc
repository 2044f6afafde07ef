#include "plan/plan_fingerprint.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/sha256.h"

namespace splitd::plan {
namespace {

// The first field of every encoding; bump it with any change of docs/plan-format.md.
constexpr absl::string_view kVersionTag = "splitd-plan-v1";

// Writes the canonical encoding (docs/plan-format.md) into a fixed buffer and hands full
// buffers to the hash, so the encoding is never materialized and Update is called per 64 KiB,
// not per field.
class Encoder {
 public:
  explicit Encoder(Sha256* sha) : sha_(sha) {}
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  void U32(uint32_t value) {
    Reserve(4);
    for (int i = 0; i < 4; ++i) buffer_[used_++] = static_cast<unsigned char>(value >> (8 * i));
  }
  void I32(int32_t value) { U32(static_cast<uint32_t>(value)); }
  void I64(int64_t value) {
    Reserve(8);
    const uint64_t bits = static_cast<uint64_t>(value);
    for (int i = 0; i < 8; ++i) buffer_[used_++] = static_cast<unsigned char>(bits >> (8 * i));
  }
  // u32 LE byte length, then the bytes.
  void String(absl::string_view value) {
    U32(static_cast<uint32_t>(value.size()));
    size_t done = 0;
    while (done < value.size()) {
      if (used_ == kBufferSize) Flush();
      const size_t chunk = std::min(kBufferSize - used_, value.size() - done);
      std::memcpy(buffer_ + used_, value.data() + done, chunk);
      used_ += chunk;
      done += chunk;
    }
  }
  void Flush() {
    if (used_ > 0) sha_->Update(buffer_, used_);
    used_ = 0;
  }

 private:
  static constexpr size_t kBufferSize = 64 * 1024;

  void Reserve(size_t bytes) {
    if (kBufferSize - used_ < bytes) Flush();
  }

  Sha256* sha_;
  unsigned char buffer_[kBufferSize];
  size_t used_ = 0;
};

}  // namespace

std::string PlanFingerprint::Compute(const SplitPlan& plan) {
  Sha256 sha;
  // Heap-allocated: the buffer is too large for a comfortable stack frame.
  auto encoder = std::make_unique<Encoder>(&sha);
  Encoder& out = *encoder;
  out.String(kVersionTag);
  out.String(plan.cluster);
  out.I64(plan.epoch);
  out.I64(plan.world_size);
  out.String(plan.method);
  out.I64(plan.topology.validation().allreduce_elements());
  out.I64(plan.topology.validation().bandwidth_bytes());
  out.I64(plan.topology.nodes().gpus_per_node());
  out.I64(plan.topology.nodes().count());
  out.U32(static_cast<uint32_t>(plan.kinds.size()));
  for (const GroupKind& kind : plan.kinds) {
    out.String(kind.name);
    out.String(kind.backend);
    out.String(kind.mesh);
    out.String(kind.local);
    out.U32(static_cast<uint32_t>(kind.dims.size()));
    for (const std::string& dim : kind.dims) out.String(dim);
    const int64_t count = std::max<int64_t>(kind.group_count(), 0);
    out.U32(static_cast<uint32_t>(count));
    for (int64_t g = 0; g < count; ++g) {
      const absl::Span<const int32_t> members = kind.group(g);
      out.U32(static_cast<uint32_t>(members.size()));
      for (int32_t member : members) out.I32(member);
    }
  }
  out.Flush();
  return sha.HexDigest();
}

}  // namespace splitd::plan
