#include "daemon/store/log_state_store.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_matchers.h"
#include "daemon/store/memory_state_store.h"
#include "daemon/store/records.h"
#include "daemon/store/state_store_conformance.h"
#include "daemon/store/store_state.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/spdlog.h"
#include "tests/testing/temp_files.h"

namespace splitd::store {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// Bytes before the log's first record: magic, version, kind.
constexpr size_t kLogHeaderBytes = 21;

off_t FileSize(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return -1;
  return info.st_size;
}

LogStoreOptions NoSync() {
  LogStoreOptions options;
  options.sync = false;
  return options;
}

std::unique_ptr<LogStateStore> OpenOrDie(const std::string& dir, LogStoreOptions options = {}) {
  auto store = LogStateStore::Open(dir, options);
  EXPECT_THAT(store, IsOk());
  return store.ok() ? std::move(store).value() : nullptr;
}

ClusterRecord Cluster(const std::string& name, int64_t epoch) {
  ClusterRecord record;
  record.topology.set_cluster(name);
  auto* dim = record.topology.add_dims();
  dim->set_name("tp");
  dim->set_size(2);
  record.epoch = epoch;
  record.create_time = absl::FromUnixSeconds(100);
  record.update_time = absl::FromUnixSeconds(100 + epoch);
  return record;
}

// Everything LoadClusters returns, as text to compare whole states.
std::string Dump(const StateStore& store) {
  auto clusters = store.LoadClusters();
  if (!clusters.ok()) return clusters.status().ToString();
  std::ostringstream out;
  for (const ClusterState& state : *clusters) {
    out << "cluster " << state.record.topology.ShortDebugString() << " epoch " << state.record.epoch
        << " " << state.record.create_time << " " << state.record.update_time << "\n";
    for (const StoredMember& member : state.members) {
      out << "  member " << member.identity.ShortDebugString() << " "
          << member.capabilities.ShortDebugString() << " " << member.session_token_sha256 << " "
          << member.registered << "\n";
    }
    for (const auto& report : state.reports)
      out << "  report " << report.ShortDebugString() << "\n";
    for (const auto& [key, value] : state.rendezvous) {
      out << "  key " << key << "=" << absl::CEscape(value) << "\n";
    }
  }
  return out.str();
}

// A store with two clusters, members in a non-sorted order, reports and keys, and a deleted
// cluster.
void Populate(StateStore& store) {
  ASSERT_THAT(store.PutCluster(Cluster("job", 1)), IsOk());
  ASSERT_THAT(store.AddMember("job", Member("b", 1)), IsOk());
  ASSERT_THAT(store.AddMember("job", Member("a", 0)), IsOk());
  ASSERT_THAT(store.PutCluster(Cluster("gone", 1)), IsOk());
  ASSERT_THAT(store.AddMember("gone", Member("x", 0)), IsOk());
  ASSERT_THAT(store.DeleteCluster("gone"), IsOk());
  ASSERT_THAT(store.PutCluster(Cluster("other", 1)), IsOk());
  ASSERT_THAT(store.PutRendezvousKey("other", 1, "stale", "v"), IsOk());
  ASSERT_THAT(store.PutCluster(Cluster("other", 2)), IsOk());
  ASSERT_THAT(store.AddReport("job", 1, Report(0, v1::PHASE_BOOTSTRAPPING)), IsOk());
  ASSERT_THAT(store.AddReport("job", 1, Report(0, v1::PHASE_READY)), IsOk());
  ASSERT_THAT(store.PutRendezvousKey("job", 1, "world/0", std::string("\0\1\2", 3)), IsOk());
  ASSERT_THAT(store.PutRendezvousKey("job", 1, "world/1", "x"), IsOk());
  ASSERT_THAT(store.PutRendezvousKey("other", 2, "k", "v2"), IsOk());
}

// Byte offsets where each record of the log starts, and the end.
std::vector<size_t> RecordOffsets(const std::string& log) {
  std::vector<size_t> offsets;
  size_t offset = kLogHeaderBytes;
  while (offset + 8 <= log.size()) {
    offsets.push_back(offset);
    const auto* p = reinterpret_cast<const unsigned char*>(log.data() + offset);
    const uint32_t length = p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t{p[3]} << 24);
    offset += 8 + length;
  }
  offsets.push_back(offset);
  return offsets;
}

std::string Frame(const internal::LogRecord& record) {
  std::string payload = record.SerializeAsString();
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(payload.size())));
  const uint32_t length = static_cast<uint32_t>(payload.size());
  std::string frame;
  for (int i = 0; i < 4; ++i) frame.push_back(static_cast<char>(length >> (8 * i)));
  for (int i = 0; i < 4; ++i) frame.push_back(static_cast<char>(crc >> (8 * i)));
  return frame + payload;
}

// The conformance suite, for both implementations.
INSTANTIATE_TEST_SUITE_P(Log, StateStoreConformanceTest,
                         ::testing::Values(StoreFactory([]() -> std::unique_ptr<StateStore> {
                           return OpenOrDie(testing::MakeTempDir("log_store"));
                         })));
INSTANTIATE_TEST_SUITE_P(Memory, StateStoreConformanceTest, ::testing::Values(StoreFactory([] {
                           return std::make_unique<MemoryStateStore>();
                         })));

TEST(LogStateStoreTest, CreatesTheDirectoryWithAnEmptyLog) {
  const std::string dir = testing::MakeTempDir("log_store") + "/nested/data";
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Dump(*store), "");
  EXPECT_EQ(store->LastSequence(), 0u);
  EXPECT_EQ(FileSize(dir + "/log"), static_cast<off_t>(kLogHeaderBytes));
  EXPECT_EQ(testing::ReadFileBytes(dir + "/log").substr(0, 13), "SPLITD-STORE\n");
}

TEST(LogStateStoreTest, ReopenKeepsEverythingAndContinuesTheSequence) {
  const std::string dir = testing::MakeTempDir("log_store");
  std::string before;
  {
    auto store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    Populate(*store);
    before = Dump(*store);
    EXPECT_EQ(store->LastSequence(), 14u);
  }
  ASSERT_THAT(before, HasSubstr("pod: \"b\""));
  {
    auto store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(Dump(*store), before);
    EXPECT_EQ(store->LastSequence(), 14u);
    auto clusters = store->LoadClusters();
    ASSERT_THAT(clusters, IsOk());
    ASSERT_EQ(clusters->size(), 2u);
    ASSERT_EQ((*clusters)[0].members.size(), 2u);
    EXPECT_EQ((*clusters)[0].members[0].identity.pod(), "b");
    EXPECT_EQ((*clusters)[0].members[1].identity.pod(), "a");
    EXPECT_EQ((*clusters)[0].reports.size(), 2u);
    EXPECT_EQ((*clusters)[1].record.epoch, 2);
    EXPECT_EQ((*clusters)[1].rendezvous.size(), 1u);
    ASSERT_THAT(store->AddMember("job", Member("c", 2)), IsOk());
    EXPECT_EQ(store->LastSequence(), 15u);
    before = Dump(*store);
  }
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Dump(*store), before);
  EXPECT_EQ(store->LastSequence(), 15u);
}

TEST(LogStateStoreTest, SecondOpenOfTheSameDirectoryIsRefused) {
  const std::string dir = testing::MakeTempDir("log_store");
  auto store = OpenOrDie(dir);
  EXPECT_THAT(LogStateStore::Open(dir),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use")));
}

TEST(LogStateStoreTest, TruncatedLastRecordIsDroppedAndWritesContinue) {
  const std::string dir = testing::MakeTempDir("log_store");
  {
    auto store = OpenOrDie(dir);
    ASSERT_THAT(store->PutCluster(Cluster("job", 1)), IsOk());
    ASSERT_THAT(store->AddMember("job", Member("a", 0)), IsOk());
    ASSERT_THAT(store->AddMember("job", Member("b", 1)), IsOk());
  }
  const std::string log = testing::ReadFileBytes(dir + "/log");
  const std::vector<size_t> offsets = RecordOffsets(log);
  ASSERT_EQ(offsets.size(), 4u);
  testing::WriteFileBytes(dir + "/log", log.substr(0, log.size() - 3));
  {
    auto store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(FileSize(dir + "/log"), static_cast<off_t>(offsets[2]));
    EXPECT_EQ(store->LastSequence(), 2u);
    auto clusters = store->LoadClusters();
    ASSERT_THAT(clusters, IsOk());
    ASSERT_EQ((*clusters)[0].members.size(), 1u);
    ASSERT_THAT(store->AddMember("job", Member("c", 2)), IsOk());
  }
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  auto clusters = store->LoadClusters();
  ASSERT_THAT(clusters, IsOk());
  ASSERT_EQ((*clusters)[0].members.size(), 2u);
  EXPECT_EQ((*clusters)[0].members[1].identity.pod(), "c");
  EXPECT_EQ(store->LastSequence(), 3u);
}

TEST(LogStateStoreTest, PartialFrameHeaderAtTheEndIsDropped) {
  const std::string dir = testing::MakeTempDir("log_store");
  std::string before;
  {
    auto store = OpenOrDie(dir);
    Populate(*store);
    before = Dump(*store);
  }
  const off_t good_size = FileSize(dir + "/log");
  testing::WriteFileBytes(
      dir + "/log", testing::ReadFileBytes(dir + "/log") + std::string("\x40\x00\x00\x00\x99", 5));
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Dump(*store), before);
  EXPECT_EQ(FileSize(dir + "/log"), good_size);
  EXPECT_THAT(store->PutRendezvousKey("job", 1, "after", "torn"), IsOk());
}

TEST(LogStateStoreTest, LastRecordWithBadChecksumIsDropped) {
  const std::string dir = testing::MakeTempDir("log_store");
  {
    auto store = OpenOrDie(dir);
    ASSERT_THAT(store->PutCluster(Cluster("job", 1)), IsOk());
    ASSERT_THAT(store->AddMember("job", Member("a", 0)), IsOk());
  }
  std::string log = testing::ReadFileBytes(dir + "/log");
  const std::vector<size_t> offsets = RecordOffsets(log);
  log[offsets[1] + 12] ^= 0x01;
  testing::WriteFileBytes(dir + "/log", log);
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  auto clusters = store->LoadClusters();
  ASSERT_THAT(clusters, IsOk());
  ASSERT_EQ(clusters->size(), 1u);
  EXPECT_TRUE((*clusters)[0].members.empty());
  EXPECT_EQ(FileSize(dir + "/log"), static_cast<off_t>(offsets[1]));
}

TEST(LogStateStoreTest, ZeroFilledTailIsDropped) {
  const std::string dir = testing::MakeTempDir("log_store");
  {
    auto store = OpenOrDie(dir);
    ASSERT_THAT(store->PutCluster(Cluster("job", 1)), IsOk());
  }
  const off_t good_size = FileSize(dir + "/log");
  testing::WriteFileBytes(dir + "/log",
                          testing::ReadFileBytes(dir + "/log") + std::string(100, '\0'));
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(FileSize(dir + "/log"), good_size);
  EXPECT_EQ(store->LastSequence(), 1u);
}

TEST(LogStateStoreTest, CorruptRecordInTheMiddleIsDataLoss) {
  const std::string dir = testing::MakeTempDir("log_store");
  {
    auto store = OpenOrDie(dir);
    Populate(*store);
  }
  const std::string original = testing::ReadFileBytes(dir + "/log");
  std::string log = original;
  log[kLogHeaderBytes + 8 + 3] ^= 0x20;
  testing::WriteFileBytes(dir + "/log", log);
  EXPECT_THAT(LogStateStore::Open(dir),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(dir + "/log"),
                             HasSubstr(absl::StrCat("offset ", kLogHeaderBytes)))));
  // Nothing was cut off: the file is as it was, for an operator to look at.
  EXPECT_EQ(testing::ReadFileBytes(dir + "/log"), log);
}

TEST(LogStateStoreTest, BadLengthThatFitsInTheMiddleIsDataLoss) {
  const std::string dir = testing::MakeTempDir("log_store");
  {
    auto store = OpenOrDie(dir);
    Populate(*store);
  }
  std::string log = testing::ReadFileBytes(dir + "/log");
  log[kLogHeaderBytes] = static_cast<char>(static_cast<unsigned char>(log[kLogHeaderBytes]) - 1);
  testing::WriteFileBytes(dir + "/log", log);
  EXPECT_THAT(LogStateStore::Open(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("offset 21")));
}

TEST(LogStateStoreTest, RecordThatDoesNotApplyIsDataLoss) {
  const std::string dir = testing::MakeTempDir("log_store");
  {
    auto store = OpenOrDie(dir);
    ASSERT_THAT(store->PutCluster(Cluster("job", 1)), IsOk());
  }
  internal::LogRecord record = AddMemberRecord("ghost", Member("a", 0));
  record.set_sequence(2);
  const size_t offset = static_cast<size_t>(FileSize(dir + "/log"));
  testing::WriteFileBytes(dir + "/log", testing::ReadFileBytes(dir + "/log") + Frame(record));
  EXPECT_THAT(LogStateStore::Open(dir),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("log"), HasSubstr(absl::StrCat("offset ", offset)),
                             HasSubstr("ghost"))));
}

TEST(LogStateStoreTest, WrongMagicOrVersionIsFailedPrecondition) {
  const std::string dir = testing::MakeTempDir("log_store");
  { OpenOrDie(dir); }
  std::string log = testing::ReadFileBytes(dir + "/log");
  std::string wrong_magic = log;
  wrong_magic[0] = 'X';
  testing::WriteFileBytes(dir + "/log", wrong_magic);
  EXPECT_THAT(LogStateStore::Open(dir),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(dir + "/log"), HasSubstr("magic"))));
  std::string wrong_version = log;
  wrong_version[13] = 3;  // a newer splitd's
  testing::WriteFileBytes(dir + "/log", wrong_version);
  EXPECT_THAT(LogStateStore::Open(dir),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(dir + "/log"), HasSubstr("version 3"))));
}

// testdata/format1 was written by the format-1 store: a cluster, member "a" in the snapshot and
// member "b" in the log, with session tokens "token-a" and "token-b" in clear.
TEST(LogStateStoreTest, Format1DirectoryIsReadAndRewrittenWithDigestsOnly) {
  const std::string dir = testing::MakeTempDir("log_store");
  for (const char* name : {"log", "snapshot"}) {
    const std::string old =
        testing::ReadFileBytes(std::string("daemon/store/testdata/format1/") + name);
    ASSERT_FALSE(old.empty()) << name;
    ASSERT_EQ(old[13], 1) << name;
    testing::WriteFileBytes(dir + "/" + name, old);
  }
  {
    auto store = OpenOrDie(dir);
    auto loaded = store->LoadClusters();
    ASSERT_THAT(loaded, IsOk());
    ASSERT_EQ(loaded->size(), 1u);
    const ClusterState& state = (*loaded)[0];
    EXPECT_EQ(state.record.topology.cluster(), "job");
    EXPECT_EQ(state.record.epoch, 1);
    ASSERT_EQ(state.members.size(), 2u);
    EXPECT_EQ(state.members[0].identity.pod(), "a");
    EXPECT_EQ(state.members[0].session_token_sha256, Sha256::Hex("token-a"));
    EXPECT_EQ(state.members[1].identity.pod(), "b");
    EXPECT_EQ(state.members[1].session_token_sha256, Sha256::Hex("token-b"));
    EXPECT_EQ(state.members[1].registered, absl::FromUnixSeconds(2001));
    ASSERT_THAT(store->AddMember("job", Member("c", 2)), IsOk());
  }
  for (const char* name : {"log", "snapshot"}) {
    const std::string now = testing::ReadFileBytes(dir + "/" + name);
    EXPECT_EQ(now[13], 2) << name;
    EXPECT_THAT(now, Not(HasSubstr("token-a"))) << name;
    EXPECT_THAT(now, Not(HasSubstr("token-b"))) << name;
  }
  auto reopened = OpenOrDie(dir);
  auto loaded = reopened->LoadClusters();
  ASSERT_THAT(loaded, IsOk());
  ASSERT_EQ((*loaded)[0].members.size(), 3u);
  EXPECT_EQ((*loaded)[0].members[0].session_token_sha256, Sha256::Hex("token-a"));
}

TEST(LogStateStoreTest, DeletedRendezvousKeyStaysDeletedAcrossReopenAndCompaction) {
  const std::string dir = testing::MakeTempDir("log_store");
  {
    auto store = OpenOrDie(dir, NoSync());
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->PutCluster(Cluster("job", 1)), IsOk());
    ASSERT_THAT(store->PutRendezvousKey("job", 1, "gone", "v"), IsOk());
    ASSERT_THAT(store->PutRendezvousKey("job", 1, "kept", "w"), IsOk());
    ASSERT_THAT(store->DeleteRendezvousKey("job", 1, "gone"), IsOk());
  }
  const std::string expected = "  key kept=w\n";
  {
    // From the log: the deletion is replayed after the put.
    auto store = OpenOrDie(dir, NoSync());
    ASSERT_NE(store, nullptr);
    EXPECT_THAT(Dump(*store), ::testing::EndsWith(expected));
    EXPECT_THAT(Dump(*store), ::testing::Not(HasSubstr("gone")));
    EXPECT_EQ(store->LastSequence(), 4u);
    ASSERT_THAT(store->Compact(), IsOk());
  }
  // From the snapshot: the deleted key is not in it at all.
  auto store = OpenOrDie(dir, NoSync());
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(Dump(*store), ::testing::EndsWith(expected));
  EXPECT_THAT(Dump(*store), ::testing::Not(HasSubstr("gone")));
  EXPECT_THAT(testing::ReadFileBytes(dir + "/snapshot"), ::testing::Not(HasSubstr("gone")));
}

TEST(LogStateStoreTest, CompactionShrinksTheLogAndKeepsTheState) {
  const std::string dir = testing::MakeTempDir("log_store");
  LogStoreOptions options = NoSync();
  options.compact_after_bytes = 1024;
  std::string before;
  uint64_t appended = 0;
  {
    auto store = OpenOrDie(dir, options);
    ASSERT_NE(store, nullptr);
    Populate(*store);
    for (int i = 0; i < 300; ++i) {
      ASSERT_THAT(store->PutRendezvousKey("job", 1, absl::StrCat("key/", i % 7),
                                          std::string(40, static_cast<char>('a' + i % 26))),
                  IsOk());
      appended += 60;
      EXPECT_LT(FileSize(dir + "/log"), 1024 + 200);
    }
    ASSERT_THAT(store->AddMember("job", Member("late", 5)), IsOk());
    before = Dump(*store);
    EXPECT_EQ(store->LastSequence(), 315u);
  }
  EXPECT_GT(FileSize(dir + "/snapshot"), 0);
  EXPECT_LT(static_cast<uint64_t>(FileSize(dir + "/log")), appended / 4);
  auto store = OpenOrDie(dir, options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Dump(*store), before);
  EXPECT_EQ(store->LastSequence(), 315u);
  ASSERT_THAT(store->DeleteCluster("other"), IsOk());
  EXPECT_EQ(store->LastSequence(), 316u);
}

TEST(LogStateStoreTest, CrashBetweenSnapshotAndNewLogAppliesNothingTwice) {
  const std::string dir = testing::MakeTempDir("log_store");
  std::string before;
  {
    auto store = OpenOrDie(dir);
    Populate(*store);
    before = Dump(*store);
    const std::string old_log = testing::ReadFileBytes(dir + "/log");
    ASSERT_THAT(store->Compact(), IsOk());
    EXPECT_EQ(FileSize(dir + "/log"), static_cast<off_t>(kLogHeaderBytes));
    // As if the crash came after the snapshot's rename, before the new log's.
    testing::WriteFileBytes(dir + "/log", old_log);
  }
  {
    auto store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(Dump(*store), before);  // members, reports, keys each once
    EXPECT_EQ(store->LastSequence(), 14u);
    ASSERT_THAT(store->AddMember("job", Member("c", 2)), IsOk());
    EXPECT_EQ(store->LastSequence(), 15u);
    before = Dump(*store);
  }
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Dump(*store), before);
}

TEST(LogStateStoreTest, LeftoverTempFilesOfACrashedCompactionAreIgnored) {
  const std::string dir = testing::MakeTempDir("log_store");
  std::string before;
  {
    auto store = OpenOrDie(dir);
    Populate(*store);
    before = Dump(*store);
  }
  testing::WriteFileBytes(dir + "/snapshot.tmp", "SPLITD-STORE\npartial");
  testing::WriteFileBytes(dir + "/log.tmp", "SPLITD");
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Dump(*store), before);
  EXPECT_EQ(FileSize(dir + "/snapshot.tmp"), -1);
}

TEST(LogStateStoreTest, MissingSnapshotUnderACompactedLogIsDataLoss) {
  const std::string dir = testing::MakeTempDir("log_store");
  {
    auto store = OpenOrDie(dir);
    Populate(*store);
    ASSERT_THAT(store->Compact(), IsOk());
    ASSERT_THAT(store->AddMember("job", Member("c", 2)), IsOk());
  }
  ASSERT_EQ(unlink((dir + "/snapshot").c_str()), 0);
  EXPECT_THAT(LogStateStore::Open(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("expected 1")));
}

TEST(LogStateStoreTest, DamagedSnapshotIsDataLoss) {
  const std::string dir = testing::MakeTempDir("log_store");
  {
    auto store = OpenOrDie(dir);
    Populate(*store);
    ASSERT_THAT(store->Compact(), IsOk());
  }
  const std::string snapshot = testing::ReadFileBytes(dir + "/snapshot");
  std::string flipped = snapshot;
  flipped[snapshot.size() - 5] ^= 0x01;
  testing::WriteFileBytes(dir + "/snapshot", flipped);
  EXPECT_THAT(LogStateStore::Open(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(dir + "/snapshot")));
  testing::WriteFileBytes(dir + "/snapshot", snapshot.substr(0, snapshot.size() - 1));
  EXPECT_THAT(LogStateStore::Open(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(dir + "/snapshot")));
  testing::WriteFileBytes(dir + "/snapshot", snapshot + "x");
  EXPECT_THAT(LogStateStore::Open(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(dir + "/snapshot")));
  testing::WriteFileBytes(dir + "/snapshot", "SPLITD-STORE\n");
  EXPECT_THAT(LogStateStore::Open(dir),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));
}

// Runs `write` as on a full disk: with the file size limit at `limit` bytes (and SIGXFSZ
// ignored), an append past it fails with EFBIG part-way.
template <typename Write>
void WithFileSizeLimit(off_t limit, Write write) {
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct rlimit limited = saved;
  limited.rlim_cur = static_cast<rlim_t>(limit);
  ASSERT_LT(limited.rlim_cur, saved.rlim_cur);
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction saved_action;
  ASSERT_EQ(sigaction(SIGXFSZ, &ignore, &saved_action), 0);
  // Nothing may write to a file between here and the restore but the store.
  const int limited_rc = setrlimit(RLIMIT_FSIZE, &limited);
  write();
  const int restored_rc = setrlimit(RLIMIT_FSIZE, &saved);
  ASSERT_EQ(sigaction(SIGXFSZ, &saved_action, nullptr), 0);
  ASSERT_EQ(limited_rc, 0);
  ASSERT_EQ(restored_rc, 0);
}

TEST(LogStateStoreTest, FullDiskRefusesTheWriteAndLeavesStateAndLogIntact) {
  const std::string dir = testing::MakeTempDir("log_store");
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->PutCluster(Cluster("job", 1)), IsOk());
  ASSERT_THAT(store->AddMember("job", Member("a", 0)), IsOk());
  const std::string before = Dump(*store);
  const off_t size = FileSize(dir + "/log");

  absl::Status refused;
  // Room for part of the next record.
  WithFileSizeLimit(size + 10, [&] { refused = store->AddMember("job", Member("b", 1)); });

  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted,
                                AllOf(HasSubstr(dir + "/log"), HasSubstr("too large"))));
  EXPECT_EQ(FileSize(dir + "/log"), size);
  EXPECT_EQ(Dump(*store), before);
  EXPECT_EQ(store->LastSequence(), 2u);

  // Space is back: writes work again, and the log reopens cleanly.
  ASSERT_THAT(store->AddMember("job", Member("c", 2)), IsOk());
  EXPECT_EQ(store->LastSequence(), 3u);
  const std::string after = Dump(*store);
  store.reset();
  auto reopened = OpenOrDie(dir);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(Dump(*reopened), after);
  EXPECT_THAT(after, AllOf(HasSubstr("pod: \"c\""), ::testing::Not(HasSubstr("pod: \"b\""))));
}

// Four changes of five records, and one refused between them.
std::vector<Change> Group(const std::string& suffix) {
  std::vector<Change> changes;
  changes.push_back(ChangeOf({AddMemberRecord("job", Member("b" + suffix, 1))}));
  changes.push_back(ChangeOf({AddMemberRecord("ghost", Member("g" + suffix, 9))}));
  changes.push_back(ChangeOf({PutKeyRecord("job", 1, "k" + suffix, "v"),
                              AddReportRecord("job", 1, Report(1, v1::PHASE_READY))}));
  changes.push_back(ChangeOf({AddMemberRecord("job", Member("c" + suffix, 2))}));
  changes.push_back(ChangeOf({DeleteKeyRecord("job", 1, "missing")}));
  return changes;
}

TEST(LogStateStoreTest, CommitOfSeveralChangesIsOneAppendOfTheirRecords) {
  const std::string dir = testing::MakeTempDir("log_store");
  std::string after;
  {
    auto store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->PutCluster(Cluster("job", 1)), IsOk());
    const std::string log_before = testing::ReadFileBytes(dir + "/log");
    std::vector<Change> changes = Group("");
    ASSERT_THAT(store->Commit(absl::MakeSpan(changes)), IsOk());
    EXPECT_THAT(changes[1].status, StatusIs(absl::StatusCode::kNotFound, HasSubstr("ghost")));
    EXPECT_EQ(store->LastSequence(), 6u);
    // The log grew by exactly the accepted records' frames, numbered in commit order.
    std::string frames;
    uint64_t sequence = 1;
    for (const Change& change : changes) {
      if (!change.status.ok()) continue;
      for (const internal::LogRecord& record : change.records) {
        EXPECT_EQ(record.sequence(), ++sequence);
        frames += Frame(record);
      }
    }
    EXPECT_EQ(testing::ReadFileBytes(dir + "/log"), log_before + frames);
    after = Dump(*store);
  }
  EXPECT_THAT(after, AllOf(HasSubstr("pod: \"b\""), HasSubstr("pod: \"c\""), HasSubstr("key k=v"),
                           Not(HasSubstr("pod: \"g\""))));
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Dump(*store), after);
  EXPECT_EQ(store->LastSequence(), 6u);
}

TEST(LogStateStoreTest, FullDiskRefusesEveryAcceptedChangeOfACommitAndChangesNothing) {
  const std::string dir = testing::MakeTempDir("log_store");
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->PutCluster(Cluster("job", 1)), IsOk());
  ASSERT_THAT(store->AddMember("job", Member("a", 0)), IsOk());
  const std::string before = Dump(*store);
  const std::string log_before = testing::ReadFileBytes(dir + "/log");

  std::vector<Change> changes = Group("");
  absl::Status refused;
  // Room for the first record and part of the second: the append stops inside the group.
  const off_t limit =
      static_cast<off_t>(log_before.size() + Frame(changes[0].records[0]).size() + 10);
  WithFileSizeLimit(limit, [&] { refused = store->Commit(absl::MakeSpan(changes)); });

  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted,
                                AllOf(HasSubstr(dir + "/log"), HasSubstr("too large"))));
  for (size_t i : {0, 2, 3, 4}) {
    EXPECT_THAT(changes[i].status, StatusIs(absl::StatusCode::kResourceExhausted)) << i;
  }
  EXPECT_THAT(changes[1].status, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(testing::ReadFileBytes(dir + "/log"), log_before);
  EXPECT_EQ(Dump(*store), before);
  EXPECT_EQ(store->LastSequence(), 2u);

  // Space is back: the same changes commit, numbered on from the last acknowledged record.
  std::vector<Change> again = Group("");
  ASSERT_THAT(store->Commit(absl::MakeSpan(again)), IsOk());
  EXPECT_THAT(again[0].status, IsOk());
  EXPECT_EQ(again[0].records[0].sequence(), 3u);
  EXPECT_EQ(store->LastSequence(), 7u);
  const std::string after = Dump(*store);
  store.reset();
  auto reopened = OpenOrDie(dir);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(Dump(*reopened), after);
  EXPECT_EQ(reopened->LastSequence(), 7u);
}

TEST(LogStateStoreTest, CompactionAfterACommitKeepsItsChangesAcrossReopen) {
  const std::string dir = testing::MakeTempDir("log_store");
  LogStoreOptions options = NoSync();
  options.compact_after_bytes = 1024;
  std::string after;
  uint64_t last_sequence = 0;
  {
    auto store = OpenOrDie(dir, options);
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->PutCluster(Cluster("job", 1)), IsOk());
    int compactions = 0;
    for (int round = 0; compactions < 2; ++round) {
      ASSERT_LT(round, 100) << "no commit compacted";
      const std::string log_before = testing::ReadFileBytes(dir + "/log");
      std::vector<Change> changes = Group(absl::StrCat("-", round));
      ASSERT_THAT(store->Commit(absl::MakeSpan(changes)), IsOk());
      if (FileSize(dir + "/log") != static_cast<off_t>(kLogHeaderBytes)) continue;
      // This commit compacted: the snapshot holds its records and the new log is empty.
      ++compactions;
      if (compactions == 2) {
        // As if the crash came after the snapshot's rename, before the new log's: the old log,
        // with the commit's records, beside the snapshot that already holds them.
        std::string old_log = log_before;
        for (const Change& change : changes) {
          if (!change.status.ok()) continue;
          for (const internal::LogRecord& record : change.records) old_log += Frame(record);
        }
        testing::WriteFileBytes(dir + "/log", old_log);
      }
    }
    after = Dump(*store);
    last_sequence = store->LastSequence();
  }
  EXPECT_THAT(after, HasSubstr("pod: \"c-0\""));
  {
    auto store = OpenOrDie(dir, options);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(Dump(*store), after);  // nothing applied twice
    EXPECT_EQ(store->LastSequence(), last_sequence);
    ASSERT_THAT(store->AddMember("job", Member("late", 7)), IsOk());
    EXPECT_EQ(store->LastSequence(), last_sequence + 1);
    after = Dump(*store);
  }
  auto store = OpenOrDie(dir, options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Dump(*store), after);
}

// Whatever the files hold, Open returns a status and does not crash.
TEST(LogStateStoreTest, AnyDamageToTheFilesIsAStatusNotACrash) {
  const std::string dir = testing::MakeTempDir("log_store");
  {
    auto store = OpenOrDie(dir, NoSync());
    ASSERT_THAT(store->PutCluster(Cluster("job", 1)), IsOk());
    ASSERT_THAT(store->AddMember("job", Member("a", 0)), IsOk());
    ASSERT_THAT(store->Compact(), IsOk());
    ASSERT_THAT(store->AddReport("job", 1, Report(0, v1::PHASE_READY)), IsOk());
    ASSERT_THAT(store->PutRendezvousKey("job", 1, "k", "v"), IsOk());
  }
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::off);
  for (const std::string name : {"log", "snapshot"}) {
    const std::string path = dir + "/" + name;
    const std::string original = testing::ReadFileBytes(path);
    std::vector<std::string> variants;
    for (size_t i = 0; i < original.size(); ++i) {
      for (unsigned char bits : {0x01, 0x80, 0xff}) {
        std::string flipped = original;
        flipped[i] = static_cast<char>(static_cast<unsigned char>(flipped[i]) ^ bits);
        variants.push_back(std::move(flipped));
      }
      variants.push_back(original.substr(0, i));
    }
    for (const std::string& variant : variants) {
      testing::WriteFileBytes(path, variant);
      auto store = LogStateStore::Open(dir, NoSync());
      const absl::StatusCode code = store.status().code();
      EXPECT_TRUE(code == absl::StatusCode::kOk || code == absl::StatusCode::kDataLoss ||
                  code == absl::StatusCode::kFailedPrecondition)
          << name << ": " << store.status();
    }
    testing::WriteFileBytes(path, original);
  }
  spdlog::set_level(level);
  auto store = OpenOrDie(dir, NoSync());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LastSequence(), 4u);
}

}  // namespace
}  // namespace splitd::store
