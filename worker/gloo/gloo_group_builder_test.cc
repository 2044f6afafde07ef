#include "worker/gloo/gloo_group_builder.h"

#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/spdlog.h"
#include "tests/testing/in_memory_rendezvous.h"
#include "worker/group_builder.h"

namespace splitd::worker {
namespace {

using ::splitd::testing::InMemoryRendezvous;
using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;

// Debug logs of the backend land in the test log (timings per step).
const bool kDebugLogs = [] {
  spdlog::set_level(spdlog::level::debug);
  return true;
}();

// The groups of one kind, as global rank lists in local-rank order.
struct Kind {
  std::string name;
  std::vector<std::vector<int32_t>> groups;
};

// Groups of a grid with the first dimension varying fastest (tp, then pp, then dp): a group of
// dimension d holds the ranks that differ only in their coordinate along d.
std::vector<Kind> GridKinds(const std::vector<std::pair<std::string, int>>& dims) {
  int world = 1;
  for (const auto& dim : dims) world *= dim.second;
  std::vector<Kind> kinds;
  int stride = 1;
  for (const auto& [name, size] : dims) {
    Kind kind{name, {}};
    for (int rank = 0; rank < world; ++rank) {
      if ((rank / stride) % size != 0) continue;  // the group's first member
      std::vector<int32_t> members;
      for (int c = 0; c < size; ++c) members.push_back(rank + c * stride);
      kind.groups.push_back(members);
    }
    kinds.push_back(std::move(kind));
    stride *= size;
  }
  return kinds;
}

// One spec per rank; a rank in no group of a kind gets no assignment for it.
std::vector<WorldSpec> MakeSpecs(int world, const std::vector<Kind>& kinds,
                                 const std::string& method,
                                 absl::Duration timeout = absl::Seconds(60)) {
  std::vector<WorldSpec> specs(world);
  for (int rank = 0; rank < world; ++rank) {
    WorldSpec& spec = specs[rank];
    spec.cluster = "test";
    spec.epoch = 7;
    spec.rank = rank;
    spec.world_size = world;
    spec.method = method;
    spec.allreduce_elements = 256;
    spec.timeout = timeout;
    for (size_t k = 0; k < kinds.size(); ++k) {
      for (size_t g = 0; g < kinds[k].groups.size(); ++g) {
        const std::vector<int32_t>& members = kinds[k].groups[g];
        for (size_t i = 0; i < members.size(); ++i) {
          if (members[i] != rank) continue;
          GroupAssignment assignment;
          assignment.kind = kinds[k].name;
          assignment.kind_index = static_cast<int>(k);
          assignment.group_index = static_cast<int64_t>(g);
          assignment.members = members;
          assignment.local_rank = static_cast<int>(i);
          spec.groups.push_back(assignment);
        }
      }
    }
  }
  return specs;
}

// Runs `fn(rank)` on one thread per rank and returns the statuses by rank.
std::vector<absl::Status> OnRanks(const std::vector<int>& ranks,
                                  const std::function<absl::Status(int)>& fn) {
  std::vector<absl::Status> statuses(ranks.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ranks.size(); ++i) {
    threads.emplace_back([&statuses, &fn, &ranks, i]() { statuses[i] = fn(ranks[i]); });
  }
  for (std::thread& thread : threads) thread.join();
  return statuses;
}

std::vector<int> AllRanks(int world) {
  std::vector<int> ranks;
  for (int r = 0; r < world; ++r) ranks.push_back(r);
  return ranks;
}

// A world of builders in one process, one thread per rank, over one InMemoryRendezvous.
class LocalWorld {
 public:
  explicit LocalWorld(std::vector<WorldSpec> specs) : specs_(std::move(specs)) {
    for (size_t r = 0; r < specs_.size(); ++r) builders_.push_back(MakeGlooGroupBuilder());
  }
  ~LocalWorld() {
    for (auto& builder : builders_) builder->Release();
  }

  int size() const { return static_cast<int>(specs_.size()); }
  InMemoryRendezvous& rendezvous() { return rendezvous_; }
  GroupBuilder& builder(int rank) { return *builders_[rank]; }
  const WorldSpec& spec(int rank) const { return specs_[rank]; }

  std::vector<absl::Status> Bootstrap(const std::vector<int>& ranks) {
    return OnRanks(ranks,
                   [this](int r) { return builders_[r]->BootstrapWorld(specs_[r], &rendezvous_); });
  }
  std::vector<absl::Status> Form(const std::vector<int>& ranks) {
    return OnRanks(ranks,
                   [this](int r) { return builders_[r]->FormGroups(specs_[r], &rendezvous_); });
  }
  // Validations by rank; a rank whose Validate failed gets its status.
  std::vector<absl::StatusOr<std::vector<GroupValidation>>> Validate(
      const std::vector<int>& ranks) {
    std::vector<absl::StatusOr<std::vector<GroupValidation>>> results(specs_.size());
    OnRanks(ranks, [this, &results](int r) {
      results[r] = builders_[r]->Validate(specs_[r]);
      return absl::OkStatus();
    });
    return results;
  }

 private:
  std::vector<WorldSpec> specs_;
  InMemoryRendezvous rendezvous_;
  std::vector<std::unique_ptr<GroupBuilder>> builders_;
};

void ExpectAllOk(const std::vector<absl::Status>& statuses) {
  for (size_t i = 0; i < statuses.size(); ++i) EXPECT_THAT(statuses[i], IsOk()) << "rank " << i;
}

// Forms and validates every group on every rank; checks each all-reduce gave the group size.
// Returns the validations by rank.
std::vector<std::vector<GroupValidation>> FormAndValidate(LocalWorld& world) {
  const std::vector<int> ranks = AllRanks(world.size());
  ExpectAllOk(world.Bootstrap(ranks));
  const absl::Time start = absl::Now();
  ExpectAllOk(world.Form(ranks));
  std::cout << "world " << world.size() << " " << world.spec(0).method << ": groups formed in "
            << absl::FormatDuration(absl::Now() - start) << std::endl;
  std::vector<std::vector<GroupValidation>> all;
  auto results = world.Validate(ranks);
  for (int r = 0; r < world.size(); ++r) {
    EXPECT_THAT(results[r], IsOk()) << "rank " << r;
    if (!results[r].ok()) {
      all.emplace_back();
      continue;
    }
    const WorldSpec& spec = world.spec(r);
    EXPECT_EQ(results[r]->size(), spec.groups.size()) << "rank " << r;
    for (size_t g = 0; g < results[r]->size() && g < spec.groups.size(); ++g) {
      const GroupValidation& v = (*results[r])[g];
      EXPECT_EQ(v.kind, spec.groups[g].kind);
      EXPECT_EQ(v.group_index, spec.groups[g].group_index);
      EXPECT_TRUE(v.ok) << "rank " << r << " group " << v.kind << "/" << v.group_index << ": "
                        << v.error;
      EXPECT_EQ(v.allreduce_value, static_cast<double>(spec.groups[g].members.size()))
          << "rank " << r << " group " << v.kind << "/" << v.group_index;
    }
    all.push_back(*results[r]);
  }
  return all;
}

class GlooGroupBuilderMethodTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GlooGroupBuilderMethodTest, FormsTp2Pp2Dp2Groups) {
  const std::vector<Kind> kinds = GridKinds({{"tp", 2}, {"pp", 2}, {"dp", 2}});
  ASSERT_EQ(kinds[0].groups, (std::vector<std::vector<int32_t>>{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  ASSERT_EQ(kinds[1].groups, (std::vector<std::vector<int32_t>>{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  ASSERT_EQ(kinds[2].groups, (std::vector<std::vector<int32_t>>{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  LocalWorld world(MakeSpecs(8, kinds, GetParam()));
  const auto validations = FormAndValidate(world);
  for (const auto& per_rank : validations) EXPECT_EQ(per_rank.size(), 3u);
}

TEST_P(GlooGroupBuilderMethodTest, FormsOverlappingGroupsOfDifferentSizes) {
  // Ranks 2 and 3 are in no group of kind "pair".
  const std::vector<Kind> kinds = {
      {"all", {{0, 1, 2, 3, 4, 5}}},
      {"half", {{0, 1, 2}, {3, 4, 5}}},
      {"pair", {{0, 5}, {4, 1}}},
  };
  LocalWorld world(MakeSpecs(6, kinds, GetParam()));
  ASSERT_EQ(world.spec(2).groups.size(), 2u);
  ASSERT_EQ(world.spec(4).groups.back().local_rank, 0);
  FormAndValidate(world);
}

TEST_P(GlooGroupBuilderMethodTest, WorldOfOneFormsItsSizeOneGroup) {
  LocalWorld world(MakeSpecs(1, {{"all", {{0}}}, {"tp", {{0}}}}, GetParam()));
  const auto validations = FormAndValidate(world);
  ASSERT_EQ(validations.size(), 1u);
  ASSERT_EQ(validations[0].size(), 2u);
  EXPECT_EQ(validations[0][0].allreduce_value, 1.0);
}

TEST_P(GlooGroupBuilderMethodTest, MissingPeerAtFormGroupsGivesStatusNotHang) {
  LocalWorld world(MakeSpecs(2, {{"all", {{0, 1}}}}, GetParam(), absl::Seconds(2)));
  ExpectAllOk(world.Bootstrap({0, 1}));
  const absl::Time start = absl::Now();
  const std::vector<absl::Status> statuses = world.Form({0});  // rank 1 never forms
  EXPECT_THAT(statuses[0], AnyOf(StatusIs(absl::StatusCode::kDeadlineExceeded, Not("")),
                                 StatusIs(absl::StatusCode::kUnavailable, Not(""))));
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));
  // A failed step leaves the builder releasable, and Validate refuses groups never formed.
  EXPECT_THAT(world.builder(0).Validate(world.spec(0)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not formed")));
  world.builder(0).Release();
  world.builder(0).Release();
}

INSTANTIATE_TEST_SUITE_P(Methods, GlooGroupBuilderMethodTest, ::testing::Values("split", "init"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(GlooGroupBuilderTest, SplitMethodIsQuietOnTheRendezvous) {
  LocalWorld world(MakeSpecs(8, GridKinds({{"tp", 2}, {"pp", 2}, {"dp", 2}}), "split"));
  const std::vector<int> ranks = AllRanks(8);
  ExpectAllOk(world.Bootstrap(ranks));
  const int64_t after_bootstrap = world.rendezvous().total_calls();
  EXPECT_GT(after_bootstrap, 0);
  ExpectAllOk(world.Form(ranks));
  world.Validate(ranks);
  EXPECT_EQ(world.rendezvous().total_calls(), after_bootstrap);
  for (const std::string& key : world.rendezvous().Keys()) {
    EXPECT_TRUE(absl::StartsWith(key, "world/")) << key;
  }
}

TEST(GlooGroupBuilderTest, InitMethodRendezvousesUnderAPrefixPerGroup) {
  LocalWorld world(MakeSpecs(4, {{"tp", {{0, 1}, {2, 3}}}}, "init"));
  const std::vector<int> ranks = AllRanks(4);
  ExpectAllOk(world.Bootstrap(ranks));
  const int64_t after_bootstrap = world.rendezvous().total_calls();
  ExpectAllOk(world.Form(ranks));
  EXPECT_GT(world.rendezvous().total_calls(), after_bootstrap);
  const std::vector<std::string> keys = world.rendezvous().Keys();
  EXPECT_THAT(keys, ::testing::Contains("init/tp/0/0"));
  EXPECT_THAT(keys, ::testing::Contains("init/tp/1/1"));
}

TEST(GlooGroupBuilderTest, BandwidthRunGivesAPositiveFigure) {
  std::vector<WorldSpec> specs = MakeSpecs(4, {{"all", {{0, 1, 2, 3}}}}, "split");
  for (WorldSpec& spec : specs) spec.bandwidth_bytes = 1 << 20;
  LocalWorld world(std::move(specs));
  const auto validations = FormAndValidate(world);
  for (const auto& per_rank : validations) {
    ASSERT_EQ(per_rank.size(), 1u);
    EXPECT_GT(per_rank[0].bus_bandwidth_gbps, 0.0);
    EXPECT_GT(per_rank[0].latency_us, 0.0);
  }
  std::cout << "bus bandwidth, 1 MiB over 4 ranks: " << validations[0][0].bus_bandwidth_gbps
            << " GB/s" << std::endl;
}

TEST(GlooGroupBuilderTest, MissingPeerAtBootstrapGivesDeadlineExceeded) {
  LocalWorld world(MakeSpecs(2, {{"all", {{0, 1}}}}, "split", absl::Seconds(2)));
  const absl::Time start = absl::Now();
  const std::vector<absl::Status> statuses = world.Bootstrap({0});  // rank 1 never shows up
  EXPECT_THAT(statuses[0], StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("world")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));
  world.builder(0).Release();
}

TEST(GlooGroupBuilderTest, PeerGoneBeforeValidationFailsThatGroupOnly) {
  LocalWorld world(
      MakeSpecs(2, {{"all", {{0, 1}}}, {"self", {{0}, {1}}}}, "split", absl::Seconds(2)));
  ExpectAllOk(world.Bootstrap({0, 1}));
  ExpectAllOk(world.Form({0, 1}));
  world.builder(1).Release();
  absl::StatusOr<std::vector<GroupValidation>> result = world.builder(0).Validate(world.spec(0));
  ASSERT_THAT(result, IsOk());
  ASSERT_EQ(result->size(), 2u);
  EXPECT_FALSE((*result)[0].ok);
  EXPECT_THAT((*result)[0].error, Not(""));
  EXPECT_TRUE((*result)[1].ok);
}

TEST(GlooGroupBuilderTest, RejectsMisuseAndBadSpecs) {
  std::unique_ptr<GroupBuilder> builder = MakeGlooGroupBuilder();
  EXPECT_EQ(builder->backend(), "cpu:gloo");
  InMemoryRendezvous rendezvous;
  WorldSpec spec = MakeSpecs(1, {{"all", {{0}}}}, "split")[0];

  EXPECT_THAT(builder->FormGroups(spec, &rendezvous),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("BootstrapWorld")));
  EXPECT_THAT(builder->Validate(spec), StatusIs(absl::StatusCode::kFailedPrecondition, Not("")));

  WorldSpec bad_rank = spec;
  bad_rank.rank = 3;
  EXPECT_THAT(builder->BootstrapWorld(bad_rank, &rendezvous),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank")));
  WorldSpec bad_host = spec;
  bad_host.host = "no-such-host.invalid";
  EXPECT_THAT(builder->BootstrapWorld(bad_host, &rendezvous),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no-such-host.invalid")));

  ASSERT_THAT(builder->BootstrapWorld(spec, &rendezvous), IsOk());
  EXPECT_THAT(builder->BootstrapWorld(spec, &rendezvous),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("Release")));

  WorldSpec bad_method = spec;
  bad_method.method = "magic";
  EXPECT_THAT(builder->FormGroups(bad_method, &rendezvous),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("magic")));
  WorldSpec not_member = spec;
  not_member.groups[0].members = {1};
  EXPECT_THAT(builder->FormGroups(not_member, &rendezvous),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("members")));
  WorldSpec bad_local = spec;
  bad_local.groups[0].local_rank = 2;
  EXPECT_THAT(builder->FormGroups(bad_local, &rendezvous),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local_rank")));

  ASSERT_THAT(builder->FormGroups(spec, &rendezvous), IsOk());
  builder->Release();
  builder->Release();
  // A released builder bootstraps again (a later epoch, on a fresh rendezvous space).
  InMemoryRendezvous next;
  spec.epoch = 8;
  EXPECT_THAT(builder->BootstrapWorld(spec, &next), IsOk());
  builder->Release();
}

}  // namespace
}  // namespace splitd::worker
