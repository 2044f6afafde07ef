// Commits to the LogStateStore in argv[1] until killed. Cluster "job" gets members "pod-<i>"
// with i = 0, 1, 2, ... in commit order, continuing after the members the store already holds;
// each commit is a group of 1 to argv[3] such changes (sizes drawn from the seed argv[2]), now
// and then with a change between them that the store must refuse. After each commit returns,
// prints the highest i it acknowledged, one line each, flushed. Exits 1 on any unexpected
// status, and never on its own otherwise.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/store/log_state_store.h"
#include "daemon/store/records.h"
#include "daemon/store/state_store.h"

namespace splitd::store {
namespace {

constexpr char kCluster[] = "job";

StoredMember Member(int64_t index) {
  StoredMember member;
  member.identity.set_cluster(kCluster);
  member.identity.set_pod(absl::StrCat("pod-", index));
  member.identity.set_node(absl::StrCat("node-", index / 8));
  member.identity.set_host("10.0.0.1");
  member.identity.set_local_index(index % 8);
  member.identity.set_incarnation(absl::StrCat("inc-", index));
  member.capabilities.add_backends("cpu:gloo");
  member.session_token_sha256 = std::string(64, 'a');
  member.registered = absl::FromUnixSeconds(1000 + index);
  return member;
}

// A change whose first record applies and whose second (a report of an epoch the cluster is
// not at) does not: the store refuses it whole.
Change RefusedChange(int64_t index) {
  Change change;
  StoredMember member = Member(index);
  member.identity.set_pod(absl::StrCat("refused-", index));
  change.records.push_back(AddMemberRecord(kCluster, member));
  change.records.push_back(AddReportRecord(kCluster, 99, v1::ReportGroupStatusRequest()));
  return change;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "store_crash_writer: %s\n", what.c_str());
  return 1;
}

int Run(const std::string& dir, uint32_t seed, int max_group) {
  LogStoreOptions options;
  options.compact_after_bytes = 32 << 10;  // compactions happen under the kills too
  auto store = LogStateStore::Open(dir, options);
  if (!store.ok()) return Fail(store.status().ToString());
  auto clusters = (*store)->LoadClusters();
  if (!clusters.ok()) return Fail(clusters.status().ToString());
  int64_t next = 0;
  if (clusters->empty()) {
    ClusterRecord record;
    record.topology.set_cluster(kCluster);
    record.epoch = 1;
    if (absl::Status put = (*store)->PutCluster(record); !put.ok()) return Fail(put.ToString());
  } else {
    next = static_cast<int64_t>(clusters->front().members.size());
  }

  std::mt19937 random(seed);
  std::uniform_int_distribution<int> group_size(1, max_group);
  while (true) {
    const int size = group_size(random);
    const int refused_at = random() % 4 == 0 ? static_cast<int>(random() % (size + 1)) : -1;
    std::vector<Change> changes;
    for (int i = 0; i <= size; ++i) {
      if (i == refused_at) changes.push_back(RefusedChange(next + i));
      if (i == size) break;
      Change change;
      change.records.push_back(AddMemberRecord(kCluster, Member(next + i)));
      changes.push_back(std::move(change));
    }
    if (absl::Status committed = (*store)->Commit(absl::MakeSpan(changes)); !committed.ok()) {
      return Fail(committed.ToString());
    }
    for (const Change& change : changes) {
      const bool refused = change.records.size() == 2;
      if (refused != (change.status.code() == absl::StatusCode::kFailedPrecondition) ||
          (!refused && !change.status.ok())) {
        return Fail(absl::StrCat("unexpected status of a change: ", change.status.ToString()));
      }
    }
    next += size;
    std::printf("%lld\n", static_cast<long long>(next - 1));
    std::fflush(stdout);
  }
}

}  // namespace
}  // namespace splitd::store

int main(int argc, char** argv) {
  uint32_t seed = 0;
  int max_group = 0;
  if (argc != 4 || !absl::SimpleAtoi(argv[2], &seed) || !absl::SimpleAtoi(argv[3], &max_group) ||
      max_group < 1) {
    std::fprintf(stderr, "usage: store_crash_writer DIR SEED MAX_GROUP\n");
    return 2;
  }
  return splitd::store::Run(argv[1], seed, max_group);
}
