#include "plan/topology_validator.h"

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::plan {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// World 8: tp 2, pp 2, dp 2.
constexpr char kDims[] = R"pb(
  dims { name: "tp" size: 2 }
  dims { name: "pp" size: 2 }
  dims { name: "dp" size: 2 }
)pb";

v1::Topology Parse(const std::string& text) {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &topology)) << text;
  return topology;
}

// A valid cluster over kDims plus `rest`.
v1::Topology Valid(const std::string& rest) {
  return Parse(absl::StrCat("cluster: \"job\"\n", kDims, rest));
}

struct InvalidCase {
  std::string name;
  std::string text;      // the whole topology, text format
  std::string expected;  // substring of the INVALID_ARGUMENT message
};

class RejectsInvalidTopology : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(RejectsInvalidTopology, WithFieldInMessage) {
  const InvalidCase& c = GetParam();
  EXPECT_THAT(TopologyValidator::Normalize(Parse(c.text)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.expected)));
}

std::string C(const std::string& rest) { return absl::StrCat("cluster: \"job\"\n", kDims, rest); }
std::string Group(const std::string& body) { return C(absl::StrCat("groups { ", body, " }")); }
std::string Backend(const std::string& value) {
  return Group(absl::StrCat(R"(name: "tp" dims: "tp" backend: ")", value, "\""));
}
constexpr char kExpertMesh[] = R"pb(
  meshes {
    name: "expert"
    dims { name: "etp" size: 1 }
    dims { name: "ep" size: 4 }
    dims { name: "edp" size: 2 }
  }
)pb";

INSTANTIATE_TEST_SUITE_P(
    Rules, RejectsInvalidTopology,
    ::testing::Values(
        // cluster
        InvalidCase{"EmptyCluster", kDims, "cluster must not be empty"},
        InvalidCase{"ClusterWithSpace", absl::StrCat("cluster: \"my job\"", kDims),
                    "cluster may hold only letters, digits, '.', '_' and '-', got \"my job\""},
        InvalidCase{"ClusterTooLong",
                    absl::StrCat("cluster: \"", std::string(64, 'a'), "\"", kDims),
                    "cluster must be at most 63 characters, got 64"},
        InvalidCase{"ClusterStartsWithDash", absl::StrCat("cluster: \"-job\"", kDims),
                    "cluster must start with a letter or digit, got \"-job\""},
        // dims
        InvalidCase{"NoDims", "cluster: \"job\"", "dims must not be empty"},
        InvalidCase{"DimSizeZero",
                    R"(cluster: "job" dims { name: "tp" size: 2 } dims { name: "pp" size: 0 })",
                    "dims[1].size must be >= 1, got 0"},
        InvalidCase{"DimSizeNegative",
                    R"(cluster: "job" dims { name: "tp" size: 2 } dims { name: "pp" size: -1 })",
                    "dims[1].size must be >= 1, got -1"},
        InvalidCase{"DimSizeTooBig", R"(cluster: "job" dims { name: "tp" size: 1048577 })",
                    "dims[0].size must be <= 1048576, got 1048577"},
        InvalidCase{"DimSizeMissing", R"(cluster: "job" dims { name: "tp" })",
                    "dims[0].size must be >= 1, got 0"},
        InvalidCase{
            "WorldTooBig",
            R"(cluster: "job" dims { name: "tp" size: 1024 } dims { name: "dp" size: 2048 })",
            "dims: world size (product of sizes) exceeds 1048576"},
        InvalidCase{
            "WorldOverflowsInt64",
            R"(cluster: "job" dims { name: "a" size: 1048576 } dims { name: "b" size: 1048576 }
                       dims { name: "c" size: 1048576 } dims { name: "d" size: 1048576 })",
            "dims: world size (product of sizes) exceeds 1048576"},
        InvalidCase{"DimEmptyName", R"(cluster: "job" dims { size: 2 })",
                    "dims[0].name must not be empty"},
        InvalidCase{"DimNameWithSpace",
                    R"(cluster: "job" dims { name: "tp" size: 2 } dims { name: "p p" size: 2 })",
                    "dims[1].name may hold only"},
        InvalidCase{"DuplicateDim",
                    absl::StrCat("cluster: \"job\"", kDims, R"(dims { name: "tp" size: 1 })"),
                    "dims[3].name: duplicate dim \"tp\" (also dims[0])"},
        // world_size
        InvalidCase{"WorldSizeMismatch", C("world_size: 16"),
                    "world_size 16 does not match the product of dims sizes, 8"},
        InvalidCase{"WorldSizeNegative", C("world_size: -8"), "world_size must be in [1, 1048576]"},
        InvalidCase{"WorldSizeTooBig", C("world_size: 2097152"),
                    "world_size must be in [1, 1048576] (or 0 to derive it), got 2097152"},
        // meshes
        InvalidCase{"MeshEmptyName", C(R"(meshes { dims { name: "a" size: 8 } })"),
                    "meshes[0].name must not be empty"},
        InvalidCase{"MeshNameWithSpace",
                    C(R"(meshes { name: "ex pert" dims { name: "a" size: 8 } })"),
                    "meshes[0].name may hold only"},
        InvalidCase{"DuplicateMesh", C(R"(meshes { name: "expert" dims { name: "a" size: 8 } }
                         meshes { name: "expert" dims { name: "b" size: 8 } })"),
                    "meshes[1].name: duplicate mesh name \"expert\" (also meshes[0])"},
        InvalidCase{"MeshWorldMismatch",
                    C(R"(meshes { name: "expert" dims { name: "a" size: 4 } })"),
                    "meshes[0].dims: world size 4 differs from the world size of dims, 8"},
        InvalidCase{"MeshNoDims", C(R"(meshes { name: "expert" })"),
                    "meshes[0].dims must not be empty"},
        InvalidCase{
            "MeshDimSizeZero",
            C(R"(meshes { name: "expert" dims { name: "a" size: 8 } dims { name: "b" size: 0 } })"),
            "meshes[0].dims[1].size must be >= 1, got 0"},
        InvalidCase{
            "MeshDuplicateDim",
            C(R"(meshes { name: "expert" dims { name: "a" size: 4 } dims { name: "a" size: 2 } })"),
            "meshes[0].dims[1].name: duplicate dim \"a\""},
        // nodes
        InvalidCase{"GpusPerNodeNegative", C("nodes { gpus_per_node: -1 }"),
                    "nodes.gpus_per_node must be >= 0, got -1"},
        InvalidCase{"GpusPerNodeTooBig", C("nodes { gpus_per_node: 1048577 }"),
                    "nodes.gpus_per_node must be <= 1048576, got 1048577"},
        InvalidCase{"NodeCountNegative", C("nodes { gpus_per_node: 4 count: -2 }"),
                    "nodes.count must be >= 0, got -2"},
        InvalidCase{"NodeCountTooBig", C("nodes { gpus_per_node: 4 count: 1048577 }"),
                    "nodes.count must be <= 1048576, got 1048577"},
        InvalidCase{"NodeCountWithoutGpusPerNode", C("nodes { count: 2 }"),
                    "nodes.count 2 requires nodes.gpus_per_node > 0"},
        InvalidCase{"NodeCountMismatch", C("nodes { gpus_per_node: 4 count: 3 }"),
                    "nodes.count * nodes.gpus_per_node = 3 * 4 = 12 does not match world size 8"},
        InvalidCase{"GpusPerNodeDoesNotDivideWorld", C("nodes { gpus_per_node: 3 }"),
                    "nodes.gpus_per_node 3 does not divide world size 8"},
        // groups
        InvalidCase{"GroupEmptyName", Group(R"(dims: "tp")"), "groups[0].name must not be empty"},
        InvalidCase{"GroupNameWithSpace", Group(R"(name: "t p" dims: "tp")"),
                    "groups[0].name may hold only"},
        InvalidCase{"DuplicateGroup",
                    C(R"(groups { name: "tp" dims: "tp" } groups { name: "tp" dims: "pp" })"),
                    "groups[1].name: duplicate group name \"tp\" (also groups[0])"},
        InvalidCase{"GroupWithDimsAndLists",
                    Group(R"(name: "tp" dims: "tp" split_ranks { ranks: 0 })"),
                    "groups[0]: exactly one of dims and split_ranks must be given, got both"},
        InvalidCase{"GroupWithNeither", Group(R"(name: "tp")"),
                    "groups[0]: exactly one of dims and split_ranks must be given, got neither"},
        InvalidCase{
            "UnknownDim",
            C(R"(groups { name: "tp" dims: "tp" } groups { name: "x" dims: "pp" dims: "xp" })"),
            "groups[1].dims[1]: unknown dim \"xp\" in mesh \"\" (dims: tp, pp, dp)"},
        InvalidCase{
            "UnknownDimInMesh",
            C(absl::StrCat(kExpertMesh, R"(groups { name: "ep" mesh: "expert" dims: "tp" })")),
            "groups[0].dims[0]: unknown dim \"tp\" in mesh \"expert\" (dims: etp, ep, edp)"},
        InvalidCase{"UnknownMesh", Group(R"(name: "ep" mesh: "nope" dims: "tp")"),
                    "groups[0].mesh: unknown mesh \"nope\" (meshes: none)"},
        InvalidCase{
            "UnknownMeshListsKnownOnes",
            C(absl::StrCat(kExpertMesh, R"(groups { name: "ep" mesh: "nope" dims: "ep" })")),
            "groups[0].mesh: unknown mesh \"nope\" (meshes: expert)"},
        InvalidCase{"DuplicateDimInGroup", Group(R"(name: "tp" dims: "tp" dims: "tp")"),
                    "groups[0].dims[1]: duplicate dim \"tp\" (also groups[0].dims[0])"},
        InvalidCase{"BadLocal", Group(R"(name: "tp" dims: "tp" local: "rack")"),
                    "groups[0].local must be \"\" or \"node\", got \"rack\""},
        InvalidCase{"LocalNodeWithoutGpusPerNode", Group(R"(name: "tp" dims: "tp" local: "node")"),
                    "groups[0].local \"node\" requires nodes.gpus_per_node > 0"},
        // backend strings
        InvalidCase{"BackendWithoutDevice", Backend("gloo"),
                    "groups[0].backend: invalid backend string \"gloo\": entry \"gloo\" is not "
                    "<device>:<backend>"},
        InvalidCase{"BackendWithoutBackend", Backend("cpu:"),
                    "groups[0].backend: invalid backend string \"cpu:\": entry \"cpu:\" is not"},
        InvalidCase{"BackendWithoutDeviceName", Backend(":gloo"),
                    "groups[0].backend: invalid backend string \":gloo\": entry \":gloo\" is not"},
        InvalidCase{"BackendTrailingComma", Backend("cpu:gloo,"),
                    "groups[0].backend: invalid backend string \"cpu:gloo,\": entry 1 is empty"},
        InvalidCase{"BackendLeadingComma", Backend(",cuda:nccl"),
                    "groups[0].backend: invalid backend string \",cuda:nccl\": entry 0 is empty"},
        InvalidCase{"BackendDuplicateEntry", Backend("cpu:gloo,cpu:gloo"),
                    "groups[0].backend: invalid backend string \"cpu:gloo,cpu:gloo\": duplicate "
                    "entry \"cpu:gloo\""},
        InvalidCase{"BackendUnsupportedPair", Backend("cpu:nccl"),
                    "unsupported entry \"cpu:nccl\" (allowed: cpu:gloo, cuda:nccl)"},
        InvalidCase{"BackendWithSpace", Backend("cpu:gloo, cuda:nccl"),
                    "unsupported entry \" cuda:nccl\""},
        InvalidCase{"TopologyBackend", C(R"(backend: "nccl")"),
                    "backend: invalid backend string \"nccl\": entry \"nccl\" is not"},
        // method and validation
        InvalidCase{"BadMethod", C(R"(method: "broadcast")"),
                    "method must be \"split\" or \"init\", got \"broadcast\""},
        InvalidCase{"MethodCase", C(R"(method: "Split")"), "method must be \"split\" or \"init\""},
        InvalidCase{"AllreduceElementsNegative", C("validation { allreduce_elements: -1 }"),
                    "validation.allreduce_elements must be in [1, 67108864] (or 0 for the default "
                    "1024), got -1"},
        InvalidCase{"AllreduceElementsTooBig", C("validation { allreduce_elements: 67108865 }"),
                    "validation.allreduce_elements must be in [1, 67108864]"},
        InvalidCase{"BandwidthBytesNegative", C("validation { bandwidth_bytes: -1 }"),
                    "validation.bandwidth_bytes must be in [0, 17179869184], got -1"},
        InvalidCase{"BandwidthBytesTooBig", C("validation { bandwidth_bytes: 17179869185 }"),
                    "validation.bandwidth_bytes must be in [0, 17179869184], got 17179869185"},
        // explicit lists
        InvalidCase{"EmptyList", Group(R"(name: "c" split_ranks { ranks: 0 } split_ranks { })"),
                    "groups[0].split_ranks[1] must not be empty"},
        InvalidCase{
            "RankOutOfRange",
            Group(R"(name: "c" split_ranks { ranks: 0 } split_ranks { ranks: 1 ranks: 8 })"),
            "groups[0].split_ranks[1][1] must be in [0, 8), got 8"},
        InvalidCase{"RankNegative", Group(R"(name: "c" split_ranks { ranks: 0 ranks: -1 })"),
                    "groups[0].split_ranks[0][1] must be in [0, 8), got -1"},
        InvalidCase{"RankRepeatedInList",
                    Group(R"(name: "c" split_ranks { ranks: 0 ranks: 1 ranks: 1 })"),
                    "groups[0].split_ranks[0][2]: rank 1 is repeated in the same list"},
        InvalidCase{"OverlappingLists", Group(R"(name: "c" split_ranks { ranks: 0 ranks: 3 }
                             split_ranks { ranks: 1 ranks: 2 }
                             split_ranks { ranks: 4 ranks: 3 })"),
                    "groups[0].split_ranks[2][1]: rank 3 is already in groups[0].split_ranks[0]"},
        InvalidCase{"OverlapInSecondExplicitKind",
                    C(R"(groups { name: "a" split_ranks { ranks: 0 ranks: 1 } }
                         groups { name: "b" split_ranks { ranks: 0 }
                                            split_ranks { ranks: 1 ranks: 0 } })"),
                    "groups[1].split_ranks[1][1]: rank 0 is already in groups[1].split_ranks[0]"},
        InvalidCase{"MoreListsThanRanks",
                    Group(R"(name: "c" split_ranks { ranks: 0 } split_ranks { ranks: 1 }
                             split_ranks { ranks: 2 } split_ranks { ranks: 3 }
                             split_ranks { ranks: 4 } split_ranks { ranks: 5 }
                             split_ranks { ranks: 6 } split_ranks { ranks: 7 }
                             split_ranks { ranks: 0 })"),
                    "groups[0].split_ranks has 9 lists, more than world size 8"},
        InvalidCase{
            "ListsWithMesh",
            C(absl::StrCat(kExpertMesh,
                           R"(groups { name: "c" mesh: "expert" split_ranks { ranks: 0 } })")),
            "groups[0].mesh must be empty when split_ranks is given, got \"expert\""},
        // readiness, deadlines
        InvalidCase{"UnknownReadiness", C(R"(readiness: "workloads")"),
                    "readiness must be \"agent\" or \"workload\" (or empty for \"agent\"), "
                    "got \"workloads\""},
        InvalidCase{"UpperCaseReadiness", C(R"(readiness: "Agent")"),
                    "readiness must be \"agent\" or \"workload\""},
        InvalidCase{"NegativeBootstrapDeadline", C("deadlines { bootstrap_ms: -1 }"),
                    "deadlines.bootstrap_ms must be >= 0, got -1"},
        InvalidCase{"NegativeSplitDeadline", C("deadlines { split_ms: -1 }"),
                    "deadlines.split_ms must be >= 0, got -1"},
        InvalidCase{"NegativeValidateDeadline", C("deadlines { validate_ms: -5 }"),
                    "deadlines.validate_ms must be >= 0, got -5"},
        InvalidCase{"WorkloadDeadlineOverADay", C("deadlines { workload_ms: 86400001 }"),
                    "deadlines.workload_ms must be <= 86400000 (a day), got 86400001"}),
    [](const ::testing::TestParamInfo<InvalidCase>& info) { return info.param.name; });

TEST(TopologyValidatorTest, RefusesTenThousandDimsQuickly) {
  v1::Topology topology = Valid("");
  for (int i = 0; i < 10000; ++i) {
    v1::Dim* dim = topology.add_dims();
    dim->set_name(absl::StrCat("d", i));
    dim->set_size(1);
  }
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(TopologyValidator::Normalize(topology),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("dims has 10003 entries, at most 32 are allowed")));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
}

TEST(TopologyValidatorTest, RefusesTooManyDimsInAGroup) {
  v1::Topology topology = Valid("");
  v1::GroupSpec* group = topology.add_groups();
  group->set_name("big");
  for (int i = 0; i < 10000; ++i) group->add_dims("tp");
  EXPECT_THAT(TopologyValidator::Normalize(topology),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("groups[0].dims has 10000 entries, at most 32 are allowed")));
}

TEST(TopologyValidatorTest, RefusesTooManyGroupKinds) {
  v1::Topology topology = Valid("");
  for (int i = 0; i < kMaxGroupKinds + 1; ++i) {
    v1::GroupSpec* group = topology.add_groups();
    group->set_name(absl::StrCat("g", i));
    group->add_dims("tp");
  }
  EXPECT_THAT(TopologyValidator::Normalize(topology),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("groups has 65 entries, at most 64 are allowed")));
  topology.mutable_groups()->RemoveLast();
  EXPECT_THAT(TopologyValidator::Normalize(topology), IsOk());
}

TEST(TopologyValidatorTest, RefusesTooManyMeshes) {
  v1::Topology topology = Valid("");
  for (int i = 0; i < kMaxMeshes + 1; ++i) {
    v1::Mesh* mesh = topology.add_meshes();
    mesh->set_name(absl::StrCat("m", i));
    v1::Dim* dim = mesh->add_dims();
    dim->set_name("all");
    dim->set_size(8);
  }
  EXPECT_THAT(TopologyValidator::Normalize(topology),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("meshes has 17 entries, at most 16 are allowed")));
}

TEST(TopologyValidatorTest, TruncatesHugeValuesInMessages) {
  v1::Topology topology = Valid("");
  topology.set_cluster(std::string(100000, ' '));
  const absl::Status status = TopologyValidator::Normalize(topology).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("cluster must be at most 63 characters, got 100000")));
  EXPECT_LT(status.message().size(), 300u);
}

TEST(TopologyValidatorTest, FillsDefaults) {
  absl::StatusOr<v1::Topology> normalized = TopologyValidator::Normalize(Valid(""));
  ASSERT_THAT(normalized, IsOk());
  EXPECT_EQ(normalized->world_size(), 8);
  EXPECT_EQ(normalized->method(), "split");
  EXPECT_EQ(normalized->backend(), "cpu:gloo");
  EXPECT_EQ(normalized->validation().allreduce_elements(), 1024);
  EXPECT_EQ(normalized->validation().bandwidth_bytes(), 0);
  ASSERT_EQ(normalized->groups_size(), 3);
  const char* names[] = {"tp", "pp", "dp"};
  for (int i = 0; i < 3; ++i) {
    const v1::GroupSpec& group = normalized->groups(i);
    EXPECT_EQ(group.name(), names[i]);
    EXPECT_THAT(group.dims(), ElementsAre(names[i]));
    EXPECT_EQ(group.backend(), "cpu:gloo");
    EXPECT_EQ(group.mesh(), "");
    EXPECT_EQ(group.local(), "");
  }
}

TEST(TopologyValidatorTest, GroupsInheritTheTopologyBackendAndKeepTheirOwn) {
  absl::StatusOr<v1::Topology> normalized = TopologyValidator::Normalize(Valid(R"(
    backend: "cuda:nccl"
    method: "init"
    validation { allreduce_elements: 7 bandwidth_bytes: 17179869184 }
    groups { name: "tp" dims: "tp" backend: "cpu:gloo,cuda:nccl" }
    groups { name: "dp" dims: "dp" }
  )"));
  ASSERT_THAT(normalized, IsOk());
  EXPECT_EQ(normalized->method(), "init");
  EXPECT_EQ(normalized->groups(0).backend(), "cpu:gloo,cuda:nccl");
  EXPECT_EQ(normalized->groups(1).backend(), "cuda:nccl");
  EXPECT_EQ(normalized->validation().allreduce_elements(), 7);
  EXPECT_EQ(normalized->validation().bandwidth_bytes(), int64_t{1} << 34);
}

TEST(TopologyValidatorTest, AcceptsEveryAllowedBackendString) {
  for (const char* backend :
       {"cpu:gloo", "cuda:nccl", "cpu:gloo,cuda:nccl", "cuda:nccl,cpu:gloo"}) {
    EXPECT_THAT(TopologyValidator::Normalize(Parse(Backend(backend))), IsOk()) << backend;
  }
}

TEST(TopologyValidatorTest, SortsExplicitListsByFirstMemberKeepingTheirOwnOrder) {
  absl::StatusOr<v1::Topology> normalized = TopologyValidator::Normalize(Valid(R"(
    groups {
      name: "custom"
      split_ranks { ranks: 5 ranks: 4 }
      split_ranks { ranks: 3 ranks: 0 }
      split_ranks { ranks: 1 ranks: 2 }
    }
  )"));
  ASSERT_THAT(normalized, IsOk());
  const v1::GroupSpec& group = normalized->groups(0);
  ASSERT_EQ(group.split_ranks_size(), 3);
  EXPECT_THAT(group.split_ranks(0).ranks(), ElementsAre(1, 2));
  EXPECT_THAT(group.split_ranks(1).ranks(), ElementsAre(3, 0));
  EXPECT_THAT(group.split_ranks(2).ranks(), ElementsAre(5, 4));
}

TEST(TopologyValidatorTest, ExplicitKindsMayShareRanks) {
  EXPECT_THAT(TopologyValidator::Normalize(Valid(R"(
    groups { name: "a" split_ranks { ranks: 0 ranks: 1 } split_ranks { ranks: 2 ranks: 3 } }
    groups { name: "b" split_ranks { ranks: 1 ranks: 2 } split_ranks { ranks: 3 ranks: 0 } }
  )")),
              IsOk());
}

TEST(TopologyValidatorTest, AcceptsBoundaryValues) {
  // A name of 63 characters with every allowed character class; world exactly 2^20.
  const std::string name = absl::StrCat("a.b_c-9", std::string(56, 'x'));
  v1::Topology topology = Parse(absl::StrCat("cluster: \"", name, "\"", R"(
      dims { name: "tp" size: 1 }
      dims { name: "dp" size: 1048576 }
      world_size: 1048576
      nodes { gpus_per_node: 1048576 count: 1 }
      validation { allreduce_elements: 67108864 })"));
  EXPECT_THAT(TopologyValidator::Normalize(topology), IsOk());
}

TEST(TopologyValidatorTest, AcceptsWorldSmallerThanOneNode) {
  EXPECT_THAT(TopologyValidator::Normalize(Valid("nodes { gpus_per_node: 16 }")), IsOk());
  EXPECT_THAT(TopologyValidator::Normalize(Valid("nodes { gpus_per_node: 4 count: 2 }")), IsOk());
}

TEST(TopologyValidatorTest, KeepsReadinessPreflightAndDeadlinesAsGiven) {
  absl::StatusOr<v1::Topology> normalized = TopologyValidator::Normalize(Valid(R"(
    readiness: "workload"
    preflight: false
    deadlines { bootstrap_ms: 0 split_ms: 30000 validate_ms: 86400000 workload_ms: 1 }
  )"));
  ASSERT_THAT(normalized, IsOk());
  EXPECT_EQ(normalized->readiness(), "workload");
  EXPECT_EQ(TopologyValidator::Readiness(*normalized), kReadinessWorkload);
  ASSERT_TRUE(normalized->has_preflight());
  EXPECT_FALSE(normalized->preflight());
  EXPECT_EQ(normalized->deadlines().split_ms(), 30000);
  EXPECT_EQ(normalized->deadlines().validate_ms(), 86400000);
  EXPECT_EQ(normalized->deadlines().workload_ms(), 1);
}

// Documents written before readiness existed normalize to the very same bytes, so the daemon
// still sees a re-applied document as unchanged.
TEST(TopologyValidatorTest, EmptyReadinessStaysEmptyAndMeansAgent) {
  absl::StatusOr<v1::Topology> normalized = TopologyValidator::Normalize(Valid(""));
  ASSERT_THAT(normalized, IsOk());
  EXPECT_EQ(normalized->readiness(), "");
  EXPECT_FALSE(normalized->has_preflight());
  EXPECT_FALSE(normalized->has_deadlines());
  EXPECT_EQ(TopologyValidator::Readiness(*normalized), kReadinessAgent);
  absl::StatusOr<v1::Topology> agent = TopologyValidator::Normalize(Valid(R"(readiness: "agent")"));
  ASSERT_THAT(agent, IsOk());
  EXPECT_EQ(TopologyValidator::Readiness(*agent), kReadinessAgent);
}

TEST(TopologyValidatorTest, StreamGraceIsKeptAsGivenAndBoundedByTheLease) {
  absl::StatusOr<v1::Topology> unset = TopologyValidator::Normalize(Valid(""));
  ASSERT_THAT(unset, IsOk());
  EXPECT_FALSE(unset->elastic().has_stream_grace_ms());
  EXPECT_EQ(TopologyValidator::StreamGrace(*unset), absl::Milliseconds(kDefaultStreamGraceMs));
  absl::StatusOr<v1::Topology> off =
      TopologyValidator::Normalize(Valid("elastic { stream_grace_ms: 0 }"));
  ASSERT_THAT(off, IsOk());
  EXPECT_TRUE(off->elastic().has_stream_grace_ms());
  EXPECT_EQ(TopologyValidator::StreamGrace(*off), absl::ZeroDuration());
  EXPECT_THAT(TopologyValidator::Normalize(
                  Valid("elastic { heartbeat_interval_ms: 100 lease_timeout_ms: 500 "
                        "stream_grace_ms: 500 }")),
              IsOk());
  absl::StatusOr<v1::Topology> short_lease = TopologyValidator::Normalize(
      Valid("elastic { heartbeat_interval_ms: 100 lease_timeout_ms: 500 }"));
  ASSERT_THAT(short_lease, IsOk());
  EXPECT_EQ(TopologyValidator::StreamGrace(*short_lease), absl::Milliseconds(500));
  EXPECT_THAT(
      TopologyValidator::Normalize(
          Valid("elastic { lease_timeout_ms: 2000 stream_grace_ms: 2001 }")),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("elastic.stream_grace_ms must be in [0, 2000] (the lease timeout), got "
                         "2001")));
  EXPECT_THAT(TopologyValidator::Normalize(Valid("elastic { stream_grace_ms: -1 }")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got -1")));
}

TEST(TopologyValidatorTest, RetriesAndTheirDelayHaveBounds) {
  absl::StatusOr<v1::Topology> off = TopologyValidator::Normalize(Valid(""));
  ASSERT_THAT(off, IsOk());
  EXPECT_EQ(off->elastic().retries(), 0);
  EXPECT_EQ(TopologyValidator::RetryDelay(*off), absl::Milliseconds(1000));
  EXPECT_THAT(TopologyValidator::Normalize(Valid("elastic { retries: 1001 }")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("elastic.retries must be in [0, 1000], got 1001")));
  EXPECT_THAT(TopologyValidator::Normalize(Valid("elastic { retry_delay_ms: -5 }")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("elastic.retry_delay_ms must be in [0, 3600000], got -5")));
}

TEST(TopologyValidatorTest, AcceptsGroupsOverAFurtherMesh) {
  absl::StatusOr<v1::Topology> normalized = TopologyValidator::Normalize(
      Valid(absl::StrCat(kExpertMesh, R"(groups { name: "ep" mesh: "expert" dims: "ep" })")));
  ASSERT_THAT(normalized, IsOk());
  EXPECT_EQ(normalized->groups(0).mesh(), "expert");
}

}  // namespace
}  // namespace splitd::plan
