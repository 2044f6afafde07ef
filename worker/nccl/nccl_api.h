#ifndef SPLITD_WORKER_NCCL_NCCL_API_H_
#define SPLITD_WORKER_NCCL_NCCL_API_H_

// The part of the NCCL and CUDA runtime ABI the agent uses, declared here so that the build needs
// neither library nor header: both are loaded at run time with dlopen (NcclLibrary). Values and
// layouts follow NCCL 2.28's public header (docs: ../shared/facts/NCCL.md); the conformance check
// (worker/nccl/nccl_abi_check_test.cc) compiles these declarations beside the real nccl.h
// wherever it exists and fails the build on any difference.

#include <climits>
#include <cstddef>
#include <cstdint>

namespace splitd::nccl {

// ncclResult_t
using Result = int;
inline constexpr Result kSuccess = 0;
inline constexpr Result kUnhandledCudaError = 1;
inline constexpr Result kSystemError = 2;
inline constexpr Result kInternalError = 3;
inline constexpr Result kInvalidArgument = 4;
inline constexpr Result kInvalidUsage = 5;
inline constexpr Result kRemoteError = 6;
inline constexpr Result kInProgress = 7;

// ncclDataType_t and ncclRedOp_t values used here.
inline constexpr int kFloat32 = 7;
inline constexpr int kSum = 0;

inline constexpr int kSplitNoColor = -1;     // NCCL_SPLIT_NOCOLOR
inline constexpr int kShrinkDefault = 0x00;  // NCCL_SHRINK_DEFAULT
// NCCL_SHRINK_ABORT: stop the parent's in-flight work first; the mode after a peer failure.
inline constexpr int kShrinkAbort = 0x01;
inline constexpr int kConfigUndefInt = INT_MIN;  // NCCL_CONFIG_UNDEF_INT
inline constexpr unsigned int kConfigMagic = 0xcafebeef;
inline constexpr size_t kUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES

// NCCL_VERSION(X, Y, Z) as ncclGetVersion reports it.
constexpr int Version(int major, int minor, int patch) {
  return (major <= 2 && minor <= 8) ? major * 1000 + minor * 100 + patch
                                    : major * 10000 + minor * 100 + patch;
}
inline constexpr int kMinSplitVersion = Version(2, 18, 1);   // ncclCommSplit
inline constexpr int kMinShrinkVersion = Version(2, 27, 3);  // ncclCommShrink
inline constexpr int kMinConfigVersion = Version(2, 14, 3);  // ncclCommInitRankConfig

// typedef struct ncclComm* ncclComm_t;
struct Comm;
using CommHandle = Comm*;

// typedef struct { char internal[NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;
struct UniqueId {
  char internal[kUniqueIdBytes];
};

// ncclConfig_t as of NCCL 2.28 (80 bytes). Libraries read `size` and `version` first and reset
// fields the caller's version predates, so one layout serves 2.18 and later.
struct Config {
  size_t size;
  unsigned int magic;
  unsigned int version;
  int blocking;
  int cgaClusterSize;
  int minCTAs;
  int maxCTAs;
  const char* netName;
  int splitShare;
  int trafficClass;
  const char* commName;
  int collnetEnable;
  int CTAPolicy;
  int shrinkShare;
  int nvlsCTAs;
  int nChannelsPerNetPeer;
  int nvlinkCentricSched;
};
static_assert(sizeof(Config) == 80, "ncclConfig_t of NCCL 2.28 is 80 bytes");

// NCCL_CONFIG_INITIALIZER for a library of version `version` (every user field undefined).
inline Config DefaultConfig(int version) {
  Config config;
  config.size = sizeof(Config);
  config.magic = kConfigMagic;
  config.version = static_cast<unsigned int>(version);
  config.blocking = kConfigUndefInt;
  config.cgaClusterSize = kConfigUndefInt;
  config.minCTAs = kConfigUndefInt;
  config.maxCTAs = kConfigUndefInt;
  config.netName = nullptr;
  config.splitShare = kConfigUndefInt;
  config.trafficClass = kConfigUndefInt;
  config.commName = nullptr;
  config.collnetEnable = kConfigUndefInt;
  config.CTAPolicy = kConfigUndefInt;
  config.shrinkShare = kConfigUndefInt;
  config.nvlsCTAs = kConfigUndefInt;
  config.nChannelsPerNetPeer = kConfigUndefInt;
  config.nvlinkCentricSched = kConfigUndefInt;
  return config;
}

// cudaError_t (0 is cudaSuccess), cudaStream_t and cudaMemcpyKind values used here.
using CudaError = int;
using CudaStream = void*;
inline constexpr int kCudaMemcpyHostToDevice = 1;
inline constexpr int kCudaMemcpyDeviceToHost = 2;
inline constexpr unsigned int kCudaStreamNonBlocking = 0x01;

// The entry points, resolved by NcclLibrary. Names and signatures are NCCL's and CUDA's.
struct NcclFunctions {
  Result (*GetVersion)(int* version) = nullptr;
  Result (*GetUniqueId)(UniqueId* id) = nullptr;
  Result (*CommInitRankConfig)(CommHandle* comm, int nranks, UniqueId id, int rank,
                               Config* config) = nullptr;
  Result (*CommSplit)(CommHandle comm, int color, int key, CommHandle* newcomm,
                      Config* config) = nullptr;
  // Optional: null where NCCL is older than 2.27.3 (NcclLibrary::supports_shrink()).
  Result (*CommShrink)(CommHandle comm, int* exclude_ranks, int exclude_count, CommHandle* newcomm,
                       Config* config, int shrink_flags) = nullptr;
  Result (*CommFinalize)(CommHandle comm) = nullptr;
  Result (*CommDestroy)(CommHandle comm) = nullptr;
  Result (*CommAbort)(CommHandle comm) = nullptr;
  Result (*CommGetAsyncError)(CommHandle comm, Result* async_error) = nullptr;
  Result (*CommCount)(CommHandle comm, int* count) = nullptr;
  Result (*CommUserRank)(CommHandle comm, int* rank) = nullptr;
  Result (*AllReduce)(const void* sendbuff, void* recvbuff, size_t count, int datatype, int op,
                      CommHandle comm, CudaStream stream) = nullptr;
  Result (*GroupStart)() = nullptr;
  Result (*GroupEnd)() = nullptr;
  const char* (*GetErrorString)(Result result) = nullptr;
  const char* (*GetLastError)(CommHandle comm) = nullptr;
};

struct CudaFunctions {
  CudaError (*GetDeviceCount)(int* count) = nullptr;
  CudaError (*SetDevice)(int device) = nullptr;
  CudaError (*Malloc)(void** pointer, size_t bytes) = nullptr;
  CudaError (*Free)(void* pointer) = nullptr;
  CudaError (*Memcpy)(void* dst, const void* src, size_t bytes, int kind) = nullptr;
  CudaError (*StreamCreateWithFlags)(CudaStream* stream, unsigned int flags) = nullptr;
  CudaError (*StreamSynchronize)(CudaStream stream) = nullptr;
  CudaError (*StreamDestroy)(CudaStream stream) = nullptr;
  const char* (*GetErrorString)(CudaError error) = nullptr;
  CudaError (*RuntimeGetVersion)(int* version) = nullptr;
  CudaError (*DriverGetVersion)(int* version) = nullptr;
};

}  // namespace splitd::nccl

#endif  // SPLITD_WORKER_NCCL_NCCL_API_H_
