#include "worker/nccl/nccl_library.h"

#include <dlfcn.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace splitd::nccl {
namespace {

constexpr char kUnavailable[] = "backend unavailable: ";

absl::Status Unavailable(const std::string& message) {
  return absl::UnavailableError(absl::StrCat(kUnavailable, message));
}

// The pending dlerror() text, or a placeholder (dlerror() returns null once read).
std::string DlError() {
  const char* error = dlerror();
  return error != nullptr ? error : "unknown dlopen error";
}

// A dlopen handle that is closed unless released: every failure path of Load closes what it
// opened.
class Handle {
 public:
  Handle() = default;
  explicit Handle(void* handle) : handle_(handle) {}
  ~Handle() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Handle& operator=(Handle&& other) noexcept {
    std::swap(handle_, other.handle_);
    return *this;
  }

  void* get() const { return handle_; }
  void* release() { return std::exchange(handle_, nullptr); }

 private:
  void* handle_ = nullptr;
};

absl::StatusOr<Handle> Open(const std::string& path) {
  dlerror();  // Clears a stale error so the message below is about this call.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return absl::NotFoundError(DlError());
  return Handle(handle);
}

// Resolves `name` in `handle` into `*function`; null when the library does not export it.
template <typename Function>
void Lookup(void* handle, const char* name, Function* function) {
  *function = reinterpret_cast<Function>(dlsym(handle, name));
}

// Resolves a required symbol: UNAVAILABLE naming the symbol and library when it is missing.
template <typename Function>
absl::Status Require(void* handle, const std::string& path, const char* name, Function* function) {
  Lookup(handle, name, function);
  if (*function == nullptr) {
    return Unavailable(absl::StrCat(path, " has no symbol ", name));
  }
  return absl::OkStatus();
}

std::string VersionString(int code) {
  // NCCL_VERSION: X*1000+Y*100+Z up to 2.8, X*10000+Y*100+Z from 2.9 on.
  const int scale = code >= 10000 ? 10000 : 1000;
  return absl::StrCat(code / scale, ".", (code % scale) / 100, ".", code % 100);
}

const char* ResultName(Result result) {
  switch (result) {
    case kSuccess:
      return "ncclSuccess";
    case kUnhandledCudaError:
      return "ncclUnhandledCudaError";
    case kSystemError:
      return "ncclSystemError";
    case kInternalError:
      return "ncclInternalError";
    case kInvalidArgument:
      return "ncclInvalidArgument";
    case kInvalidUsage:
      return "ncclInvalidUsage";
    case kRemoteError:
      return "ncclRemoteError";
    case kInProgress:
      return "ncclInProgress";
    default:
      return "ncclResult";
  }
}

const char* OrEmpty(const char* text) { return text != nullptr ? text : ""; }

// Resolves the NCCL entry points of the library `nccl` (loaded from `nccl_path`) into
// `functions` and its version into `*version_out`; UNAVAILABLE naming what is missing or too old.
absl::Status ResolveNccl(void* nccl, const std::string& nccl_path, NcclFunctions* functions,
                         int* version_out) {
  NcclFunctions& n = *functions;
  Lookup(nccl, "ncclGetVersion", &n.GetVersion);
  if (n.GetVersion == nullptr) {
    return Unavailable(
        absl::StrCat(nccl_path, " has no symbol ncclGetVersion (not an NCCL library?)"));
  }
  int version = 0;
  const Result version_result = n.GetVersion(&version);
  if (version_result != kSuccess) {
    return Unavailable(
        absl::StrCat("ncclGetVersion of ", nccl_path, " failed with result ", version_result));
  }
  if (version < kMinConfigVersion) {
    return Unavailable(absl::StrCat("NCCL ", VersionString(version), " at ", nccl_path,
                                    " is too old (need ", VersionString(kMinConfigVersion),
                                    " or later)"));
  }
  *version_out = version;

  // ncclCommSplit appeared in 2.18.1: optional before, required from then on.
  Lookup(nccl, "ncclCommSplit", &n.CommSplit);
  if (n.CommSplit == nullptr && version >= kMinSplitVersion) {
    return Unavailable(absl::StrCat(nccl_path, " (NCCL ", VersionString(version),
                                    ") has no symbol ncclCommSplit"));
  }
  // ncclCommShrink appeared in 2.27.3 and stays optional: without it the agent re-forms the
  // world instead of shrinking it. A symbol an older library happens to export is not trusted.
  if (version >= kMinShrinkVersion) Lookup(nccl, "ncclCommShrink", &n.CommShrink);
  const absl::Status nccl_symbols[] = {
      Require(nccl, nccl_path, "ncclGetUniqueId", &n.GetUniqueId),
      Require(nccl, nccl_path, "ncclCommInitRankConfig", &n.CommInitRankConfig),
      Require(nccl, nccl_path, "ncclCommFinalize", &n.CommFinalize),
      Require(nccl, nccl_path, "ncclCommDestroy", &n.CommDestroy),
      Require(nccl, nccl_path, "ncclCommAbort", &n.CommAbort),
      Require(nccl, nccl_path, "ncclCommGetAsyncError", &n.CommGetAsyncError),
      Require(nccl, nccl_path, "ncclCommCount", &n.CommCount),
      Require(nccl, nccl_path, "ncclCommUserRank", &n.CommUserRank),
      Require(nccl, nccl_path, "ncclAllReduce", &n.AllReduce),
      Require(nccl, nccl_path, "ncclGroupStart", &n.GroupStart),
      Require(nccl, nccl_path, "ncclGroupEnd", &n.GroupEnd),
      Require(nccl, nccl_path, "ncclGetErrorString", &n.GetErrorString),
      Require(nccl, nccl_path, "ncclGetLastError", &n.GetLastError),
  };
  for (const absl::Status& symbol_status : nccl_symbols) {
    if (!symbol_status.ok()) return symbol_status;
  }
  return absl::OkStatus();
}

// The first of `paths` that loads as the CUDA runtime, its path in `*loaded_path`.
absl::StatusOr<Handle> OpenCudart(const std::vector<std::string>& paths, std::string* loaded_path) {
  Handle cudart_handle;
  std::vector<std::string> load_errors;
  for (const std::string& path : paths) {
    absl::StatusOr<Handle> handle = Open(path);
    if (handle.ok()) {
      cudart_handle = *std::move(handle);
      *loaded_path = path;
      break;
    }
    load_errors.push_back(std::string(handle.status().message()));
  }
  if (cudart_handle.get() == nullptr) {
    return Unavailable(absl::StrCat("cannot load the CUDA runtime (tried ",
                                    absl::StrJoin(paths, ", "),
                                    "): ", absl::StrJoin(load_errors, "; ")));
  }
  return cudart_handle;
}

// Resolves the CUDA runtime entry points of `cudart` (loaded from `cudart_path`) into
// `functions`; UNAVAILABLE naming the first one missing.
absl::Status ResolveCuda(void* cudart, const std::string& cudart_path, CudaFunctions* functions) {
  CudaFunctions& c = *functions;
  const absl::Status cuda_symbols[] = {
      Require(cudart, cudart_path, "cudaGetDeviceCount", &c.GetDeviceCount),
      Require(cudart, cudart_path, "cudaSetDevice", &c.SetDevice),
      Require(cudart, cudart_path, "cudaMalloc", &c.Malloc),
      Require(cudart, cudart_path, "cudaFree", &c.Free),
      Require(cudart, cudart_path, "cudaMemcpy", &c.Memcpy),
      Require(cudart, cudart_path, "cudaStreamCreateWithFlags", &c.StreamCreateWithFlags),
      Require(cudart, cudart_path, "cudaStreamSynchronize", &c.StreamSynchronize),
      Require(cudart, cudart_path, "cudaStreamDestroy", &c.StreamDestroy),
      Require(cudart, cudart_path, "cudaGetErrorString", &c.GetErrorString),
      Require(cudart, cudart_path, "cudaRuntimeGetVersion", &c.RuntimeGetVersion),
      Require(cudart, cudart_path, "cudaDriverGetVersion", &c.DriverGetVersion),
  };
  for (const absl::Status& symbol_status : cuda_symbols) {
    if (!symbol_status.ok()) return symbol_status;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const NcclLibrary>> NcclLibrary::Load(
    const LibraryOptions& options) {
  // Constructor is private, so no make_shared.
  std::shared_ptr<NcclLibrary> library(new NcclLibrary());
  library->nccl_path_ = options.nccl_path;
  const std::string& nccl_path = library->nccl_path_;

  // NCCL: load, read its version, then resolve what that version must have.
  absl::StatusOr<Handle> nccl_handle = Open(nccl_path);
  if (!nccl_handle.ok()) {
    return Unavailable(
        absl::StrCat("cannot load NCCL library ", nccl_path, ": ", nccl_handle.status().message()));
  }
  if (absl::Status resolved =
          ResolveNccl(nccl_handle->get(), nccl_path, &library->nccl_, &library->version_);
      !resolved.ok()) {
    return resolved;
  }

  // The CUDA runtime: the first of the configured names that loads.
  if (options.cudart_paths.empty()) {
    return Unavailable("no CUDA runtime library configured");
  }
  absl::StatusOr<Handle> cudart_loaded = OpenCudart(options.cudart_paths, &library->cudart_path_);
  if (!cudart_loaded.ok()) return cudart_loaded.status();
  Handle cudart_handle = *std::move(cudart_loaded);
  void* cudart = cudart_handle.get();
  const std::string& cudart_path = library->cudart_path_;
  CudaFunctions& c = library->cuda_;
  if (absl::Status resolved = ResolveCuda(cudart, cudart_path, &c); !resolved.ok()) {
    return resolved;
  }

  int device_count = 0;
  const CudaError cuda_error = c.GetDeviceCount(&device_count);
  if (cuda_error != 0) {
    return Unavailable(absl::StrCat("CUDA: ", OrEmpty(c.GetErrorString(cuda_error)), " (cudaError ",
                                    cuda_error, "); CUDA runtime ", cudart_path));
  }
  if (device_count <= 0) {
    return Unavailable(absl::StrCat("no CUDA device (CUDA runtime ", cudart_path, ")"));
  }
  library->device_count_ = device_count;

  library->nccl_handle_ = nccl_handle->release();
  library->cudart_handle_ = cudart_handle.release();
  return std::shared_ptr<const NcclLibrary>(std::move(library));
}

// A loaded NCCL is never unloaded: its proxy and progress threads, and the CUDA runtime's exit
// handlers, may still run code of the library after the last reference here is gone, and
// unloading would pull that code from under them. The process exit reclaims both.
NcclLibrary::~NcclLibrary() = default;

std::string NcclLibrary::version_string() const { return VersionString(version_); }

std::string NcclLibrary::DescribeNccl(Result result) const {
  std::string text = absl::StrCat(ResultName(result), " (", result, ")");
  if (nccl_.GetErrorString != nullptr) {
    absl::StrAppend(&text, ": ", OrEmpty(nccl_.GetErrorString(result)));
  }
  if (nccl_.GetLastError != nullptr) {
    const char* last = nccl_.GetLastError(nullptr);
    if (last != nullptr && *last != '\0') absl::StrAppend(&text, "; last error: ", last);
  }
  return text;
}

std::string NcclLibrary::DescribeCuda(CudaError error) const {
  std::string text = absl::StrCat("cudaError ", error);
  if (cuda_.GetErrorString != nullptr) {
    absl::StrAppend(&text, ": ", OrEmpty(cuda_.GetErrorString(error)));
  }
  return text;
}

}  // namespace splitd::nccl
