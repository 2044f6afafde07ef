// GPU test and benchmark of the NCCL builder's ShrinkWorld: one process per GPU (forked before
// any CUDA call), a file-based rendezvous space in a shared directory. Each repetition (shown
// for --world=4; --world=2 runs TP2, shrunk to a world of 1, for machines with 2 GPUs):
//
//   1. all 4 ranks bootstrap a world of 4, split TP2 PP2 and validate (all-reduce of ones);
//   2. rank 3 leaves: it aborts its communicators (a rank left out of the next plan) or, in the
//      last repetition, kills itself with SIGKILL (a dead peer);
//   3. ranks 0-2 shrink the world to 3 (ncclCommShrink with NCCL_SHRINK_ABORT), split it into
//      {0,1},{2} and {0,1,2} and validate every group;
//   4. ranks 0-2 bootstrap a fresh world of 3 (new unique id through the rendezvous, as a new
//      epoch without shrink does), split and validate the same groups.
//
// Steps 3 and 4 alternate their order between repetitions. Per repetition the time of a step
// is the slowest survivor's (the world is ready when its last rank is). Prints one line per
// repetition and a JSON summary (medians over the repetitions) as the last line; exit status 0
// only when every validation all-reduce equals its group size.
//
//   nccl_shrink_bench --nccl_library=PATH [--world=4] [--reps=5] [--dir=/tmp/shrink-bench]

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"
#include "worker/group_builder.h"
#include "worker/nccl/nccl_group_builder.h"
#include "worker/nccl/nccl_library.h"
#include "worker/rendezvous_client.h"

ABSL_FLAG(std::string, nccl_library, "libnccl.so.2", "NCCL to load");
ABSL_FLAG(int, reps, 5, "repetitions with the leaving rank aborting (one more kills it)");
ABSL_FLAG(std::string, dir, "/tmp/splitd-shrink-bench", "rendezvous and result directory");
ABSL_FLAG(bool, nonblocking, false, "create communicators with config.blocking = 0");
ABSL_FLAG(bool, shrink_with_abort, true, "NCCL_SHRINK_ABORT (else NCCL_SHRINK_DEFAULT)");
ABSL_FLAG(bool, kill_peer, true, "in one more repetition, the leaving rank dies by SIGKILL");
ABSL_FLAG(bool, debug, false, "log the builder's steps (spdlog debug)");
ABSL_FLAG(int, world, 4, "ranks (one GPU each): 4 (TP2 PP2, shrunk to 3) or 2 (TP2, shrunk to 1)");

namespace splitd::worker {
namespace {

// The world size (--world) and the rank that leaves (the last one).
int world_ranks = 4;
int leaving_rank = 3;
constexpr absl::Duration kTimeout = absl::Seconds(60);

// RendezvousClient over files in one directory, shared by processes of one machine: Set writes
// a file and renames it into place, Get polls for the files, Add keeps a counter under flock.
class FileRendezvous : public RendezvousClient {
 public:
  explicit FileRendezvous(std::string dir) : dir_(std::move(dir)) { mkdir(dir_.c_str(), 0755); }

  absl::Status Set(const std::string& key, const std::string& value) override {
    const std::string path = Path(key);
    const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
    {
      std::ofstream out(tmp, std::ios::binary);
      out.write(value.data(), static_cast<std::streamsize>(value.size()));
      if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot rename ", tmp));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                               absl::Duration timeout) override {
    const absl::Time deadline = absl::Now() + timeout;
    std::vector<std::string> values;
    for (const std::string& key : keys) {
      const std::string path = Path(key);
      while (access(path.c_str(), F_OK) != 0) {
        if (absl::Now() >= deadline) {
          return absl::DeadlineExceededError(absl::StrCat("key ", key, " not set in time"));
        }
        absl::SleepFor(absl::Microseconds(200));
      }
      std::ifstream in(path, std::ios::binary);
      std::stringstream buffer;
      buffer << in.rdbuf();
      values.push_back(buffer.str());
    }
    return values;
  }

  absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta) override {
    const std::string path = Path(key) + ".counter";
    const int fd = open(path.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", path));
    flock(fd, LOCK_EX);
    char text[32] = {0};
    const ssize_t got = pread(fd, text, sizeof(text) - 1, 0);
    const int64_t value = (got > 0 ? std::strtoll(text, nullptr, 10) : 0) + delta;
    const std::string out = std::to_string(value);
    if (ftruncate(fd, 0) != 0 ||
        pwrite(fd, out.data(), out.size(), 0) != static_cast<ssize_t>(out.size())) {
      flock(fd, LOCK_UN);
      close(fd);
      return absl::InternalError(absl::StrCat("cannot write ", path));
    }
    flock(fd, LOCK_UN);
    close(fd);
    return value;
  }

  // Returns once `count` processes reached barrier `name`.
  absl::Status Barrier(const std::string& name, int count) {
    absl::StatusOr<int64_t> arrived = Add(absl::StrCat("barrier/", name), 1);
    if (!arrived.ok()) return arrived.status();
    if (*arrived == count) {
      absl::Status set = Set(absl::StrCat("barrier/", name, "/done"), "1");
      if (!set.ok()) return set;
    }
    return Get({absl::StrCat("barrier/", name, "/done")}, kTimeout).status();
  }

 private:
  std::string Path(const std::string& key) const {
    return absl::StrCat(dir_, "/", absl::StrReplaceAll(key, {{"/", "_"}, {":", "_"}}));
  }

  std::string dir_;
};

GroupAssignment Group(std::string kind, int kind_index, int64_t index, std::vector<int32_t> members,
                      int rank) {
  GroupAssignment group;
  group.kind = std::move(kind);
  group.kind_index = kind_index;
  group.group_index = index;
  group.members = std::move(members);
  group.local_rank = static_cast<int>(std::find(group.members.begin(), group.members.end(), rank) -
                                      group.members.begin());
  return group;
}

// World of 4 as TP2 PP2 (rank = pp * 2 + tp); world of 2 as TP2.
WorldSpec WorldOf4(int64_t epoch, int rank) {
  WorldSpec spec;
  spec.cluster = "bench";
  spec.epoch = epoch;
  spec.rank = rank;
  spec.world_size = world_ranks;
  spec.method = "split";
  spec.kinds = {{0, "tp"}, {1, "pp"}};
  const int tp = rank % 2;
  const int pp = rank / 2;
  spec.groups = {Group("tp", 0, pp, {pp * 2, pp * 2 + 1}, rank),
                 Group("pp", 1, tp, {tp, tp + 2}, rank)};
  if (world_ranks == 2) {
    spec.world_size = 2;
    spec.kinds = {{0, "tp"}};
    spec.groups = {Group("tp", 0, 0, {0, 1}, rank)};
  }
  spec.device_index = rank;
  spec.allreduce_elements = 1024;
  spec.timeout = kTimeout;
  return spec;
}

// World of 3 (ranks 0-2 of the world of 4): pairs {0,1},{2} and all {0,1,2}; of 1: all {0}.
WorldSpec WorldOf3(int64_t epoch, int rank) {
  WorldSpec spec = WorldOf4(epoch, rank);
  spec.world_size = world_ranks - 1;
  if (world_ranks == 2) {
    spec.kinds = {{0, "all"}};
    spec.groups = {Group("all", 0, 0, {0}, rank)};
    return spec;
  }
  spec.kinds = {{0, "pair"}, {1, "all"}};
  spec.groups = {rank < 2 ? Group("pair", 0, 0, {0, 1}, rank) : Group("pair", 0, 1, {2}, rank),
                 Group("all", 1, 0, {0, 1, 2}, rank)};
  return spec;
}

// New rank r was rank r: the last rank leaves.
std::vector<int32_t> PreviousRanks() {
  std::vector<int32_t> ranks;
  for (int r = 0; r < world_ranks - 1; ++r) ranks.push_back(r);
  return ranks;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

// Forms and validates the groups of the world `builder` holds; the phase times.
struct Times {
  double world_ms = 0;  // shrink or fresh bootstrap
  double split_ms = 0;
  double validate_ms = 0;  // includes the lazy connection of every group
  double ready_ms = 0;     // all of it
};

absl::Status FormAndValidate(GroupBuilder* builder, const WorldSpec& spec,
                             RendezvousClient* rendezvous, absl::Time start, Times* times) {
  const absl::Time world = absl::Now();
  times->world_ms = Ms(world - start);
  absl::Status status = builder->FormGroups(spec, rendezvous);
  if (!status.ok()) return status;
  const absl::Time split = absl::Now();
  times->split_ms = Ms(split - world);
  absl::StatusOr<std::vector<GroupValidation>> results = builder->Validate(spec);
  if (!results.ok()) return results.status();
  times->validate_ms = Ms(absl::Now() - split);
  times->ready_ms = Ms(absl::Now() - start);
  for (const GroupValidation& v : *results) {
    if (!v.ok) {
      return absl::InternalError(absl::StrCat("epoch ", spec.epoch, " group ", v.kind, "/",
                                              v.group_index, ": ", v.error, " (value ",
                                              v.allreduce_value, ")"));
    }
  }
  return absl::OkStatus();
}

#define CHECK_OK(expr)                                                                    \
  do {                                                                                    \
    const absl::Status _status = (expr);                                                  \
    if (!_status.ok()) {                                                                  \
      std::fprintf(stderr, "rank %d: %s: %s\n", rank, #expr, _status.ToString().c_str()); \
      std::fflush(stderr);                                                                \
      _exit(1);                                                                           \
    }                                                                                     \
  } while (0)

// One rank's part of every repetition; writes "rep kill shrink... fresh..." lines to its file.
[[noreturn]] void RankMain(int rank, const std::string& dir, int reps) {
  nccl::LibraryOptions options;
  options.nccl_path = absl::GetFlag(FLAGS_nccl_library);
  absl::StatusOr<std::shared_ptr<const nccl::NcclLibrary>> library =
      nccl::NcclLibrary::Load(options);
  CHECK_OK(library.status());
  if (rank == 0) {
    std::printf("NCCL %s (%s), shrink %s, %d devices\n", (*library)->version_string().c_str(),
                (*library)->nccl_path().c_str(), (*library)->supports_shrink() ? "yes" : "no",
                (*library)->device_count());
    std::fflush(stdout);
  }
  NcclBuilderOptions builder_options;
  builder_options.nonblocking = absl::GetFlag(FLAGS_nonblocking);
  builder_options.shrink_with_abort = absl::GetFlag(FLAGS_shrink_with_abort);
  FileRendezvous control(absl::StrCat(dir, "/control"));
  std::ofstream results(absl::StrCat(dir, "/results-", rank, ".txt"));

  const bool kill_peer = absl::GetFlag(FLAGS_kill_peer);
  for (int rep = 0; rep < reps + (kill_peer ? 1 : 0); ++rep) {
    const bool kill = rep == reps;
    const int64_t base = 10 * (rep + 1);
    std::unique_ptr<GroupBuilder> held = MakeNcclGroupBuilder(*library, builder_options);
    FileRendezvous world4(absl::StrCat(dir, "/epoch-", base));
    const WorldSpec spec4 = WorldOf4(base, rank);
    Times formed4;
    const absl::Time start4 = absl::Now();
    CHECK_OK(held->BootstrapWorld(spec4, &world4));
    CHECK_OK(FormAndValidate(held.get(), spec4, &world4, start4, &formed4));
    CHECK_OK(control.Barrier(absl::StrCat("formed-", rep), world_ranks));

    if (rank == leaving_rank) {
      if (kill) raise(SIGKILL);  // a dead peer: nothing is torn down
      held->Abort();             // a rank left out of the next plan
      CHECK_OK(control.Barrier(absl::StrCat("done-", rep), world_ranks));
      continue;
    }

    auto shrink = [&](Times* times) {
      FileRendezvous rendezvous(absl::StrCat(dir, "/epoch-", base + 1));
      const WorldSpec spec3 = WorldOf3(base + 1, rank);
      CHECK_OK(control.Barrier(absl::StrCat("shrink-", rep), world_ranks - 1));
      const absl::Time start = absl::Now();
      CHECK_OK(held->ShrinkWorld(spec3, PreviousRanks(), &rendezvous));
      CHECK_OK(FormAndValidate(held.get(), spec3, &rendezvous, start, times));
      held->Release();
    };
    auto fresh = [&](Times* times) {
      std::unique_ptr<GroupBuilder> builder = MakeNcclGroupBuilder(*library, builder_options);
      FileRendezvous rendezvous(absl::StrCat(dir, "/epoch-", base + 2));
      const WorldSpec spec3 = WorldOf3(base + 2, rank);
      CHECK_OK(control.Barrier(absl::StrCat("fresh-", rep), world_ranks - 1));
      const absl::Time start = absl::Now();
      CHECK_OK(builder->BootstrapWorld(spec3, &rendezvous));
      CHECK_OK(FormAndValidate(builder.get(), spec3, &rendezvous, start, times));
      builder->Release();
    };
    Times shrunk;
    Times bootstrapped;
    if (rep % 2 == 0) {
      shrink(&shrunk);
      fresh(&bootstrapped);
    } else {
      fresh(&bootstrapped);
      shrink(&shrunk);
    }
    results << rep << " " << (kill ? 1 : 0) << " " << formed4.world_ms << " " << shrunk.world_ms
            << " " << shrunk.split_ms << " " << shrunk.validate_ms << " " << shrunk.ready_ms << " "
            << bootstrapped.world_ms << " " << bootstrapped.split_ms << " "
            << bootstrapped.validate_ms << " " << bootstrapped.ready_ms << "\n";
    results.flush();
    if (!kill) CHECK_OK(control.Barrier(absl::StrCat("done-", rep), world_ranks));
  }
  results.close();
  std::fflush(stdout);
  _exit(0);
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Columns of a results line after "rep kill", in RankMain's order.
constexpr int kColumns = 9;
constexpr const char* kColumnNames[kColumns] = {
    "world4_bootstrap_ms", "shrink_ms",         "shrink_split_ms",
    "shrink_validate_ms",  "shrink_ready_ms",   "fresh_bootstrap_ms",
    "fresh_split_ms",      "fresh_validate_ms", "fresh_ready_ms"};

// Forks one process per rank, each running RankMain; their pids by rank.
std::vector<pid_t> StartRanks(const std::string& dir, int reps) {
  std::vector<pid_t> children;
  for (int rank = 0; rank < world_ranks; ++rank) {
    const pid_t pid = fork();
    if (pid == 0) RankMain(rank, dir, reps);
    children.push_back(pid);
  }
  return children;
}

// Waits for every rank; false when one ended otherwise than expected (the leaving rank killed
// with --kill_peer, every other rank exited 0).
bool AwaitRanks(const std::vector<pid_t>& children) {
  bool ok = true;
  for (int rank = 0; rank < world_ranks; ++rank) {
    int status = 0;
    waitpid(children[rank], &status, 0);
    const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    const bool exited = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (rank == leaving_rank && absl::GetFlag(FLAGS_kill_peer) ? !killed : !exited) {
      std::printf("rank %d ended unexpectedly (status %d)\n", rank, status);
      ok = false;
    }
  }
  return ok;
}

// The survivors' results files, merged per repetition.
struct Results {
  std::map<int, std::vector<double>> slowest;  // rep -> columns
  std::map<int, int> kill_rep;                 // rep -> 1 when the leaving rank was killed
  std::map<int, int> rows;                     // rep -> survivors that reported it
};

// Per repetition, the slowest survivor's time of each column.
Results ReadResults(const std::string& dir) {
  Results results;
  for (int rank = 0; rank < leaving_rank; ++rank) {
    std::ifstream in(absl::StrCat(dir, "/results-", rank, ".txt"));
    int rep = 0;
    int kill = 0;
    while (in >> rep >> kill) {
      std::vector<double>& row = results.slowest[rep];
      row.resize(kColumns, 0);
      for (int c = 0; c < kColumns; ++c) {
        double value = 0;
        in >> value;
        row[c] = std::max(row[c], value);
      }
      results.kill_rep[rep] = kill;
      ++results.rows[rep];
    }
  }
  return results;
}

// Prints one line per repetition and collects the columns of the repetitions where the leaving
// rank aborted; false when a survivor did not report a repetition.
bool PrintRepetitions(const Results& results, std::vector<std::vector<double>>* abort_columns) {
  bool ok = true;
  for (const auto& [rep, row] : results.slowest) {
    const int rows = results.rows.at(rep);
    const int kill = results.kill_rep.at(rep);
    if (rows != leaving_rank) {
      std::printf("repetition %d: %d of %d survivors reported\n", rep, rows, leaving_rank);
      ok = false;
    }
    std::printf("rep %d (rank %d %s): ", rep, leaving_rank, kill ? "killed" : "aborted");
    for (int c = 0; c < kColumns; ++c) std::printf("%s %.1f  ", kColumnNames[c], row[c]);
    std::printf("\n");
    if (!kill) {
      for (int c = 0; c < kColumns; ++c) (*abort_columns)[c].push_back(row[c]);
    }
  }
  return ok;
}

// The summary line: medians over the aborting repetitions and, when it ran, the times of the
// repetition whose leaving rank was killed (repetition `reps`).
std::string SummaryJson(bool ok, int reps, const Results& results,
                        const std::vector<std::vector<double>>& abort_columns) {
  std::string json = absl::StrCat(
      "{\"ok\": ", ok ? "true" : "false", ", \"world\": ", world_ranks, ", \"shrink_flags\": \"",
      absl::GetFlag(FLAGS_shrink_with_abort) ? "abort" : "default", "\"",
      ", \"reps\": ", abort_columns[0].size(), ", \"medians\": {");
  for (int c = 0; c < kColumns; ++c) {
    absl::StrAppend(&json, c ? ", " : "", "\"", kColumnNames[c], "\": ", Median(abort_columns[c]));
  }
  absl::StrAppend(&json, "}");
  const auto killed = results.slowest.find(reps);
  if (killed != results.slowest.end()) {
    absl::StrAppend(&json, ", \"killed_peer\": {");
    for (int c = 0; c < kColumns; ++c) {
      absl::StrAppend(&json, c ? ", " : "", "\"", kColumnNames[c], "\": ", killed->second[c]);
    }
    absl::StrAppend(&json, "}");
  }
  absl::StrAppend(&json, "}");
  return json;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  spdlog::set_level(absl::GetFlag(FLAGS_debug) ? spdlog::level::debug : spdlog::level::info);
  const std::string dir = absl::GetFlag(FLAGS_dir);
  const int reps = absl::GetFlag(FLAGS_reps);
  world_ranks = absl::GetFlag(FLAGS_world);
  if (world_ranks != 2 && world_ranks != 4) {
    std::printf("--world must be 2 or 4, got %d\n", world_ranks);
    return 2;
  }
  leaving_rank = world_ranks - 1;
  std::system(absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'").c_str());

  bool ok = AwaitRanks(StartRanks(dir, reps));
  const Results results = ReadResults(dir);
  std::vector<std::vector<double>> abort_columns(kColumns);
  ok = PrintRepetitions(results, &abort_columns) && ok;
  if (static_cast<int>(results.slowest.size()) != reps + (absl::GetFlag(FLAGS_kill_peer) ? 1 : 0)) {
    ok = false;
  }
  std::printf("%s\n", SummaryJson(ok, reps, results, abort_columns).c_str());
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace splitd::worker

int main(int argc, char** argv) { return splitd::worker::Main(argc, argv); }
