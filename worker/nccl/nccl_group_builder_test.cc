#include "worker/nccl/nccl_group_builder.h"

#include <dlfcn.h>

#include <climits>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/in_memory_rendezvous.h"
#include "worker/group_builder.h"
#include "worker/nccl/color_key.h"
#include "worker/nccl/nccl_library.h"

namespace splitd::worker {
namespace {

using ::splitd::testing::InMemoryRendezvous;
using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kNoColor = -1;

GroupAssignment Group(std::string kind, int kind_index, int64_t group_index,
                      std::vector<int32_t> members, int local_rank) {
  GroupAssignment group;
  group.kind = std::move(kind);
  group.kind_index = kind_index;
  group.group_index = group_index;
  group.members = std::move(members);
  group.local_rank = local_rank;
  return group;
}

// Rank 5 of world 8 laid out as arange(8).reshape(DP=2, PP=2, TP=2): rank = dp*4 + pp*2 + tp,
// so rank 5 is dp 1, pp 0, tp 1. Group indexes count the other coordinates in the same order.
WorldSpec Tp2Pp2Dp2Rank5() {
  WorldSpec spec;
  spec.rank = 5;
  spec.world_size = 8;
  spec.method = "split";
  spec.kinds = {{0, "tp"}, {1, "pp"}, {2, "dp"}};
  spec.groups = {Group("tp", 0, 2, {4, 5}, 1),   // dp 1, pp 0
                 Group("pp", 1, 3, {5, 7}, 0),   // dp 1, tp 1
                 Group("dp", 2, 1, {1, 5}, 1)};  // pp 0, tp 1
  return spec;
}

MATCHER_P4(IsColorKey, kind_index, kind, color, key, "") {
  *result_listener << "is (" << arg.kind_index << ", " << arg.kind << ", " << arg.color << ", "
                   << arg.key << ")";
  return arg.kind_index == kind_index && arg.kind == kind && arg.color == color && arg.key == key;
}

TEST(SplitColorKeysTest, Tp2Pp2Dp2World8Rank5) {
  absl::StatusOr<std::vector<ColorKey>> keys = SplitColorKeys(Tp2Pp2Dp2Rank5());
  ASSERT_THAT(keys, IsOk());
  EXPECT_THAT(*keys, ElementsAre(IsColorKey(0, "tp", 2, 1), IsColorKey(1, "pp", 3, 0),
                                 IsColorKey(2, "dp", 1, 1)));
}

TEST(SplitColorKeysTest, KindsWithoutAGroupGetNoColorAndKeyZero) {
  WorldSpec spec;
  spec.rank = 3;
  spec.world_size = 4;
  spec.method = "split";
  spec.kinds = {{0, "tp"}, {1, "pp"}, {2, "ep"}, {3, "dp"}};
  spec.groups = {Group("tp", 0, 1, {2, 3}, 1), Group("dp", 3, 0, {1, 3}, 1)};
  absl::StatusOr<std::vector<ColorKey>> keys = SplitColorKeys(spec);
  ASSERT_THAT(keys, IsOk());
  EXPECT_THAT(*keys, ElementsAre(IsColorKey(0, "tp", 1, 1), IsColorKey(1, "pp", kNoColor, 0),
                                 IsColorKey(2, "ep", kNoColor, 0), IsColorKey(3, "dp", 0, 1)));
}

TEST(SplitColorKeysTest, RankInNoGroupSplitsEveryKindWithNoColor) {
  WorldSpec spec;
  spec.rank = 0;
  spec.world_size = 2;
  spec.method = "split";
  spec.kinds = {{0, "tp"}, {1, "dp"}};
  absl::StatusOr<std::vector<ColorKey>> keys = SplitColorKeys(spec);
  ASSERT_THAT(keys, IsOk());
  EXPECT_THAT(*keys,
              ElementsAre(IsColorKey(0, "tp", kNoColor, 0), IsColorKey(1, "dp", kNoColor, 0)));
}

TEST(SplitColorKeysTest, EveryKindInKindIndexOrderWhateverTheListOrder) {
  WorldSpec spec = Tp2Pp2Dp2Rank5();
  spec.kinds = {{2, "dp"}, {0, "tp"}, {1, "pp"}};
  spec.groups = {spec.groups[2], spec.groups[0], spec.groups[1]};
  absl::StatusOr<std::vector<ColorKey>> keys = SplitColorKeys(spec);
  ASSERT_THAT(keys, IsOk());
  EXPECT_THAT(*keys, ElementsAre(IsColorKey(0, "tp", 2, 1), IsColorKey(1, "pp", 3, 0),
                                 IsColorKey(2, "dp", 1, 1)));
}

TEST(SplitColorKeysTest, RejectsGroupWhoseKindIsNotListed) {
  WorldSpec spec = Tp2Pp2Dp2Rank5();
  spec.kinds.pop_back();  // no dp
  EXPECT_THAT(SplitColorKeys(spec),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("groups[2] (dp/1)"), HasSubstr("not in kinds"))));
}

TEST(SplitColorKeysTest, RejectsGroupWhoseKindNameDiffers) {
  WorldSpec spec = Tp2Pp2Dp2Rank5();
  spec.kinds[1].second = "ep";
  EXPECT_THAT(SplitColorKeys(spec),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("groups[1] (pp/3)"), HasSubstr("\"ep\""))));
}

TEST(SplitColorKeysTest, RejectsRepeatedKindIndex) {
  WorldSpec spec = Tp2Pp2Dp2Rank5();
  spec.kinds.emplace_back(1, "ep");
  EXPECT_THAT(SplitColorKeys(spec), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("kinds[3] (ep) repeats kind_index 1")));
}

TEST(SplitColorKeysTest, RejectsGroupIndexBeyondAColor) {
  WorldSpec spec = Tp2Pp2Dp2Rank5();
  spec.groups[0].group_index = int64_t{INT_MAX} + 1;
  EXPECT_THAT(SplitColorKeys(spec),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("group_index")));
}

TEST(KindOrderTest, SortsByKindIndexStably) {
  std::vector<GroupAssignment> groups = {Group("dp", 2, 0, {0}, 0), Group("tp", 0, 0, {0}, 0),
                                         Group("pp", 1, 0, {0}, 0)};
  EXPECT_THAT(KindOrder(groups), ElementsAre(1, 2, 0));
}

TEST(CheckNcclWorldTest, AcceptsTheExample) {
  EXPECT_THAT(CheckNcclWorld(Tp2Pp2Dp2Rank5()), IsOk());
}

TEST(CheckNcclWorldTest, RejectsBadFields) {
  struct Case {
    std::string name;
    void (*mutate)(WorldSpec*);
    std::string message;
  };
  const std::vector<Case> cases = {
      {"world_size", [](WorldSpec* s) { s->world_size = 0; }, "world_size must be >= 1, got 0"},
      {"rank high", [](WorldSpec* s) { s->rank = 8; }, "rank must be in [0, 8), got 8"},
      {"rank negative", [](WorldSpec* s) { s->rank = -1; }, "rank must be in [0, 8), got -1"},
      {"timeout", [](WorldSpec* s) { s->timeout = absl::ZeroDuration(); }, "timeout must be"},
      {"device", [](WorldSpec* s) { s->device_index = -1; }, "device_index must be >= 0, got -1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    WorldSpec spec = Tp2Pp2Dp2Rank5();
    c.mutate(&spec);
    EXPECT_THAT(CheckNcclWorld(spec),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  }
}

TEST(CheckNcclGroupsTest, AcceptsTheExampleWithEitherMethod) {
  WorldSpec spec = Tp2Pp2Dp2Rank5();
  EXPECT_THAT(CheckNcclGroups(spec), IsOk());
  spec.method = "init";
  EXPECT_THAT(CheckNcclGroups(spec), IsOk());
}

TEST(CheckNcclGroupsTest, RejectsBadFields) {
  struct Case {
    std::string name;
    void (*mutate)(WorldSpec*);
    std::string message;
  };
  const std::vector<Case> cases = {
      {"method", [](WorldSpec* s) { s->method = "shrink"; },
       "method must be \"split\" or \"init\", got \"shrink\""},
      {"repeated kind", [](WorldSpec* s) { s->groups[1].kind_index = 0; },
       "groups[1] (pp/3).kind_index 0 repeats"},
      {"empty members", [](WorldSpec* s) { s->groups[0].members.clear(); },
       "groups[0] (tp/2).members is empty"},
      {"local rank range", [](WorldSpec* s) { s->groups[2].local_rank = 2; },
       "groups[2] (dp/1).local_rank must be in [0, 2), got 2"},
      {"local rank not this rank", [](WorldSpec* s) { s->groups[0].local_rank = 0; },
       "groups[0] (tp/2).members[0] is 4, not this rank 5"},
      {"member outside",
       [](WorldSpec* s) {
         s->groups[1].members = {5, 8};
       },
       "groups[1] (pp/3).members holds 8, outside the world [0, 8)"},
      {"member twice",
       [](WorldSpec* s) {
         s->groups[2].members = {5, 5};
       },
       "groups[2] (dp/1).members holds 5 twice"},
      {"group index", [](WorldSpec* s) { s->groups[0].group_index = -1; },
       "groups[0] (tp/-1).group_index must be in [0, "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    WorldSpec spec = Tp2Pp2Dp2Rank5();
    c.mutate(&spec);
    EXPECT_THAT(CheckNcclGroups(spec),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  }
}

WorldSpec World(int64_t epoch, int world_size, int rank) {
  WorldSpec spec;
  spec.epoch = epoch;
  spec.world_size = world_size;
  spec.rank = rank;
  spec.method = "split";
  spec.timeout = absl::Seconds(5);
  return spec;
}

TEST(ShrinkExcludedRanksTest, ExcludesTheHeldRanksThatAreNotKept) {
  // Held world of 4, this rank held 2; ranks 1 and 3 leave, so old 2 becomes new rank 1.
  absl::StatusOr<std::vector<int>> excluded = ShrinkExcludedRanks(World(2, 2, 1), 4, 2, {0, 2});
  ASSERT_THAT(excluded, IsOk());
  EXPECT_THAT(*excluded, ElementsAre(1, 3));
  excluded = ShrinkExcludedRanks(World(2, 3, 0), 4, 0, {0, 1, 2});
  ASSERT_THAT(excluded, IsOk());
  EXPECT_THAT(*excluded, ElementsAre(3));
}

TEST(ShrinkExcludedRanksTest, RejectsMappingsThatDoNotFit) {
  struct Case {
    std::string name;
    WorldSpec spec;
    int held_rank;
    std::vector<int32_t> previous_ranks;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"size", World(2, 2, 0), 0, {0}, "one rank per rank of the new world (2), got 1"},
      {"outside", World(2, 2, 0), 0, {0, 4}, "previous_ranks[1] must be in [0, 4), got 4"},
      {"negative", World(2, 2, 1), 1, {-1, 1}, "previous_ranks[0] must be in [0, 4), got -1"},
      {"order", World(2, 2, 0), 2, {2, 1}, "ascending, got 1 after 2"},
      {"repeat", World(2, 2, 0), 1, {1, 1}, "ascending, got 1 after 1"},
      {"not me", World(2, 2, 0), 1, {0, 1}, "previous_ranks[0] is 0, not this rank's held rank 1"},
      {"nothing removed", World(2, 4, 0), 0, {0, 1, 2, 3}, "removes no rank of the held world"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(ShrinkExcludedRanks(c.spec, 4, c.held_rank, c.previous_ranks),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  }
}

TEST(NcclGroupBuilderTest, WithoutALibraryEveryStepIsAPreconditionFailure) {
  std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(nullptr, NcclBuilderOptions());
  EXPECT_EQ(builder->backend(), "cuda:nccl");
  InMemoryRendezvous rendezvous;
  const WorldSpec spec = Tp2Pp2Dp2Rank5();
  EXPECT_THAT(builder->BootstrapWorld(spec, &rendezvous),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not loaded")));
  EXPECT_THAT(builder->FormGroups(spec, &rendezvous),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(builder->Validate(spec), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(builder->CanShrink());
  EXPECT_THAT(builder->ShrinkWorld(spec, {0}, &rendezvous),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not loaded")));
  builder->Release();
  builder->Release();
  builder->Abort();
}

// The loader's fake libraries (worker/nccl/testdata): two "devices", and an NCCL whose init
// fails with ncclUnhandledCudaError, as the real one does on a machine without a GPU.
std::string Fake(const std::string& name) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "splitd", "/worker/nccl/",
                      name);
}

std::shared_ptr<const nccl::NcclLibrary> FakeLibrary() {
  nccl::LibraryOptions options;
  options.nccl_path = Fake("libfake_nccl_2_28.so");
  options.cudart_paths = {Fake("libfake_cudart.so")};
  absl::StatusOr<std::shared_ptr<const nccl::NcclLibrary>> library =
      nccl::NcclLibrary::Load(options);
  EXPECT_THAT(library, IsOk());
  return library.ok() ? *library : nullptr;
}

WorldSpec WorldOfOne() {
  WorldSpec spec;
  spec.rank = 0;
  spec.world_size = 1;
  spec.method = "split";
  spec.kinds = {{0, "tp"}};
  spec.groups = {Group("tp", 0, 0, {0}, 0)};
  spec.timeout = absl::Seconds(5);
  return spec;
}

TEST(NcclGroupBuilderTest, RejectsDeviceIndexBeyondTheVisibleDevices) {
  std::shared_ptr<const nccl::NcclLibrary> library = FakeLibrary();
  ASSERT_NE(library, nullptr);
  std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(library, NcclBuilderOptions());
  InMemoryRendezvous rendezvous;
  WorldSpec spec = WorldOfOne();
  spec.device_index = 2;
  EXPECT_THAT(
      builder->BootstrapWorld(spec, &rendezvous),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("device_index must be in [0, 2)")));
  EXPECT_EQ(rendezvous.total_calls(), 0);
}

TEST(NcclGroupBuilderTest, RejectsABadSpecBeforeTouchingTheDevice) {
  std::shared_ptr<const nccl::NcclLibrary> library = FakeLibrary();
  ASSERT_NE(library, nullptr);
  std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(library, NcclBuilderOptions());
  InMemoryRendezvous rendezvous;
  WorldSpec spec = WorldOfOne();
  spec.rank = 1;
  EXPECT_THAT(builder->BootstrapWorld(spec, &rendezvous),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank must be in")));
  EXPECT_THAT(builder->BootstrapWorld(WorldOfOne(), nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rendezvous is null")));
  EXPECT_THAT(builder->FormGroups(WorldOfOne(), &rendezvous),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("before BootstrapWorld")));
  EXPECT_THAT(builder->Validate(WorldOfOne()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("before BootstrapWorld")));
}

TEST(NcclGroupBuilderTest, FailedWorldInitIsAnInternalErrorNamingTheStep) {
  std::shared_ptr<const nccl::NcclLibrary> library = FakeLibrary();
  ASSERT_NE(library, nullptr);
  std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(library, NcclBuilderOptions());
  InMemoryRendezvous rendezvous;
  EXPECT_THAT(builder->BootstrapWorld(WorldOfOne(), &rendezvous),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("ncclCommInitRankConfig of the world: "), HasSubstr("(1)"),
                             HasSubstr("fake NCCL: last error"))));
  // Rank 0 published the world's id (raw bytes) before the init failed.
  EXPECT_THAT(rendezvous.Keys(), ElementsAre("nccl/world/id"));
  absl::StatusOr<std::vector<std::string>> id = rendezvous.Get({"nccl/world/id"}, absl::Seconds(1));
  ASSERT_THAT(id, IsOk());
  EXPECT_EQ((*id)[0].size(), 128u);
  // Nothing is held after the failure: bootstrapping again reaches NCCL again.
  EXPECT_THAT(builder->FormGroups(WorldOfOne(), &rendezvous),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(builder->BootstrapWorld(WorldOfOne(), &rendezvous),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("ncclCommInitRankConfig")));
  builder->Release();
  builder->Release();
}

TEST(NcclGroupBuilderTest, NonZeroRankTimesOutWaitingForTheWorldId) {
  std::shared_ptr<const nccl::NcclLibrary> library = FakeLibrary();
  ASSERT_NE(library, nullptr);
  NcclBuilderOptions options;
  options.nonblocking = true;
  std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(library, options);
  InMemoryRendezvous rendezvous;
  WorldSpec spec = WorldOfOne();
  spec.world_size = 2;
  spec.rank = 1;
  spec.groups.clear();
  spec.timeout = absl::Milliseconds(50);
  EXPECT_THAT(builder->BootstrapWorld(spec, &rendezvous),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("nccl/world/id")));
}

// ---- ShrinkWorld, against fake NCCLs whose communicators exist without peers or a GPU.

std::shared_ptr<const nccl::NcclLibrary> WorkingLibrary(const std::string& name) {
  nccl::LibraryOptions options;
  options.nccl_path = Fake(name);
  options.cudart_paths = {Fake("libfake_cudart.so")};
  absl::StatusOr<std::shared_ptr<const nccl::NcclLibrary>> library =
      nccl::NcclLibrary::Load(options);
  EXPECT_THAT(library, IsOk());
  return library.ok() ? *library : nullptr;
}

// What libfake_nccl_works.so recorded (process-wide, so tests compare before and after).
struct ShrinkLog {
  int calls = 0;
  int flags = -1;
  std::vector<int> excluded;
  int destroyed = 0;
  int aborted = 0;
};

ShrinkLog ReadShrinkLog() {
  ShrinkLog log;
  void* handle = dlopen(Fake("libfake_nccl_works.so").c_str(), RTLD_NOW | RTLD_NOLOAD);
  EXPECT_NE(handle, nullptr) << "the fake NCCL is not loaded";
  if (handle == nullptr) return log;
  using Reader = void (*)(int*, int*, int*, int*, int*, int*);
  auto read = reinterpret_cast<Reader>(dlsym(handle, "fake_nccl_shrink_log"));
  EXPECT_NE(read, nullptr);
  if (read != nullptr) {
    int excluded[64];
    int count = 0;
    read(&log.calls, &log.flags, excluded, &count, &log.destroyed, &log.aborted);
    log.excluded.assign(excluded, excluded + count);
  }
  dlclose(handle);
  return log;
}

// Makes libfake_nccl_works.so's ncclCommAbort block (10 s at most) while `hold` is true.
void HoldAborts(bool hold) {
  void* handle = dlopen(Fake("libfake_nccl_works.so").c_str(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(handle, nullptr) << "the fake NCCL is not loaded";
  auto set = reinterpret_cast<void (*)(int)>(dlsym(handle, "fake_nccl_hold_aborts"));
  ASSERT_NE(set, nullptr);
  set(hold ? 1 : 0);
  dlclose(handle);
}

// A world of `world_size` at epoch 1 where this rank is `rank`, with one group of its own (a
// one-member group, which the fake's split can form).
WorldSpec HeldWorld(int world_size, int rank) {
  WorldSpec spec = World(1, world_size, rank);
  spec.kinds = {{0, "solo"}};
  spec.groups = {Group("solo", 0, rank, {rank}, 0)};
  return spec;
}

// Bootstraps and forms HeldWorld(world_size, rank) on `builder`.
void FormHeldWorld(GroupBuilder* builder, InMemoryRendezvous* rendezvous, int world_size,
                   int rank) {
  if (rank != 0) {  // rank 0's id, as the fake makes it
    ASSERT_THAT(rendezvous->Set("nccl/world/id", std::string(128, '\0')), IsOk());
  }
  ASSERT_THAT(builder->BootstrapWorld(HeldWorld(world_size, rank), rendezvous), IsOk());
  ASSERT_THAT(builder->FormGroups(HeldWorld(world_size, rank), rendezvous), IsOk());
}

TEST(NcclGroupBuilderTest, ShrinksTheHeldWorldWithAbortLeavingOutTheRemovedRanks) {
  std::shared_ptr<const nccl::NcclLibrary> library = WorkingLibrary("libfake_nccl_works.so");
  ASSERT_NE(library, nullptr);
  std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(library, NcclBuilderOptions());
  EXPECT_TRUE(builder->CanShrink());
  InMemoryRendezvous rendezvous;
  FormHeldWorld(builder.get(), &rendezvous, 4, 2);
  const ShrinkLog before = ReadShrinkLog();
  const int64_t rendezvous_calls = rendezvous.total_calls();

  // Epoch 2 keeps old ranks 0 and 2: this rank (old 2) is new rank 1 of 2.
  WorldSpec next = World(2, 2, 1);
  next.kinds = {{0, "solo"}};
  next.groups = {Group("solo", 0, 1, {1}, 0)};
  ASSERT_THAT(builder->ShrinkWorld(next, {0, 2}, &rendezvous), IsOk());
  const ShrinkLog after = ReadShrinkLog();
  EXPECT_EQ(after.calls, before.calls + 1);
  EXPECT_EQ(after.flags, 1);  // NCCL_SHRINK_ABORT
  EXPECT_THAT(after.excluded, ElementsAre(1, 3));
  EXPECT_EQ(rendezvous.total_calls(), rendezvous_calls);  // a shrink needs no new id

  // The builder now holds the world of epoch 2 as if bootstrapped: its groups form on it.
  EXPECT_THAT(builder->BootstrapWorld(next, &rendezvous),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("still held")));
  EXPECT_THAT(builder->FormGroups(next, &rendezvous), IsOk());
  builder->Release();
  const ShrinkLog released = ReadShrinkLog();
  // The old group and the old world were aborted, never destroyed (a peer may be dead); the new
  // group and the new world are finalized and destroyed.
  EXPECT_EQ(released.aborted, before.aborted + 2);
  EXPECT_EQ(released.destroyed, before.destroyed + 2);
}

TEST(NcclGroupBuilderTest, ShrinkDoesNotWaitForTheOldCommunicatorsAbort) {
  std::shared_ptr<const nccl::NcclLibrary> library = WorkingLibrary("libfake_nccl_works.so");
  ASSERT_NE(library, nullptr);
  std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(library, NcclBuilderOptions());
  InMemoryRendezvous rendezvous;
  FormHeldWorld(builder.get(), &rendezvous, 4, 2);
  EXPECT_FALSE(builder->TearingDown());
  const ShrinkLog before = ReadShrinkLog();

  // Every ncclCommAbort now blocks until released (10 s at most): a shrink that waited for the
  // old group's or the old world's abort would not return before the check below.
  HoldAborts(true);
  auto unblock = absl::MakeCleanup([] { HoldAborts(false); });
  WorldSpec next = World(2, 2, 1);
  next.kinds = {{0, "solo"}};
  next.groups = {Group("solo", 0, 1, {1}, 0)};
  const absl::Time start = absl::Now();
  ASSERT_THAT(builder->ShrinkWorld(next, {0, 2}, &rendezvous), IsOk());
  ASSERT_THAT(builder->FormGroups(next, &rendezvous), IsOk());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(ReadShrinkLog().aborted, before.aborted);  // neither abort has returned yet
  EXPECT_TRUE(builder->TearingDown());

  // Release waits for them: nothing is left behind.
  HoldAborts(false);
  builder->Release();
  EXPECT_FALSE(builder->TearingDown());
  const ShrinkLog after = ReadShrinkLog();
  EXPECT_EQ(after.aborted, before.aborted + 2);      // old group and old world
  EXPECT_EQ(after.destroyed, before.destroyed + 2);  // new group and new world
}

TEST(NcclGroupBuilderTest, AbortInBackgroundLetsTheNextWorldFormAndReleaseWaitsWithABound) {
  std::shared_ptr<const nccl::NcclLibrary> library = WorkingLibrary("libfake_nccl_works.so");
  ASSERT_NE(library, nullptr);
  std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(library, NcclBuilderOptions());
  InMemoryRendezvous rendezvous;
  FormHeldWorld(builder.get(), &rendezvous, 2, 0);
  const ShrinkLog before = ReadShrinkLog();

  HoldAborts(true);
  auto unblock = absl::MakeCleanup([] { HoldAborts(false); });
  builder->AbortInBackground();
  EXPECT_TRUE(builder->TearingDown());
  // The next epoch's world comes up on the same builder while the old one is being aborted.
  WorldSpec next = HeldWorld(2, 0);
  next.epoch = 2;
  next.timeout = absl::Milliseconds(100);
  InMemoryRendezvous next_rendezvous;
  ASSERT_THAT(builder->BootstrapWorld(next, &next_rendezvous), IsOk());
  ASSERT_THAT(builder->FormGroups(next, &next_rendezvous), IsOk());
  EXPECT_EQ(ReadShrinkLog().aborted, before.aborted);

  // An abort that hangs holds Release up for the spec's timeout, no longer.
  const absl::Time start = absl::Now();
  builder->Release();
  const absl::Duration waited = absl::Now() - start;
  EXPECT_GE(waited, absl::Milliseconds(100));
  EXPECT_LT(waited, absl::Seconds(5));
  EXPECT_TRUE(builder->TearingDown());
  EXPECT_EQ(ReadShrinkLog().destroyed, before.destroyed + 2);  // the new group and world

  HoldAborts(false);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (builder->TearingDown() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_FALSE(builder->TearingDown());
  builder.reset();
  EXPECT_EQ(ReadShrinkLog().aborted, before.aborted + 2);  // the old group and world
}

TEST(NcclGroupBuilderTest, ShrinkWithoutNcclCommShrinkIsUnimplementedAndKeepsTheWorld) {
  std::shared_ptr<const nccl::NcclLibrary> library = WorkingLibrary("libfake_nccl_works_2_26.so");
  ASSERT_NE(library, nullptr);
  std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(library, NcclBuilderOptions());
  EXPECT_FALSE(builder->CanShrink());
  InMemoryRendezvous rendezvous;
  FormHeldWorld(builder.get(), &rendezvous, 2, 0);
  EXPECT_THAT(builder->ShrinkWorld(World(2, 1, 0), {0}, &rendezvous),
              StatusIs(absl::StatusCode::kUnimplemented,
                       AllOf(HasSubstr("ncclCommShrink"), HasSubstr("2.26.5"))));
  // Nothing was touched: the world of epoch 1 is still held.
  EXPECT_THAT(builder->BootstrapWorld(HeldWorld(2, 0), &rendezvous),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("epoch 1 is still held")));
  builder->Abort();
  EXPECT_THAT(builder->BootstrapWorld(HeldWorld(2, 0), &rendezvous), IsOk());
}

TEST(NcclGroupBuilderTest, ShrinkChecksItsInputsBeforeCallingNccl) {
  std::shared_ptr<const nccl::NcclLibrary> library = WorkingLibrary("libfake_nccl_works.so");
  ASSERT_NE(library, nullptr);
  std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(library, NcclBuilderOptions());
  InMemoryRendezvous rendezvous;
  EXPECT_THAT(builder->ShrinkWorld(World(2, 1, 0), {0}, &rendezvous),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("without a held world")));
  FormHeldWorld(builder.get(), &rendezvous, 4, 0);
  const int calls = ReadShrinkLog().calls;
  EXPECT_THAT(builder->ShrinkWorld(World(1, 3, 0), {0, 1, 2}, &rendezvous),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("later than the held epoch 1, got 1")));
  WorldSpec other_device = World(2, 3, 0);
  other_device.device_index = 1;
  EXPECT_THAT(builder->ShrinkWorld(other_device, {0, 1, 2}, &rendezvous),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("device")));
  EXPECT_THAT(builder->ShrinkWorld(World(2, 3, 0), {1, 2, 3}, &rendezvous),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not this rank's held rank")));
  EXPECT_EQ(ReadShrinkLog().calls, calls);
  // Still held, still shrinkable.
  EXPECT_THAT(builder->ShrinkWorld(World(2, 3, 0), {0, 1, 2}, &rendezvous), IsOk());
  EXPECT_THAT(ReadShrinkLog().excluded, ElementsAre(3));
}

TEST(NcclGroupBuilderTest, AbortTearsDownWithoutDestroy) {
  std::shared_ptr<const nccl::NcclLibrary> library = WorkingLibrary("libfake_nccl_works.so");
  ASSERT_NE(library, nullptr);
  std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(library, NcclBuilderOptions());
  InMemoryRendezvous rendezvous;
  FormHeldWorld(builder.get(), &rendezvous, 2, 1);
  const ShrinkLog before = ReadShrinkLog();
  builder->Abort();
  builder->Abort();
  const ShrinkLog after = ReadShrinkLog();
  EXPECT_EQ(after.aborted, before.aborted + 2);  // the group and the world
  EXPECT_EQ(after.destroyed, before.destroyed);
}

}  // namespace
}  // namespace splitd::worker
