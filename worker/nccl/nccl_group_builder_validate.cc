// The "cuda:nccl" builder's validation: a float32 all-reduce of ones per group on the device,
// the groups side by side, and the optional bus bandwidth run.

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"
#include "worker/nccl/color_key.h"
#include "worker/nccl/nccl_api.h"
#include "worker/nccl/nccl_group_builder_internal.h"
#include "worker/nccl/nccl_library.h"

namespace splitd::worker::nccl_internal {
namespace {

constexpr int kBandwidthIterations = 5;
// Bounds on the buffers, so that element counts times 4 bytes cannot overflow.
constexpr int64_t kMaxAllreduceElements = int64_t{1} << 30;
constexpr int64_t kMaxBandwidthBytes = int64_t{1} << 36;

}  // namespace

absl::StatusOr<std::vector<GroupValidation>> NcclGroupBuilder::Validate(const WorldSpec& spec) {
  if (library_ == nullptr) return absl::FailedPreconditionError("NCCL library is not loaded");
  if (world_ == nullptr && !groups_formed_) {
    return absl::FailedPreconditionError("Validate before BootstrapWorld");
  }
  if (!groups_formed_) return absl::FailedPreconditionError("Validate before FormGroups");
  RETURN_IF_ERROR(CheckNcclWorld(spec));
  if (spec.allreduce_elements < 1 || spec.allreduce_elements > kMaxAllreduceElements) {
    return absl::InvalidArgumentError(absl::StrCat("allreduce_elements must be in [1, ",
                                                   kMaxAllreduceElements, "], got ",
                                                   spec.allreduce_elements));
  }
  if (spec.bandwidth_bytes < 0 || spec.bandwidth_bytes > kMaxBandwidthBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bandwidth_bytes must be in [0, ", kMaxBandwidthBytes, "], got ", spec.bandwidth_bytes));
  }
  // Each requested group must have been formed; find it by (kind, group index).
  std::vector<FormedGroup*> formed(spec.groups.size(), nullptr);
  for (size_t i = 0; i < spec.groups.size(); ++i) {
    for (const std::unique_ptr<FormedGroup>& group : groups_) {
      if (group->assignment.kind == spec.groups[i].kind &&
          group->assignment.group_index == spec.groups[i].group_index) {
        formed[i] = group.get();
      }
    }
    if (formed[i] == nullptr || formed[i]->comm == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Validate: group ", GroupName(spec.groups[i]), " was not formed (call FormGroups)"));
    }
  }
  timeout_ = spec.timeout;
  RETURN_IF_ERROR(CudaCheck(library_->cuda().SetDevice(device_index_),
                            absl::StrCat("cudaSetDevice(", device_index_, ")")));

  const absl::Time start = absl::Now();
  const std::vector<size_t> order = KindOrder(spec.groups);
  std::vector<GroupValidation> results(spec.groups.size());
  if (options_.serial_validation || order.size() <= 1) {
    // One group after another, in kind order on every rank: each all-reduce is waited for
    // before the next starts, so ranks that ordered them differently would deadlock.
    for (size_t i : order) results[i] = ValidateGroup(formed[i], spec, /*own_thread=*/false);
  } else {
    // Side by side, one thread and stream per group: a communicator's first collective
    // connects its peers (NCCL's lazy connection), and the groups connect concurrently
    // instead of one after another. Each thread waits only on its own group.
    std::vector<std::thread> threads;
    threads.reserve(order.size());
    for (size_t i : order) {
      threads.emplace_back([this, &results, &formed, &spec, i] {
        results[i] = ValidateGroup(formed[i], spec, /*own_thread=*/true);
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  if (spec.bandwidth_bytes > 0) {
    // Every group whose communicator did not fail, even with a wrong sum: the members must
    // agree on which groups run, or the ones that do would wait for the others forever.
    for (size_t i : order) {
      if (!formed[i]->failed) MeasureBandwidth(formed[i], spec, &results[i]);
    }
  }
  spdlog::debug("nccl: rank {} validated {} group(s) of epoch {} in {}", rank_, results.size(),
                epoch_, absl::FormatDuration(absl::Now() - start));
  return results;
}

absl::Status NcclGroupBuilder::AllReduce(FormedGroup* group, void* buffer, size_t count,
                                         absl::string_view step, absl::Time deadline,
                                         nccl::CudaStream stream) {
  const Result result =
      nccl().AllReduce(buffer, buffer, count, nccl::kFloat32, nccl::kSum, group->comm, stream);
  return Settle(group->comm, result, step, deadline);
}

absl::Status NcclGroupBuilder::RunValidation(FormedGroup* group, const WorldSpec& spec,
                                             void** buffer, GroupValidation* out,
                                             nccl::CudaStream stream) {
  const std::string name = GroupName(group->assignment);
  const size_t count = static_cast<size_t>(spec.allreduce_elements);
  const size_t bytes = count * sizeof(float);
  std::vector<float> host(count, 1.0f);
  RETURN_IF_ERROR(CudaCheck(cuda().Malloc(buffer, bytes),
                            absl::StrCat("cudaMalloc of ", bytes, " bytes for ", name)));
  RETURN_IF_ERROR(
      CudaCheck(cuda().Memcpy(*buffer, host.data(), bytes, nccl::kCudaMemcpyHostToDevice),
                absl::StrCat("cudaMemcpy of ones to the device for ", name)));
  // A copy from pageable memory may still be in flight when cudaMemcpy returns, and NCCL's
  // non-blocking stream does not wait for the legacy default stream: wait for it here.
  RETURN_IF_ERROR(CudaCheck(cuda().StreamSynchronize(nullptr),
                            absl::StrCat("cudaStreamSynchronize(0) after the copy for ", name)));

  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(AllReduce(group, *buffer, count, absl::StrCat("ncclAllReduce of ", name),
                            absl::Now() + spec.timeout, stream));
  RETURN_IF_ERROR(CudaCheck(cuda().StreamSynchronize(stream),
                            absl::StrCat("cudaStreamSynchronize after ncclAllReduce of ", name)));
  out->latency_us = absl::ToDoubleMicroseconds(absl::Now() - start);

  std::fill(host.begin(), host.end(), 0.0f);
  RETURN_IF_ERROR(
      CudaCheck(cuda().Memcpy(host.data(), *buffer, bytes, nccl::kCudaMemcpyDeviceToHost),
                absl::StrCat("cudaMemcpy of the result to the host for ", name)));
  const float expected = static_cast<float>(group->assignment.members.size());
  float minimum = host.front();
  size_t wrong = 0;
  for (float value : host) {
    minimum = std::min(minimum, value);
    if (value != expected) ++wrong;
  }
  out->allreduce_value = minimum;
  if (wrong > 0) {
    out->error =
        absl::StrCat(wrong, " of ", host.size(), " all-reduce elements differ from the group size ",
                     group->assignment.members.size(), " (min ", minimum, ")");
    return absl::OkStatus();  // NCCL itself did not fail
  }
  out->ok = true;
  return absl::OkStatus();
}

GroupValidation NcclGroupBuilder::ValidateGroup(FormedGroup* group, const WorldSpec& spec,
                                                bool own_thread) {
  GroupValidation result;
  result.kind = group->assignment.kind;
  result.group_index = group->assignment.group_index;
  void* buffer = nullptr;
  nccl::CudaStream stream = stream_;
  absl::Status status = absl::OkStatus();
  if (own_thread) {
    status = CudaCheck(cuda().SetDevice(device_index_),
                       absl::StrCat("cudaSetDevice(", device_index_, ")"));
    if (status.ok()) {
      status =
          CudaCheck(cuda().StreamCreateWithFlags(&stream, nccl::kCudaStreamNonBlocking),
                    absl::StrCat("cudaStreamCreateWithFlags for ", GroupName(group->assignment)));
      if (!status.ok()) stream = nullptr;
    }
  }
  if (status.ok()) status = RunValidation(group, spec, &buffer, &result, stream);
  FreeBuffer(buffer, GroupName(group->assignment));
  if (own_thread && stream != nullptr) {
    const CudaError error = cuda().StreamDestroy(stream);
    if (error != 0) {
      spdlog::warn("nccl: rank {} cudaStreamDestroy: {}", rank_, library_->DescribeCuda(error));
    }
  }
  if (!status.ok()) {
    result.ok = false;
    result.error = status.ToString();
    group->failed = true;
  }
  spdlog::debug("nccl: rank {} validated {} ({} ranks): {} in {} us{}", rank_,
                GroupName(group->assignment), group->assignment.members.size(),
                result.ok ? "ok" : "FAILED", result.latency_us,
                result.error.empty() ? "" : absl::StrCat(": ", result.error));
  return result;
}

void NcclGroupBuilder::MeasureBandwidth(FormedGroup* group, const WorldSpec& spec,
                                        GroupValidation* out) {
  const int size = static_cast<int>(group->assignment.members.size());
  if (size == 1) return;
  const std::string name = GroupName(group->assignment);
  const size_t count =
      std::max<size_t>(1, static_cast<size_t>(spec.bandwidth_bytes) / sizeof(float));
  const size_t bytes = count * sizeof(float);
  void* buffer = nullptr;
  double seconds = 0;
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(CudaCheck(cuda().Malloc(&buffer, bytes),
                              absl::StrCat("cudaMalloc of ", bytes, " bytes for ", name)));
    const std::string step = absl::StrCat("bandwidth ncclAllReduce of ", name);
    const std::string sync = absl::StrCat("cudaStreamSynchronize after ", step);
    RETURN_IF_ERROR(AllReduce(group, buffer, count, step, absl::Now() + spec.timeout, stream_));
    RETURN_IF_ERROR(CudaCheck(cuda().StreamSynchronize(stream_), sync));
    const absl::Time start = absl::Now();
    const absl::Time deadline = start + spec.timeout;
    for (int i = 0; i < kBandwidthIterations; ++i) {
      RETURN_IF_ERROR(AllReduce(group, buffer, count, step, deadline, stream_));
    }
    RETURN_IF_ERROR(CudaCheck(cuda().StreamSynchronize(stream_), sync));
    seconds = absl::ToDoubleSeconds(absl::Now() - start) / kBandwidthIterations;
    return absl::OkStatus();
  }();
  FreeBuffer(buffer, name);
  if (!status.ok()) {
    out->ok = false;
    out->error = absl::StrCat("bandwidth run: ", status.ToString());
    group->failed = true;
    return;
  }
  seconds = std::max(seconds, 1e-9);
  out->bus_bandwidth_gbps = 2.0 * (size - 1) / size * static_cast<double>(bytes) / seconds / 1e9;
  spdlog::debug("nccl: rank {} bandwidth of {}: {} bytes in {} us, {} GB/s", rank_, name, bytes,
                seconds * 1e6, out->bus_bandwidth_gbps);
}

void NcclGroupBuilder::FreeBuffer(void* buffer, const std::string& name) {
  if (buffer == nullptr) return;
  const CudaError error = cuda().Free(buffer);
  if (error != 0) {
    spdlog::warn("nccl: rank {} cudaFree for {}: {}", rank_, name, library_->DescribeCuda(error));
  }
}

}  // namespace splitd::worker::nccl_internal
