#include "worker/nccl/nccl_group_builder.h"

#include <climits>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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
  return arg.kind_index == kind_index && arg.kind == kind && arg.color == color &&
         arg.key == key;
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
  EXPECT_THAT(*keys, ElementsAre(IsColorKey(0, "tp", kNoColor, 0),
                                 IsColorKey(1, "dp", kNoColor, 0)));
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

TEST(CheckNcclWorldTest, AcceptsTheExample) { EXPECT_THAT(CheckNcclWorld(Tp2Pp2Dp2Rank5()), IsOk()); }

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
      {"member outside", [](WorldSpec* s) { s->groups[1].members = {5, 8}; },
       "groups[1] (pp/3).members holds 8, outside the world [0, 8)"},
      {"member twice", [](WorldSpec* s) { s->groups[2].members = {5, 5}; },
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
  builder->Release();
  builder->Release();
}

// The loader's fake libraries (worker/nccl/testdata): two "devices", and an NCCL whose init
// fails with ncclUnhandledCudaError, as the real one does on a machine without a GPU.
std::string Fake(const std::string& name) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "splitd",
                      "/worker/nccl/", name);
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
  EXPECT_THAT(builder->BootstrapWorld(spec, &rendezvous),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("device_index must be in [0, 2)")));
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
                       AllOf(HasSubstr("ncclCommInitRankConfig of the world: "),
                             HasSubstr("(1)"), HasSubstr("fake NCCL: last error"))));
  // Rank 0 published the world's id (raw bytes) before the init failed.
  EXPECT_THAT(rendezvous.Keys(), ElementsAre("nccl/world/id"));
  absl::StatusOr<std::vector<std::string>> id =
      rendezvous.Get({"nccl/world/id"}, absl::Seconds(1));
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

}  // namespace
}  // namespace splitd::worker
