// NCCL ABI conformance check: worker/nccl/nccl_api.h declares by hand the part of NCCL's and the
// CUDA runtime's ABI the agent uses (the build needs neither library nor header). This file puts
// those declarations beside the real nccl.h and cuda_runtime.h, and any difference in a size, an
// offset, a constant or a prototype is a compile error. The run then compares our
// DefaultConfig() with NCCL_CONFIG_INITIALIZER byte for byte and prints PASS.
//
// Bazel defines //worker/nccl:nccl_abi_check_test only where @nccl_headers found nccl.h
// (bazel/nccl_headers.bzl). Without Bazel, from the repository root (for example on a GPU
// machine with nccl.h in /usr/include and the CUDA headers in /usr/local/cuda/include):
//
// clang-format off
//   g++ -std=c++17 -Wall -Wextra -Werror -I. -I/usr/include -isystem /usr/local/cuda/include worker/nccl/nccl_abi_check_test.cc -o /tmp/nccl_abi_check && /tmp/nccl_abi_check
// clang-format on
//
// Nothing is linked: NCCL's and CUDA's functions are only named in unevaluated contexts.
//
// The checks follow the header's version: the full ncclConfig_t layout needs nccl.h 2.28 or later
// (the layout nccl_api.h declares; later releases only append fields), ncclCommSplit 2.18.1,
// ncclCommShrink 2.27.3.

#include <nccl.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include "worker/nccl/nccl_api.h"

#if defined(CUDA_API_PER_THREAD_DEFAULT_STREAM)
#error "per-thread default stream renames cudaMemcpy and others; dlsym resolves the plain names"
#endif

namespace splitd::nccl {
namespace {

// ---- Types whose layout is checked here, so that a pointer to ours may stand for a pointer to
// theirs in a prototype.

template <typename Ours, typename Real>
struct Corresponds : std::false_type {};
// typedef struct ncclComm* ncclComm_t: both opaque.
template <>
struct Corresponds<Comm, std::remove_pointer_t<ncclComm_t>> : std::true_type {};
template <>
struct Corresponds<UniqueId, ncclUniqueId> : std::true_type {};
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 3)
template <>
struct Corresponds<Config, ncclConfig_t> : std::true_type {};
#endif
// typedef struct CUstream_st* cudaStream_t: ours is void*.
template <>
struct Corresponds<void, std::remove_pointer_t<cudaStream_t>> : std::true_type {};

// Whether a parameter or return value of type `Ours` is passed exactly like one of type `Real`.
template <typename Ours, typename Real>
constexpr bool AbiSame() {
  if constexpr (std::is_same_v<Ours, Real>) {
    return true;
  } else if constexpr (std::is_enum_v<Real>) {
    // C enums (ncclResult_t, ncclDataType_t, cudaError_t, cudaMemcpyKind) are declared as int.
    return std::is_same_v<Ours, int> && sizeof(Real) == sizeof(int) &&
           alignof(Real) == alignof(int) && std::is_integral_v<std::underlying_type_t<Real>>;
  } else if constexpr (std::is_pointer_v<Ours> && std::is_pointer_v<Real>) {
    using O = std::remove_pointer_t<Ours>;
    using R = std::remove_pointer_t<Real>;
    return std::is_const_v<O> == std::is_const_v<R> &&
           std::is_volatile_v<O> == std::is_volatile_v<R> &&
           AbiSame<std::remove_cv_t<O>, std::remove_cv_t<R>>();
  } else {
    return Corresponds<Ours, Real>::value;
  }
}

template <typename Ours, typename Real>
struct SameSignature : std::false_type {};
template <typename R1, typename... A1, typename R2, typename... A2>
struct SameSignature<R1 (*)(A1...), R2 (*)(A2...)> {
  static constexpr bool Check() {
    if constexpr (sizeof...(A1) != sizeof...(A2)) {
      return false;
    } else {
      return AbiSame<R1, R2>() && (AbiSame<A1, A2>() && ... && true);
    }
  }
  static constexpr bool value = Check();
};

// The checker itself must tell differences apart.
static_assert(SameSignature<int (*)(int*), ncclResult_t (*)(int*)>::value);
static_assert(!SameSignature<int (*)(int*), ncclResult_t (*)(int*, int)>::value);
static_assert(!SameSignature<int (*)(int*), ncclResult_t (*)(long*)>::value);
static_assert(!SameSignature<int (*)(const void*), ncclResult_t (*)(void*)>::value);
static_assert(!SameSignature<int (*)(CommHandle*), ncclResult_t (*)(ncclComm_t)>::value);
static_assert(!SameSignature<int (*)(UniqueId*), ncclResult_t (*)(ncclUniqueId)>::value);
static_assert(!SameSignature<const char* (*)(int), ncclResult_t (*)(int)>::value);

// ---- ncclUniqueId

static_assert(NCCL_UNIQUE_ID_BYTES == kUniqueIdBytes);
static_assert(sizeof(ncclUniqueId) == 128 && sizeof(UniqueId) == 128);
static_assert(sizeof(UniqueId) == sizeof(ncclUniqueId));
static_assert(alignof(UniqueId) == alignof(ncclUniqueId));
static_assert(std::is_same_v<decltype(UniqueId::internal), decltype(ncclUniqueId::internal)>);
static_assert(offsetof(UniqueId, internal) == offsetof(ncclUniqueId, internal));
static_assert(std::is_trivially_copyable_v<UniqueId> && std::is_standard_layout_v<UniqueId>);

// ---- ncclConfig_t

#define SPLITD_CHECK_FIELD(field)                                                       \
  static_assert(offsetof(Config, field) == offsetof(ncclConfig_t, field),               \
                "offset of ncclConfig_t::" #field);                                     \
  static_assert(std::is_same_v<decltype(Config::field), decltype(ncclConfig_t::field)>, \
                "type of ncclConfig_t::" #field)

#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 3)
SPLITD_CHECK_FIELD(size);
SPLITD_CHECK_FIELD(magic);
SPLITD_CHECK_FIELD(version);
SPLITD_CHECK_FIELD(blocking);
static_assert(alignof(Config) == alignof(ncclConfig_t));
#endif

#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 28, 0)
#define SPLITD_CHECKED_CONFIG_LAYOUT "full (2.28)"
SPLITD_CHECK_FIELD(cgaClusterSize);
SPLITD_CHECK_FIELD(minCTAs);
SPLITD_CHECK_FIELD(maxCTAs);
SPLITD_CHECK_FIELD(netName);
SPLITD_CHECK_FIELD(splitShare);
SPLITD_CHECK_FIELD(trafficClass);
SPLITD_CHECK_FIELD(commName);
SPLITD_CHECK_FIELD(collnetEnable);
SPLITD_CHECK_FIELD(CTAPolicy);
SPLITD_CHECK_FIELD(shrinkShare);
SPLITD_CHECK_FIELD(nvlsCTAs);
SPLITD_CHECK_FIELD(nChannelsPerNetPeer);
SPLITD_CHECK_FIELD(nvlinkCentricSched);
#if NCCL_VERSION_CODE < NCCL_VERSION(2, 29, 0)
static_assert(sizeof(Config) == sizeof(ncclConfig_t), "ncclConfig_t of NCCL 2.28 is 80 bytes");
#else
// Later releases append fields; a 2.28 struct (size = 80) stays valid for them.
static_assert(sizeof(Config) <= sizeof(ncclConfig_t));
#endif
#elif NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 3)
#define SPLITD_CHECKED_CONFIG_LAYOUT "common prefix only (header older than 2.28)"
static_assert(sizeof(Config) >= sizeof(ncclConfig_t));
#else
#define SPLITD_CHECKED_CONFIG_LAYOUT "none (header older than 2.14.3)"
#endif

#undef SPLITD_CHECK_FIELD

// ---- Constants

static_assert(kSuccess == static_cast<int>(ncclSuccess));
static_assert(kUnhandledCudaError == static_cast<int>(ncclUnhandledCudaError));
static_assert(kSystemError == static_cast<int>(ncclSystemError));
static_assert(kInternalError == static_cast<int>(ncclInternalError));
static_assert(kInvalidArgument == static_cast<int>(ncclInvalidArgument));
static_assert(kInvalidUsage == static_cast<int>(ncclInvalidUsage));
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
static_assert(kRemoteError == static_cast<int>(ncclRemoteError));
#endif
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 3)
static_assert(kInProgress == static_cast<int>(ncclInProgress));
#endif
static_assert(kFloat32 == static_cast<int>(ncclFloat32));
static_assert(kFloat32 == static_cast<int>(ncclFloat));
static_assert(kSum == static_cast<int>(ncclSum));
static_assert(sizeof(ncclResult_t) == sizeof(Result));
static_assert(sizeof(ncclDataType_t) == sizeof(int) && sizeof(ncclRedOp_t) == sizeof(int));
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 18, 1)
static_assert(kSplitNoColor == NCCL_SPLIT_NOCOLOR);
#endif
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 27, 3)
static_assert(kShrinkDefault == NCCL_SHRINK_DEFAULT);
static_assert(kShrinkAbort == NCCL_SHRINK_ABORT);
#endif
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 3)
static_assert(kConfigUndefInt == NCCL_CONFIG_UNDEF_INT);
constexpr ncclConfig_t kRealDefaultConfig = NCCL_CONFIG_INITIALIZER;
static_assert(kRealDefaultConfig.magic == kConfigMagic);
static_assert(kRealDefaultConfig.size == sizeof(ncclConfig_t));
static_assert(kRealDefaultConfig.version == static_cast<unsigned int>(NCCL_VERSION_CODE));
#endif

// NCCL_VERSION against Version(), on both sides of the 2.9 change of encoding.
static_assert(NCCL_VERSION(2, 28, 9) == Version(2, 28, 9) && Version(2, 28, 9) == 22809);
static_assert(NCCL_VERSION(2, 28, 3) == Version(2, 28, 3));
static_assert(NCCL_VERSION(2, 18, 1) == kMinSplitVersion);
static_assert(NCCL_VERSION(2, 27, 3) == kMinShrinkVersion);
static_assert(NCCL_VERSION(2, 14, 3) == kMinConfigVersion);
static_assert(NCCL_VERSION(2, 9, 6) == Version(2, 9, 6));
static_assert(NCCL_VERSION(2, 8, 4) == Version(2, 8, 4) && Version(2, 8, 4) == 2804);
static_assert(NCCL_VERSION(3, 0, 0) == Version(3, 0, 0));
static_assert(NCCL_VERSION(NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH) ==
              Version(NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH));

// CUDA runtime.
static_assert(static_cast<int>(cudaSuccess) == 0);
static_assert(sizeof(cudaError_t) == sizeof(CudaError));
static_assert(sizeof(cudaStream_t) == sizeof(CudaStream));
static_assert(kCudaMemcpyHostToDevice == static_cast<int>(cudaMemcpyHostToDevice));
static_assert(kCudaMemcpyDeviceToHost == static_cast<int>(cudaMemcpyDeviceToHost));
static_assert(kCudaStreamNonBlocking == cudaStreamNonBlocking);

// ---- Prototypes: every member of NcclFunctions and CudaFunctions against the real declaration.

#define SPLITD_CHECK_NCCL(member, function)                                                 \
  static_assert(SameSignature<decltype(NcclFunctions::member), decltype(&function)>::value, \
                "NcclFunctions::" #member " differs from " #function)

SPLITD_CHECK_NCCL(GetVersion, ncclGetVersion);
SPLITD_CHECK_NCCL(GetUniqueId, ncclGetUniqueId);
SPLITD_CHECK_NCCL(CommDestroy, ncclCommDestroy);
SPLITD_CHECK_NCCL(CommAbort, ncclCommAbort);
SPLITD_CHECK_NCCL(CommGetAsyncError, ncclCommGetAsyncError);
SPLITD_CHECK_NCCL(CommCount, ncclCommCount);
SPLITD_CHECK_NCCL(CommUserRank, ncclCommUserRank);
SPLITD_CHECK_NCCL(AllReduce, ncclAllReduce);
SPLITD_CHECK_NCCL(GroupStart, ncclGroupStart);
SPLITD_CHECK_NCCL(GroupEnd, ncclGroupEnd);
SPLITD_CHECK_NCCL(GetErrorString, ncclGetErrorString);
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 4)
SPLITD_CHECK_NCCL(GetLastError, ncclGetLastError);
#endif
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 3)
SPLITD_CHECK_NCCL(CommInitRankConfig, ncclCommInitRankConfig);
SPLITD_CHECK_NCCL(CommFinalize, ncclCommFinalize);
#endif
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 18, 1)
SPLITD_CHECK_NCCL(CommSplit, ncclCommSplit);
#endif
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 27, 3)
SPLITD_CHECK_NCCL(CommShrink, ncclCommShrink);
#endif

#undef SPLITD_CHECK_NCCL

#define SPLITD_CHECK_CUDA(member, function)                                                 \
  static_assert(SameSignature<decltype(CudaFunctions::member), decltype(&function)>::value, \
                "CudaFunctions::" #member " differs from " #function)

SPLITD_CHECK_CUDA(GetDeviceCount, cudaGetDeviceCount);
SPLITD_CHECK_CUDA(SetDevice, cudaSetDevice);
SPLITD_CHECK_CUDA(Free, cudaFree);
SPLITD_CHECK_CUDA(Memcpy, cudaMemcpy);
SPLITD_CHECK_CUDA(StreamCreateWithFlags, cudaStreamCreateWithFlags);
SPLITD_CHECK_CUDA(StreamSynchronize, cudaStreamSynchronize);
SPLITD_CHECK_CUDA(StreamDestroy, cudaStreamDestroy);
SPLITD_CHECK_CUDA(GetErrorString, cudaGetErrorString);
SPLITD_CHECK_CUDA(RuntimeGetVersion, cudaRuntimeGetVersion);
SPLITD_CHECK_CUDA(DriverGetVersion, cudaDriverGetVersion);

#undef SPLITD_CHECK_CUDA

// cuda_runtime.h overloads cudaMalloc with templates for typed pointers: the static_cast picks
// the C declaration and compiles only if one with exactly this type exists.
static_assert(
    SameSignature<decltype(CudaFunctions::Malloc),
                  decltype(static_cast<cudaError_t (*)(void**, size_t)>(&cudaMalloc))>::value,
    "CudaFunctions::Malloc differs from cudaMalloc");

}  // namespace
}  // namespace splitd::nccl

int main() {
  using splitd::nccl::Config;
  int failures = 0;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 3)
  // Our NCCL_CONFIG_INITIALIZER for this header's version against the header's own.
  const ncclConfig_t real = NCCL_CONFIG_INITIALIZER;
  const Config ours = splitd::nccl::DefaultConfig(NCCL_VERSION_CODE);
  const size_t common = sizeof(ours) < sizeof(real) ? sizeof(ours) : sizeof(real);
  if (std::memcmp(&ours, &real, common) != 0) {
    std::printf(
        "FAIL: DefaultConfig(%d) differs from NCCL_CONFIG_INITIALIZER in its first %zu "
        "bytes\n",
        NCCL_VERSION_CODE, common);
    ++failures;
  }
#endif
  std::printf("nccl.h NCCL_VERSION_CODE %d (%d.%d.%d), CUDART_VERSION %d\n", NCCL_VERSION_CODE,
              NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH, CUDART_VERSION);
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 3)
  std::printf("sizeof(ncclConfig_t) %zu, sizeof(Config) %zu; layout checked: %s\n",
              sizeof(ncclConfig_t), sizeof(Config), SPLITD_CHECKED_CONFIG_LAYOUT);
#endif
  std::printf("%s\n", failures == 0 ? "PASS" : "FAIL");
  return failures == 0 ? 0 : 1;
}
