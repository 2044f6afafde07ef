#include "plan/split_planner.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "plan/topology_validator.h"
#include "splitd/v1/topology.pb.h"

namespace splitd::plan {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Groups = std::vector<std::vector<int64_t>>;

v1::Topology Parse(const std::string& text) {
  v1::Topology topology;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &topology)) << text;
  return topology;
}

// Builds a topology from "name=size" dims (innermost first) and "name=dim+dim" groups.
v1::Topology Make(const std::vector<std::string>& dims, const std::vector<std::string>& groups) {
  v1::Topology topology;
  topology.set_cluster("job");
  for (const std::string& spec : dims) {
    std::vector<std::string> parts = absl::StrSplit(spec, '=');
    v1::Dim* dim = topology.add_dims();
    dim->set_name(parts[0]);
    dim->set_size(std::stoll(parts[1]));
  }
  for (const std::string& spec : groups) {
    std::vector<std::string> parts = absl::StrSplit(spec, '=');
    v1::GroupSpec* group = topology.add_groups();
    group->set_name(parts[0]);
    for (absl::string_view dim : absl::StrSplit(parts[1], '+')) group->add_dims(std::string(dim));
  }
  return topology;
}

// Adds a further mesh of "name=size" dims.
void AddMesh(const std::string& name, const std::vector<std::string>& dims,
             v1::Topology* topology) {
  v1::Mesh* mesh = topology->add_meshes();
  mesh->set_name(name);
  for (const std::string& spec : dims) {
    std::vector<std::string> parts = absl::StrSplit(spec, '=');
    v1::Dim* dim = mesh->add_dims();
    dim->set_name(parts[0]);
    dim->set_size(std::stoll(parts[1]));
  }
}

void AddMeshGroup(const std::string& name, const std::string& mesh,
                  const std::vector<std::string>& dims, v1::Topology* topology) {
  v1::GroupSpec* group = topology->add_groups();
  group->set_name(name);
  group->set_mesh(mesh);
  for (const std::string& dim : dims) group->add_dims(dim);
}

Groups GroupsOf(const SplitPlan& plan, const std::string& kind_name) {
  const GroupKind* kind = plan.FindKind(kind_name);
  EXPECT_NE(kind, nullptr) << kind_name;
  if (kind == nullptr) return {};
  Groups groups;
  for (int64_t g = 0; g < kind->group_count(); ++g) {
    const auto members = kind->group(g);
    groups.emplace_back(members.begin(), members.end());
  }
  return groups;
}

Groups Sorted(Groups groups) {
  std::sort(groups.begin(), groups.end());
  return groups;
}

// Reference for vLLM: rows of arange(prod(shape)).reshape(shape).transpose(a, b).reshape(-1, n),
// the way NumPy and torch lay the elements out (row-major, last axis fastest). No transpose
// when a == b.
Groups NumpyGroups(const std::vector<int64_t>& shape, int a, int b, int64_t n) {
  std::vector<int> perm(shape.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int>(i);
  std::swap(perm[static_cast<size_t>(a)], perm[static_cast<size_t>(b)]);
  std::vector<int64_t> strides(shape.size(), 1);  // row-major strides of the original array
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) {
    strides[static_cast<size_t>(i)] =
        strides[static_cast<size_t>(i) + 1] * shape[static_cast<size_t>(i) + 1];
  }
  std::vector<int64_t> tshape(shape.size());
  for (size_t j = 0; j < shape.size(); ++j) tshape[j] = shape[static_cast<size_t>(perm[j])];
  int64_t total = 1;
  for (int64_t s : shape) total *= s;
  std::vector<int64_t> flat;
  std::vector<int64_t> index(shape.size(), 0);  // multi-index into the transposed array
  for (int64_t step = 0; step < total; ++step) {
    int64_t value = 0;
    for (size_t j = 0; j < shape.size(); ++j)
      value += index[j] * strides[static_cast<size_t>(perm[j])];
    flat.push_back(value);
    for (int j = static_cast<int>(shape.size()) - 1; j >= 0; --j) {
      if (++index[static_cast<size_t>(j)] < tshape[static_cast<size_t>(j)]) break;
      index[static_cast<size_t>(j)] = 0;
    }
  }
  Groups groups;
  for (size_t i = 0; i < flat.size(); i += static_cast<size_t>(n)) {
    groups.emplace_back(flat.begin() + static_cast<int64_t>(i),
                        flat.begin() + static_cast<int64_t>(i) + n);
  }
  return groups;
}

// Reference for Megatron-Core: generate_masked_orthogonal_rank_groups(world, sizes, mask).
Groups MegatronGroups(int64_t world, const std::vector<int64_t>& sizes,
                      const std::vector<bool>& mask) {
  auto prefix_product = [](const std::vector<int64_t>& a) {
    std::vector<int64_t> r = {1};
    for (int64_t v : a) r.push_back(r.back() * v);
    return r;
  };
  auto decompose = [&](int64_t index, const std::vector<int64_t>& shape) {
    const std::vector<int64_t> stride = prefix_product(shape);
    std::vector<int64_t> idx;
    for (size_t i = 0; i < shape.size(); ++i) idx.push_back((index / stride[i]) % shape[i]);
    return idx;
  };
  auto inner_product = [](const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
    int64_t sum = 0;
    for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
    return sum;
  };
  std::vector<int64_t> masked_shape, unmasked_shape, masked_stride, unmasked_stride;
  const std::vector<int64_t> global_stride = prefix_product(sizes);
  for (size_t i = 0; i < sizes.size(); ++i) {
    (mask[i] ? masked_shape : unmasked_shape).push_back(sizes[i]);
    (mask[i] ? masked_stride : unmasked_stride).push_back(global_stride[i]);
  }
  const int64_t group_size = prefix_product(masked_shape).back();
  Groups groups;
  for (int64_t group_index = 0; group_index < world / group_size; ++group_index) {
    const std::vector<int64_t> group_idx = decompose(group_index, unmasked_shape);
    std::vector<int64_t> ranks;
    for (int64_t rank_in_group = 0; rank_in_group < group_size; ++rank_in_group) {
      ranks.push_back(inner_product(decompose(rank_in_group, masked_shape), masked_stride) +
                      inner_product(group_idx, unmasked_stride));
    }
    groups.push_back(ranks);
  }
  return groups;
}

// Megatron's RankGenerator.get_ranks(token) over order "tp-cp-ep-dp-pp".
Groups MegatronRanks(int64_t tp, int64_t cp, int64_t ep, int64_t dp, int64_t pp,
                     const std::string& token) {
  const std::vector<std::string> order = {"tp", "cp", "ep", "dp", "pp"};
  const std::vector<std::string> parts = absl::StrSplit(token, '-');
  std::vector<bool> mask;
  for (const std::string& name : order) {
    mask.push_back(std::find(parts.begin(), parts.end(), name) != parts.end());
  }
  return MegatronGroups(tp * cp * ep * dp * pp, {tp, cp, ep, dp, pp}, mask);
}

// Every structural property of a plan: partitions, lookups, canonical order.
void ExpectConsistent(const SplitPlan& plan) {
  for (const GroupKind& kind : plan.kinds) {
    SCOPED_TRACE(kind.name);
    ASSERT_EQ(kind.group_of_rank.size(), static_cast<size_t>(plan.world_size));
    ASSERT_EQ(kind.offsets.front(), 0);
    ASSERT_EQ(kind.offsets.back(), static_cast<int64_t>(kind.ranks.size()));
    for (int64_t g = 0; g < kind.group_count(); ++g) {
      const auto members = kind.group(g);
      ASSERT_FALSE(members.empty());
      if (g > 0) {
        EXPECT_LT(kind.group(g - 1)[0], members[0]) << "groups not sorted";
      }
      if (!kind.explicit_lists) {
        EXPECT_TRUE(std::is_sorted(members.begin(), members.end()));
      }
      for (int32_t member : members) EXPECT_EQ(kind.group_of_rank[member], g);
    }
    if (!kind.explicit_lists) {
      EXPECT_EQ(kind.ranks.size(), static_cast<size_t>(plan.world_size));
    }
  }
}

void ExpectMembersOfAgrees(const SplitPlan& plan) {
  for (int k = 0; k < static_cast<int>(plan.kinds.size()); ++k) {
    const GroupKind& kind = plan.kinds[static_cast<size_t>(k)];
    for (int64_t rank = 0; rank < plan.world_size; ++rank) {
      const int32_t g = kind.group_of_rank[static_cast<size_t>(rank)];
      std::vector<int32_t> expected;
      if (g >= 0) expected.assign(kind.group(g).begin(), kind.group(g).end());
      ASSERT_EQ(SplitPlanner::MembersOf(plan.topology, k, rank), expected)
          << kind.name << " rank " << rank;
    }
  }
}

SplitPlan BuildOrDie(const v1::Topology& topology) {
  absl::StatusOr<SplitPlan> plan = SplitPlanner::Build(topology, 1);
  EXPECT_THAT(plan, IsOk());
  return plan.ok() ? *std::move(plan) : SplitPlan{};
}

TEST(SplitPlannerTest, VllmWorldEightGolden) {
  const SplitPlan plan = BuildOrDie(
      Make({"tp=2", "pcp=1", "pp=2", "dp=2"}, {"tp=tp", "pp=pp", "dp=dp", "ep=tp+pcp+dp"}));
  EXPECT_EQ(GroupsOf(plan, "tp"), (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(GroupsOf(plan, "pp"), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(GroupsOf(plan, "dp"), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(GroupsOf(plan, "ep"), (Groups{{0, 1, 4, 5}, {2, 3, 6, 7}}));
  EXPECT_EQ(plan.world_size, 8);
  EXPECT_EQ(plan.epoch, 1);
  EXPECT_EQ(plan.cluster, "job");
  EXPECT_EQ(plan.method, "split");
  EXPECT_EQ(plan.fingerprint.size(), 64u);
}

TEST(SplitPlannerTest, MegatronWorldEightGolden) {
  const SplitPlan plan =
      BuildOrDie(Make({"tp=2", "cp=1", "ep=1", "dp=2", "pp=2"}, {"tp=tp", "dp=dp", "pp=pp"}));
  EXPECT_EQ(GroupsOf(plan, "tp"), (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(GroupsOf(plan, "dp"), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(GroupsOf(plan, "pp"), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
}

TEST(SplitPlannerTest, ReferencesAgreeWithTheGoldens) {
  // The reference functions themselves reproduce the world-8 tables of docs/plan-format.md.
  const std::vector<int64_t> vllm = {1, 2, 2, 1, 2};  // (edp, DP, PP, PCP, TP)
  EXPECT_EQ(Sorted(NumpyGroups(vllm, 2, 4, 2)), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(Sorted(NumpyGroups(vllm, 1, 2, 4)), (Groups{{0, 1, 4, 5}, {2, 3, 6, 7}}));
  EXPECT_EQ(MegatronRanks(2, 1, 1, 2, 2, "dp"), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
}

struct VllmShape {
  int64_t tp, pcp, pp, dp, edp;
};

class VllmLayoutTest : public ::testing::TestWithParam<VllmShape> {};

TEST_P(VllmLayoutTest, MatchesTorchReshapeTranspose) {
  const VllmShape s = GetParam();
  const SplitPlan plan = BuildOrDie(
      Make({absl::StrCat("tp=", s.tp), absl::StrCat("pcp=", s.pcp), absl::StrCat("pp=", s.pp),
            absl::StrCat("dp=", s.dp), absl::StrCat("edp=", s.edp)},
           {"tp=tp", "pcp=pcp", "pp=pp", "dp=dp", "ep=tp+pcp+dp", "edp=edp"}));
  // all_ranks = arange(world).reshape(-1, DP, PP, PCP, TP)
  const std::vector<int64_t> shape = {s.edp, s.dp, s.pp, s.pcp, s.tp};
  EXPECT_EQ(GroupsOf(plan, "tp"), NumpyGroups(shape, 4, 4, s.tp));
  EXPECT_EQ(GroupsOf(plan, "pcp"), Sorted(NumpyGroups(shape, 3, 4, s.pcp)));
  EXPECT_EQ(GroupsOf(plan, "pp"), Sorted(NumpyGroups(shape, 2, 4, s.pp)));
  EXPECT_EQ(GroupsOf(plan, "dp"), Sorted(NumpyGroups(shape, 1, 4, s.dp)));
  EXPECT_EQ(GroupsOf(plan, "ep"), Sorted(NumpyGroups(shape, 1, 2, s.dp * s.pcp * s.tp)));
  EXPECT_EQ(GroupsOf(plan, "edp"), Sorted(NumpyGroups(shape, 0, 4, s.edp)));
  ExpectConsistent(plan);
  ExpectMembersOfAgrees(plan);
}

INSTANTIATE_TEST_SUITE_P(Shapes, VllmLayoutTest,
                         ::testing::Values(VllmShape{2, 2, 2, 2, 1}, VllmShape{4, 1, 2, 2, 2},
                                           VllmShape{2, 1, 2, 2, 1}, VllmShape{2, 3, 2, 2, 2},
                                           VllmShape{8, 2, 4, 2, 2}));

struct MegatronShape {
  int64_t tp, cp, dp, pp;  // decoder mesh (ep = 1)
  int64_t etp, ep, edp;    // expert mesh (cp = 1), etp * ep * edp * pp = world
};

class MegatronLayoutTest : public ::testing::TestWithParam<MegatronShape> {};

TEST_P(MegatronLayoutTest, MatchesRankGenerator) {
  const MegatronShape s = GetParam();
  v1::Topology topology = Make({absl::StrCat("tp=", s.tp), absl::StrCat("cp=", s.cp),
                                absl::StrCat("dp=", s.dp), absl::StrCat("pp=", s.pp)},
                               {"tp=tp", "cp=cp", "dp=dp", "pp=pp", "tp-dp=tp+dp", "dp-cp=dp+cp",
                                "tp-pp=tp+pp", "tp-cp=cp+tp"});
  AddMesh("expert",
          {absl::StrCat("etp=", s.etp), absl::StrCat("ep=", s.ep), absl::StrCat("edp=", s.edp),
           absl::StrCat("pp=", s.pp)},
          &topology);
  AddMeshGroup("etp", "expert", {"etp"}, &topology);
  AddMeshGroup("ep", "expert", {"ep"}, &topology);
  AddMeshGroup("edp", "expert", {"edp"}, &topology);
  AddMeshGroup("epp", "expert", {"pp"}, &topology);
  AddMeshGroup("tp-ep", "expert", {"etp", "ep"}, &topology);
  const SplitPlan plan = BuildOrDie(topology);

  auto decoder = [&](const std::string& token) {
    return Sorted(MegatronRanks(s.tp, s.cp, 1, s.dp, s.pp, token));
  };
  auto expert = [&](const std::string& token) {
    return Sorted(MegatronRanks(s.etp, 1, s.ep, s.edp, s.pp, token));
  };
  EXPECT_EQ(GroupsOf(plan, "tp"), decoder("tp"));
  EXPECT_EQ(GroupsOf(plan, "cp"), decoder("cp"));
  EXPECT_EQ(GroupsOf(plan, "dp"), decoder("dp"));
  EXPECT_EQ(GroupsOf(plan, "pp"), decoder("pp"));
  EXPECT_EQ(GroupsOf(plan, "tp-dp"), decoder("tp-dp"));
  EXPECT_EQ(GroupsOf(plan, "dp-cp"), decoder("dp-cp"));
  EXPECT_EQ(GroupsOf(plan, "tp-pp"), decoder("tp-pp"));
  EXPECT_EQ(GroupsOf(plan, "tp-cp"), decoder("tp-cp"));
  EXPECT_EQ(GroupsOf(plan, "etp"), expert("tp"));
  EXPECT_EQ(GroupsOf(plan, "ep"), expert("ep"));
  EXPECT_EQ(GroupsOf(plan, "edp"), expert("dp"));
  EXPECT_EQ(GroupsOf(plan, "tp-ep"), expert("tp-ep"));
  EXPECT_EQ(GroupsOf(plan, "epp"), expert("pp"));
  // Both meshes share their pipeline stages.
  EXPECT_EQ(GroupsOf(plan, "epp"), GroupsOf(plan, "pp"));
  ExpectConsistent(plan);
  ExpectMembersOfAgrees(plan);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MegatronLayoutTest,
                         ::testing::Values(MegatronShape{2, 2, 2, 2, 1, 4, 2},
                                           MegatronShape{2, 2, 2, 2, 2, 2, 2},
                                           MegatronShape{2, 1, 2, 2, 1, 2, 2},
                                           MegatronShape{4, 2, 3, 2, 2, 4, 3},
                                           MegatronShape{1, 1, 8, 1, 1, 8, 1}));

TEST(SplitPlannerTest, ExplicitListsKeepTheirOrderAndAreSortedByFirstMember) {
  const SplitPlan plan = BuildOrDie(Parse(R"pb(
    cluster: "job"
    dims { name: "tp" size: 2 }
    dims { name: "pp" size: 2 }
    dims { name: "dp" size: 2 }
    groups { name: "tp" dims: "tp" }
    groups {
      name: "custom"
      split_ranks { ranks: 4 ranks: 7 }
      split_ranks { ranks: 0 ranks: 3 }
      split_ranks { ranks: 6 ranks: 5 }
    }
  )pb"));
  const GroupKind* custom = plan.FindKind("custom");
  ASSERT_NE(custom, nullptr);
  EXPECT_TRUE(custom->explicit_lists);
  EXPECT_TRUE(custom->dims.empty());
  EXPECT_EQ(GroupsOf(plan, "custom"), (Groups{{0, 3}, {4, 7}, {6, 5}}));
  EXPECT_THAT(custom->group_of_rank, ElementsAre(0, -1, -1, 0, 1, 2, 2, 1));
  ExpectConsistent(plan);
  ExpectMembersOfAgrees(plan);
}

TEST(SplitPlannerTest, FillsKindFieldsFromTheNormalizedTopology) {
  v1::Topology topology = Make({"tp=2", "dp=4"}, {"tp=tp", "dp=dp"});
  topology.set_backend("cuda:nccl");
  topology.mutable_groups(0)->set_backend("cpu:gloo,cuda:nccl");
  topology.mutable_groups(0)->set_local("node");
  topology.mutable_nodes()->set_gpus_per_node(2);
  topology.set_method("init");
  const SplitPlan plan = BuildOrDie(topology);
  ASSERT_EQ(plan.kinds.size(), 2u);
  EXPECT_EQ(plan.method, "init");
  EXPECT_EQ(plan.kinds[0].backend, "cpu:gloo,cuda:nccl");
  EXPECT_EQ(plan.kinds[0].local, "node");
  EXPECT_EQ(plan.kinds[1].backend, "cuda:nccl");
  EXPECT_THAT(plan.kinds[1].dims, ElementsAre("dp"));
  EXPECT_EQ(plan.topology.world_size(), 8);
}

TEST(SplitPlannerTest, DefaultGroupsAreOnePerDim) {
  const SplitPlan plan = BuildOrDie(Make({"tp=2", "pp=2", "dp=2"}, {}));
  ASSERT_EQ(plan.kinds.size(), 3u);
  EXPECT_EQ(plan.kinds[2].name, "dp");
  EXPECT_EQ(GroupsOf(plan, "dp"), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
}

TEST(SplitPlannerTest, RefusesEpochBelowOne) {
  EXPECT_THAT(SplitPlanner::Build(Make({"tp=2"}, {}), 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("epoch must be >= 1, got 0")));
}

TEST(SplitPlannerTest, PropagatesValidationErrors) {
  EXPECT_THAT(
      SplitPlanner::Build(Make({"tp=2", "pp=0"}, {}), 1),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dims[1].size must be >= 1, got 0")));
  EXPECT_THAT(SplitPlanner::Build(Parse(R"pb(
                                    cluster: "job"
                                    dims { name: "tp" size: 4 }
                                    groups {
                                      name: "c"
                                      split_ranks { ranks: 0 ranks: 1 }
                                      split_ranks { ranks: 1 }
                                    }
                                  )pb"),
                                  1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("groups[0].split_ranks[1][0]: rank 1 is already in "
                                 "groups[0].split_ranks[0]")));
}

TEST(SplitPlannerTest, NodeLocalGroupsStayInsideANode) {
  v1::Topology topology = Make({"tp=2", "pp=2", "dp=2"}, {"tp=tp", "pp=pp"});
  topology.mutable_nodes()->set_gpus_per_node(2);
  topology.mutable_groups(0)->set_local("node");
  EXPECT_THAT(SplitPlanner::Build(topology, 1), IsOk());
  topology.mutable_groups(1)->set_local("node");
  EXPECT_THAT(SplitPlanner::Build(topology, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("groups[1] (pp): group [0, 2] crosses a node boundary "
                                 "(gpus_per_node 2)")));
  // A world smaller than one node is one node.
  topology.mutable_nodes()->set_gpus_per_node(16);
  EXPECT_THAT(SplitPlanner::Build(topology, 1), IsOk());
}

TEST(SplitPlannerTest, NodeLocalExplicitListsAreCheckedWhateverTheirOrder) {
  v1::Topology topology = Parse(R"pb(
    cluster: "job"
    dims { name: "tp" size: 8 }
    nodes { gpus_per_node: 4 }
    groups {
      name: "c"
      local: "node"
      split_ranks { ranks: 1 ranks: 0 }
      split_ranks { ranks: 3 ranks: 4 }
    }
  )pb");
  EXPECT_THAT(SplitPlanner::Build(topology, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("groups[0] (c): group [3, 4] crosses a node boundary "
                                 "(gpus_per_node 4)")));
  topology.mutable_groups(0)->mutable_split_ranks(1)->set_ranks(0, 7);
  topology.mutable_groups(0)->mutable_split_ranks(1)->set_ranks(1, 2);
  EXPECT_THAT(SplitPlanner::Build(topology, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("group [7, 2] crosses a node boundary")));
  topology.mutable_groups(0)->mutable_split_ranks(1)->set_ranks(0, 3);
  EXPECT_THAT(SplitPlanner::Build(topology, 1), IsOk());
}

TEST(SplitPlannerTest, LongGroupsAreAbbreviatedInMessages) {
  v1::Topology topology = Make({"tp=64", "dp=2"}, {"dp=tp+dp"});
  topology.mutable_nodes()->set_gpus_per_node(64);
  topology.mutable_groups(0)->set_local("node");
  EXPECT_THAT(SplitPlanner::Build(topology, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("group [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, "
                                 "... (128 members)] crosses")));
}

TEST(SplitPlannerTest, MembersOfAgreesOnAssortedShapes) {
  for (const auto& [dims, groups] :
       std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>{
           {{"a=3", "b=5", "c=2"}, {"a=a", "b=b", "c=c", "ac=a+c", "ca=c+a", "abc=a+b+c"}},
           {{"x=1", "y=7", "z=1"}, {"x=x", "y=y", "xz=x+z"}},
           {{"tp=8", "pp=4", "dp=8"}, {"tp=tp", "pp=pp", "dp=dp", "ep=tp+dp", "mp=tp+pp"}}}) {
    const SplitPlan plan = BuildOrDie(Make(dims, groups));
    ExpectConsistent(plan);
    ExpectMembersOfAgrees(plan);
  }
}

// docs/plan-format.md, "Per-rank (color, key)": for a generated kind, color is the mixed-radix
// index of the coordinates outside the group dims and key that of the coordinates inside, both
// innermost first. The plan's canonical group index and local rank must be exactly those.
TEST(SplitPlannerTest, ColorAndKeyFollowTheDocumentedFormula) {
  v1::Topology topology = Make({"tp=4", "cp=2", "dp=3", "pp=2"},
                               {"tp=tp", "dp=dp", "pp=pp", "tp-dp=dp+tp", "cp-pp=pp+cp"});
  AddMesh("expert", {"etp=2", "ep=6", "pp=4"}, &topology);
  AddMeshGroup("ep", "expert", {"ep"}, &topology);
  const SplitPlan plan = BuildOrDie(topology);
  for (int k = 0; k < plan.topology.groups_size(); ++k) {
    const v1::GroupSpec& spec = plan.topology.groups(k);
    const auto& dims = spec.mesh().empty() ? plan.topology.dims() : plan.topology.meshes(0).dims();
    const GroupKind& kind = plan.kinds[static_cast<size_t>(k)];
    for (int64_t rank = 0; rank < plan.world_size; ++rank) {
      int64_t stride = 1, color = 0, color_radix = 1, key = 0, key_radix = 1;
      for (const v1::Dim& dim : dims) {
        const int64_t c = (rank / stride) % dim.size();
        const bool in_group =
            std::find(spec.dims().begin(), spec.dims().end(), dim.name()) != spec.dims().end();
        if (in_group) {
          key += c * key_radix;
          key_radix *= dim.size();
        } else {
          color += c * color_radix;
          color_radix *= dim.size();
        }
        stride *= dim.size();
      }
      ASSERT_EQ(kind.group_of_rank[static_cast<size_t>(rank)], color) << kind.name << " " << rank;
      ASSERT_EQ(kind.group(color)[static_cast<size_t>(key)], rank) << kind.name << " " << rank;
    }
  }
}

TEST(SplitPlannerTest, MembersOfOutOfRangeIsEmpty) {
  const SplitPlan plan = BuildOrDie(Make({"tp=2", "dp=2"}, {}));
  EXPECT_TRUE(SplitPlanner::MembersOf(plan.topology, 0, 4).empty());
  EXPECT_TRUE(SplitPlanner::MembersOf(plan.topology, 0, -1).empty());
  EXPECT_TRUE(SplitPlanner::MembersOf(plan.topology, 2, 0).empty());
  EXPECT_TRUE(SplitPlanner::MembersOf(plan.topology, -1, 0).empty());
  EXPECT_THAT(SplitPlanner::MembersOf(plan.topology, 1, 3), ElementsAre(1, 3));
}

TEST(SplitPlannerTest, BuildsTheLargestWorld) {
  const SplitPlan plan =
      BuildOrDie(Make({"tp=8", "pp=16", "dp=8192"}, {"tp=tp", "pp=pp", "dp=dp", "ep=tp+dp"}));
  ASSERT_EQ(plan.world_size, int64_t{1} << 20);
  EXPECT_EQ(plan.FindKind("tp")->group_count(), 131072);
  EXPECT_EQ(plan.FindKind("pp")->group_count(), 65536);
  EXPECT_EQ(plan.FindKind("dp")->group_count(), 128);
  EXPECT_EQ(plan.FindKind("ep")->group_count(), 16);
  const GroupKind& pp = *plan.FindKind("pp");
  EXPECT_THAT(pp.group(pp.group_of_rank[1048575]),
              ElementsAre(1048455, 1048463, 1048471, 1048479, 1048487, 1048495, 1048503, 1048511,
                          1048519, 1048527, 1048535, 1048543, 1048551, 1048559, 1048567, 1048575));
  for (int k = 0; k < 4; ++k) {
    for (int64_t rank : {int64_t{0}, int64_t{12345}, int64_t{1048575}}) {
      const GroupKind& kind = plan.kinds[static_cast<size_t>(k)];
      const auto group = kind.group(kind.group_of_rank[static_cast<size_t>(rank)]);
      EXPECT_EQ(SplitPlanner::MembersOf(plan.topology, k, rank),
                std::vector<int32_t>(group.begin(), group.end()));
    }
  }
}

}  // namespace
}  // namespace splitd::plan
