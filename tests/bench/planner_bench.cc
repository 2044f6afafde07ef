// Times SplitPlanner::Build (which includes the fingerprint) and PlanFingerprint::Compute alone
// on the largest world splitd accepts: 1,048,576 ranks, TP8 PP16 DP8192, kinds tp, pp, dp and
// the composite ep = [tp, dp]. Prints plain "name: value" lines.

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "plan/plan_fingerprint.h"
#include "plan/split_planner.h"
#include "splitd/v1/topology.pb.h"

namespace {

constexpr int kRuns = 5;

splitd::v1::Topology LargestTopology() {
  splitd::v1::Topology topology;
  topology.set_cluster("bench");
  const std::pair<const char*, int64_t> dims[] = {{"tp", 8}, {"pp", 16}, {"dp", 8192}};
  for (const auto& [name, size] : dims) {
    splitd::v1::Dim* dim = topology.add_dims();
    dim->set_name(name);
    dim->set_size(size);
  }
  topology.mutable_nodes()->set_gpus_per_node(8);
  const std::vector<std::vector<std::string>> groups = {{"tp"}, {"pp"}, {"dp"}, {"tp", "dp"}};
  const char* names[] = {"tp", "pp", "dp", "ep"};
  for (size_t i = 0; i < groups.size(); ++i) {
    splitd::v1::GroupSpec* group = topology.add_groups();
    group->set_name(names[i]);
    for (const std::string& dim : groups[i]) group->add_dims(dim);
  }
  topology.mutable_groups(0)->set_local("node");
  return topology;
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

void Report(const char* what, std::vector<double> seconds) {
  std::sort(seconds.begin(), seconds.end());
  std::printf("%s_median_ms: %.1f\n", what, seconds[seconds.size() / 2] * 1e3);
  std::printf("%s_min_ms: %.1f\n", what, seconds.front() * 1e3);
}

}  // namespace

int main() {
  const splitd::v1::Topology topology = LargestTopology();
  std::vector<double> build_seconds;
  std::vector<double> fingerprint_seconds;
  std::string fingerprint;
  for (int run = 0; run < kRuns; ++run) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<splitd::plan::SplitPlan> plan = splitd::plan::SplitPlanner::Build(topology, 1);
    const auto built = std::chrono::steady_clock::now();
    if (!plan.ok()) {
      std::fprintf(stderr, "Build failed: %s\n", plan.status().ToString().c_str());
      return 1;
    }
    const std::string again = splitd::plan::PlanFingerprint::Compute(*plan);
    const auto hashed = std::chrono::steady_clock::now();
    if (again != plan->fingerprint) {
      std::fprintf(stderr, "fingerprint mismatch: %s vs %s\n", again.c_str(),
                   plan->fingerprint.c_str());
      return 1;
    }
    fingerprint = again;
    build_seconds.push_back(Seconds(built - start));
    fingerprint_seconds.push_back(Seconds(hashed - built));
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("world_size: %lld\n", static_cast<long long>(int64_t{1} << 20));
  std::printf("group_kinds: tp pp dp ep=[tp,dp]\n");
  std::printf("runs: %d\n", kRuns);
  Report("build_with_fingerprint", build_seconds);
  Report("fingerprint_alone", fingerprint_seconds);
  std::printf("peak_rss_mib: %.1f\n", static_cast<double>(usage.ru_maxrss) / 1024.0);
  std::printf("fingerprint: %s\n", fingerprint.c_str());
  return 0;
}
