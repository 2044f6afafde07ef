#include "worker/nccl/nccl_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace splitd::nccl {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Path of a fake library built beside this test (a `data` dependency) in the runfiles tree.
std::string Fake(const std::string& name) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "splitd", "/worker/nccl/",
                      name);
}

LibraryOptions Options(const std::string& nccl, const std::string& cudart) {
  LibraryOptions options;
  options.nccl_path = Fake(nccl);
  options.cudart_paths = {Fake(cudart)};
  return options;
}

TEST(NcclLibraryTest, LoadsFakeNccl228WithTwoDevices) {
  const LibraryOptions options = Options("libfake_nccl_2_28.so", "libfake_cudart.so");
  absl::StatusOr<std::shared_ptr<const NcclLibrary>> library = NcclLibrary::Load(options);
  ASSERT_THAT(library, IsOk());
  const NcclLibrary& nccl = **library;
  EXPECT_EQ(nccl.version(), 22809);
  EXPECT_EQ(nccl.version_string(), "2.28.9");
  EXPECT_EQ(nccl.device_count(), 2);
  EXPECT_TRUE(nccl.supports_split());
  EXPECT_TRUE(nccl.supports_shrink());
  EXPECT_EQ(nccl.nccl_path(), options.nccl_path);
  EXPECT_EQ(nccl.cudart_path(), options.cudart_paths[0]);

  // Every entry point is resolved, and calls reach the fake.
  const NcclFunctions& n = nccl.nccl();
  for (const void* function :
       {reinterpret_cast<const void*>(n.GetVersion), reinterpret_cast<const void*>(n.GetUniqueId),
        reinterpret_cast<const void*>(n.CommInitRankConfig),
        reinterpret_cast<const void*>(n.CommSplit), reinterpret_cast<const void*>(n.CommFinalize),
        reinterpret_cast<const void*>(n.CommDestroy), reinterpret_cast<const void*>(n.CommAbort),
        reinterpret_cast<const void*>(n.CommGetAsyncError),
        reinterpret_cast<const void*>(n.CommCount), reinterpret_cast<const void*>(n.CommUserRank),
        reinterpret_cast<const void*>(n.AllReduce), reinterpret_cast<const void*>(n.GroupStart),
        reinterpret_cast<const void*>(n.GroupEnd), reinterpret_cast<const void*>(n.GetErrorString),
        reinterpret_cast<const void*>(n.GetLastError)}) {
    EXPECT_NE(function, nullptr);
  }
  const CudaFunctions& c = nccl.cuda();
  for (const void* function :
       {reinterpret_cast<const void*>(c.GetDeviceCount), reinterpret_cast<const void*>(c.SetDevice),
        reinterpret_cast<const void*>(c.Malloc), reinterpret_cast<const void*>(c.Free),
        reinterpret_cast<const void*>(c.Memcpy),
        reinterpret_cast<const void*>(c.StreamCreateWithFlags),
        reinterpret_cast<const void*>(c.StreamSynchronize),
        reinterpret_cast<const void*>(c.StreamDestroy),
        reinterpret_cast<const void*>(c.GetErrorString),
        reinterpret_cast<const void*>(c.RuntimeGetVersion),
        reinterpret_cast<const void*>(c.DriverGetVersion)}) {
    EXPECT_NE(function, nullptr);
  }
  UniqueId id;
  ASSERT_EQ(n.GetUniqueId(&id), kSuccess);
  EXPECT_EQ(id.internal[127], 127);
  int runtime_version = 0;
  ASSERT_EQ(c.RuntimeGetVersion(&runtime_version), 0);
  EXPECT_EQ(runtime_version, 13000);
}

TEST(NcclLibraryTest, DescribesNcclResultsWithNameTextAndLastError) {
  auto library = NcclLibrary::Load(Options("libfake_nccl_2_28.so", "libfake_cudart.so"));
  ASSERT_THAT(library, IsOk());
  EXPECT_EQ((*library)->DescribeNccl(kInvalidArgument),
            "ncclInvalidArgument (4): invalid argument (run with NCCL_DEBUG=WARN for details); "
            "last error: fake NCCL: last error");
  EXPECT_THAT((*library)->DescribeNccl(42), StartsWith("ncclResult (42): unknown result code"));
}

TEST(NcclLibraryTest, DescribesCudaErrorsWithNumberAndText) {
  auto library = NcclLibrary::Load(Options("libfake_nccl_2_28.so", "libfake_cudart.so"));
  ASSERT_THAT(library, IsOk());
  EXPECT_EQ((*library)->DescribeCuda(100), "cudaError 100: no CUDA-capable device is detected");
}

TEST(NcclLibraryTest, OldNcclWithoutSplitLoadsButDoesNotSupportSplit) {
  auto library = NcclLibrary::Load(Options("libfake_nccl_2_17.so", "libfake_cudart.so"));
  ASSERT_THAT(library, IsOk());
  EXPECT_EQ((*library)->version(), 21705);
  EXPECT_EQ((*library)->version_string(), "2.17.5");
  EXPECT_FALSE((*library)->supports_split());
  EXPECT_FALSE((*library)->supports_shrink());
  EXPECT_EQ((*library)->nccl().CommSplit, nullptr);
}

TEST(NcclLibraryTest, ShrinkIsOptionalAndFollowsTheSymbol) {
  auto with = NcclLibrary::Load(Options("libfake_nccl_2_28.so", "libfake_cudart.so"));
  ASSERT_THAT(with, IsOk());
  EXPECT_NE((*with)->nccl().CommShrink, nullptr);

  // NCCL 2.26 has no ncclCommShrink: the library loads, without shrink.
  auto without = NcclLibrary::Load(Options("libfake_nccl_works_2_26.so", "libfake_cudart.so"));
  ASSERT_THAT(without, IsOk());
  EXPECT_EQ((*without)->version_string(), "2.26.5");
  EXPECT_TRUE((*without)->supports_split());
  EXPECT_FALSE((*without)->supports_shrink());
  EXPECT_EQ((*without)->nccl().CommShrink, nullptr);
}

TEST(NcclLibraryTest, MissingLibraryIsUnavailable) {
  LibraryOptions options = Options("libfake_nccl_2_28.so", "libfake_cudart.so");
  options.nccl_path = Fake("libdoes_not_exist.so");
  EXPECT_THAT(NcclLibrary::Load(options),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(StartsWith("backend unavailable: cannot load NCCL library "),
                             HasSubstr("libdoes_not_exist.so"))));
}

TEST(NcclLibraryTest, FileThatIsNoLibraryIsUnavailable) {
  LibraryOptions options = Options("libfake_nccl_2_28.so", "libfake_cudart.so");
  options.nccl_path = Fake("testdata/not_a_library.so");
  EXPECT_THAT(NcclLibrary::Load(options),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(StartsWith("backend unavailable: cannot load NCCL library "),
                             HasSubstr("not_a_library.so"))));
}

TEST(NcclLibraryTest, ForeignLibraryIsUnavailable) {
  EXPECT_THAT(NcclLibrary::Load(Options("libfake_foreign.so", "libfake_cudart.so")),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(StartsWith("backend unavailable: "),
                             HasSubstr("libfake_foreign.so has no symbol ncclGetVersion"))));
}

TEST(NcclLibraryTest, MissingSymbolIsNamed) {
  EXPECT_THAT(
      NcclLibrary::Load(Options("libfake_nccl_no_allreduce.so", "libfake_cudart.so")),
      StatusIs(absl::StatusCode::kUnavailable,
               AllOf(StartsWith("backend unavailable: "),
                     HasSubstr("libfake_nccl_no_allreduce.so has no symbol ncclAllReduce"))));
}

TEST(NcclLibraryTest, MissingSplitInNcclThatShouldHaveItIsUnavailable) {
  EXPECT_THAT(NcclLibrary::Load(Options("libfake_nccl_no_split.so", "libfake_cudart.so")),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(StartsWith("backend unavailable: "), HasSubstr("NCCL 2.28.9"),
                             HasSubstr("has no symbol ncclCommSplit"))));
}

TEST(NcclLibraryTest, TooOldNcclIsUnavailable) {
  const LibraryOptions options = Options("libfake_nccl_old.so", "libfake_cudart.so");
  EXPECT_THAT(NcclLibrary::Load(options),
              StatusIs(absl::StatusCode::kUnavailable,
                       absl::StrCat("backend unavailable: NCCL 2.12.3 at ", options.nccl_path,
                                    " is too old (need 2.14.3 or later)")));
}

TEST(NcclLibraryTest, MissingCudaRuntimeIsUnavailable) {
  LibraryOptions options = Options("libfake_nccl_2_28.so", "libfake_cudart.so");
  options.cudart_paths = {Fake("libcudart_missing_a.so"), Fake("libcudart_missing_b.so")};
  EXPECT_THAT(
      NcclLibrary::Load(options),
      StatusIs(absl::StatusCode::kUnavailable,
               AllOf(StartsWith("backend unavailable: cannot load the CUDA runtime"),
                     HasSubstr("libcudart_missing_a.so"), HasSubstr("libcudart_missing_b.so"))));
}

TEST(NcclLibraryTest, FirstCudaRuntimeThatLoadsIsUsed) {
  LibraryOptions options = Options("libfake_nccl_2_28.so", "libfake_cudart.so");
  options.cudart_paths = {Fake("libcudart_missing.so"), Fake("libfake_cudart.so"),
                          Fake("libfake_cudart_nodev.so")};
  auto library = NcclLibrary::Load(options);
  ASSERT_THAT(library, IsOk());
  EXPECT_EQ((*library)->cudart_path(), Fake("libfake_cudart.so"));
}

TEST(NcclLibraryTest, CudaRuntimeWithoutSymbolsIsUnavailable) {
  EXPECT_THAT(NcclLibrary::Load(Options("libfake_nccl_2_28.so", "libfake_foreign.so")),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(StartsWith("backend unavailable: "),
                             HasSubstr("libfake_foreign.so has no symbol cudaGetDeviceCount"))));
}

TEST(NcclLibraryTest, NoCudaDeviceIsUnavailable) {
  EXPECT_THAT(
      NcclLibrary::Load(Options("libfake_nccl_2_28.so", "libfake_cudart_nodev.so")),
      StatusIs(absl::StatusCode::kUnavailable, StartsWith("backend unavailable: no CUDA device")));
}

TEST(NcclLibraryTest, CudaErrorCarriesItsText) {
  EXPECT_THAT(
      NcclLibrary::Load(Options("libfake_nccl_2_28.so", "libfake_cudart_error.so")),
      StatusIs(absl::StatusCode::kUnavailable,
               AllOf(StartsWith("backend unavailable: CUDA: CUDA driver version is insufficient "
                                "for CUDA runtime version (cudaError 35)"),
                     HasSubstr("libfake_cudart_error.so"))));
}

// The machine's own NCCL and CUDA runtime, where they load (CI carries CUDA 13 with NCCL 2.28.9
// but no GPU): Load must fail cleanly on CUDA, or succeed on a machine with a device.
TEST(NcclLibraryTest, SystemLibraryLoadsOrFailsCleanly) {
  void* probe = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (probe == nullptr) GTEST_SKIP() << "libnccl.so.2 does not load here: " << dlerror();
  dlclose(probe);

  const LibraryOptions options;  // The defaults the agent uses.
  absl::StatusOr<std::shared_ptr<const NcclLibrary>> library = NcclLibrary::Load(options);
  if (library.ok()) {
    EXPECT_GE((*library)->version(), kMinConfigVersion);
    EXPECT_GE((*library)->device_count(), 1);
    return;
  }
  EXPECT_THAT(library, StatusIs(absl::StatusCode::kUnavailable,
                                AllOf(StartsWith("backend unavailable: "), HasSubstr("CUDA"))));
  std::cout << "system library: " << library.status().message() << "\n";
}

TEST(NcclLibraryTest, TooOldNcclOfOldVersionEncodingIsSpelledRight) {
  // NCCL 2.8 and older report X*1000+Y*100+Z: 2804 is 2.8.4.
  EXPECT_THAT(NcclLibrary::Load(Options("libfake_nccl_2_8.so", "libfake_cudart.so")),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(StartsWith("backend unavailable: NCCL 2.8.4 at "),
                             HasSubstr("is too old (need 2.14.3 or later)"))));
}

}  // namespace
}  // namespace splitd::nccl
