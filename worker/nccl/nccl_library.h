#ifndef SPLITD_WORKER_NCCL_NCCL_LIBRARY_H_
#define SPLITD_WORKER_NCCL_NCCL_LIBRARY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/nccl/nccl_api.h"

namespace splitd::nccl {

// Where to find the libraries.
struct LibraryOptions {
  // dlopen name or path of NCCL (the agent's --nccl_library).
  std::string nccl_path = "libnccl.so.2";
  // dlopen names or paths of the CUDA runtime, tried in order (the agent's --cudart_library
  // replaces the list with one entry).
  std::vector<std::string> cudart_paths = {"libcudart.so.13", "libcudart.so.12", "libcudart.so"};
};

// NCCL and the CUDA runtime, loaded at run time with dlopen, with every entry point of
// nccl_api.h resolved. One per process; immutable once loaded, so thread-safe to share.
class NcclLibrary {
 public:
  // Loads both libraries and resolves every symbol. Then checks: NCCL >= 2.14.3 (config init),
  // and at least one CUDA device. UNAVAILABLE with a message that starts with "backend
  // unavailable: " and names the library, symbol, version or device problem otherwise. Never
  // crashes on a missing or foreign library.
  static absl::StatusOr<std::shared_ptr<const NcclLibrary>> Load(const LibraryOptions& options);

  ~NcclLibrary();
  NcclLibrary(const NcclLibrary&) = delete;
  NcclLibrary& operator=(const NcclLibrary&) = delete;

  const NcclFunctions& nccl() const { return nccl_; }
  const CudaFunctions& cuda() const { return cuda_; }
  int version() const { return version_; }  // e.g. 22809
  std::string version_string() const;       // e.g. "2.28.9"
  int device_count() const { return device_count_; }
  bool supports_split() const { return version_ >= kMinSplitVersion; }
  // ncclCommShrink resolved (NCCL >= 2.27.3 that exports it).
  bool supports_shrink() const { return nccl_.CommShrink != nullptr; }
  const std::string& nccl_path() const { return nccl_path_; }
  const std::string& cudart_path() const { return cudart_path_; }

  // "ncclInvalidArgument (4): <ncclGetErrorString>; last error: <ncclGetLastError>".
  std::string DescribeNccl(Result result) const;
  // "cudaError 100: <cudaGetErrorString>".
  std::string DescribeCuda(CudaError error) const;

 private:
  NcclLibrary() = default;

  void* nccl_handle_ = nullptr;
  void* cudart_handle_ = nullptr;
  std::string nccl_path_;
  std::string cudart_path_;
  NcclFunctions nccl_;
  CudaFunctions cuda_;
  int version_ = 0;
  int device_count_ = 0;
};

}  // namespace splitd::nccl

#endif  // SPLITD_WORKER_NCCL_NCCL_LIBRARY_H_
