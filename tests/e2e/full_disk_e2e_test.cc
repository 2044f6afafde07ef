// The real `splitd` binary with its --data_dir on a small tmpfs that is filled up: writes are
// refused with RESOURCE_EXHAUSTED while reads go on, writes succeed again once space returns,
// and after SIGKILL the daemon restarts on the same directory with exactly the acknowledged
// clusters. Needs root (CAP_SYS_ADMIN) to mount; without it the test fails, it does not skip.

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/grpc_status.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "splitd/v1/control_service.grpc.pb.h"
#include "tests/testing/subprocess.h"

namespace splitd {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::RunCommand;
using ::splitd::testing::RunfilePath;
using ::splitd::testing::StatusIs;
using ::splitd::testing::Subprocess;
using ::testing::AllOf;
using ::testing::HasSubstr;

// Small enough to fill in a moment, large enough for the log's first pages.
constexpr char kTmpfsSize[] = "512k";

class FullDiskTest : public ::testing::Test {
 protected:
  // A mount namespace of this process (and so of the daemons it starts) with private
  // propagation: the tmpfs is gone with the process even if the test is killed before
  // TearDown. Must run before any thread exists (gRPC starts them), so once, first.
  static void SetUpTestSuite() {
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      std::fprintf(stderr, "note: no private mount namespace (%s); TearDown unmounts\n",
                   std::strerror(errno));
    }
  }

  void SetUp() override {
    dir_ = ::testing::TempDir() + "/full_disk";
    mount_point_ = dir_ + "/fs";
    ASSERT_EQ(RunCommand({"mkdir", "-p", mount_point_})->exit_code, 0);
    const std::string options = absl::StrCat("size=", kTmpfsSize, ",mode=0700");
    ASSERT_EQ(mount("splitd-full-disk", mount_point_.c_str(), "tmpfs", 0, options.c_str()), 0)
        << "cannot mount a " << kTmpfsSize << " tmpfs on " << mount_point_ << ": "
        << std::strerror(errno)
        << " (this test must run as root or with CAP_SYS_ADMIN, outside a sandbox that forbids "
           "mount(2))";
    mounted_ = true;
    data_dir_ = mount_point_ + "/data";
    StartDaemon();
  }

  void TearDown() override {
    if (daemon_ != nullptr) {
      daemon_->Signal(SIGKILL);
      EXPECT_THAT(daemon_->Wait(absl::Seconds(10)), IsOk());
      daemon_.reset();
    }
    if (mounted_) {
      if (umount2(mount_point_.c_str(), 0) != 0) {
        ADD_FAILURE() << "cannot unmount " << mount_point_ << ": " << std::strerror(errno)
                      << "; detaching it";
        umount2(mount_point_.c_str(), MNT_DETACH);
      }
      mounted_ = false;
    }
  }

  void StartDaemon() {
    const std::string port_file = dir_ + "/splitd.port";
    std::remove(port_file.c_str());
    auto daemon = Subprocess::Start({RunfilePath("daemon/splitd"), "--listen=127.0.0.1:0",
                                     "--port_file=" + port_file, "--data_dir=" + data_dir_});
    ASSERT_THAT(daemon, IsOk());
    daemon_ = std::make_unique<Subprocess>(*std::move(daemon));
    auto address = testing::WaitForFileLine(port_file, absl::Seconds(30));
    ASSERT_THAT(address, IsOk()) << daemon_->Stderr();
    control_ = v1::ControlService::NewStub(
        grpc::CreateChannel(*address, grpc::InsecureChannelCredentials()));
  }

  void KillAndRestartDaemon() {
    daemon_->Signal(SIGKILL);
    ASSERT_THAT(daemon_->Wait(absl::Seconds(10)), IsOk());
    logs_ += daemon_->Stderr();
    daemon_.reset();
    StartDaemon();
  }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return context;
  }

  // Cluster `index`: names of equal length (so equal record sizes), a world of 2 * (1 + i % 4).
  static std::string Name(int index) { return absl::StrFormat("cluster-%04d", index); }
  static v1::Topology TopologyOf(int index) {
    v1::Topology topology;
    topology.set_cluster(Name(index));
    v1::Dim* tp = topology.add_dims();
    tp->set_name("tp");
    tp->set_size(2);
    v1::Dim* dp = topology.add_dims();
    dp->set_name("dp");
    dp->set_size(1 + index % 4);
    return topology;
  }

  absl::Status Apply(int index) {
    v1::ApplyTopologyRequest request;
    *request.mutable_topology() = TopologyOf(index);
    v1::ApplyTopologyResponse response;
    absl::Status status =
        FromGrpcStatus(control_->ApplyTopology(Context().get(), request, &response));
    if (status.ok()) {
      EXPECT_TRUE(response.created()) << Name(index);
      fingerprints_[Name(index)] = response.cluster().fingerprint();
    }
    return status;
  }

  // Name -> fingerprint of every cluster the daemon lists.
  absl::StatusOr<std::map<std::string, std::string>> List() {
    v1::ListClustersResponse response;
    absl::Status status = FromGrpcStatus(
        control_->ListClusters(Context().get(), v1::ListClustersRequest(), &response));
    if (!status.ok()) return status;
    std::map<std::string, std::string> clusters;
    for (const v1::Cluster& cluster : response.clusters()) {
      clusters[cluster.name()] = cluster.fingerprint();
    }
    return clusters;
  }

  // Every acknowledged cluster is listed with its fingerprint and world, nothing else is.
  void ExpectExactlyAcknowledged(const std::set<std::string>& refused) {
    absl::StatusOr<std::map<std::string, std::string>> listed = List();
    ASSERT_THAT(listed, IsOk()) << Logs();
    EXPECT_EQ(*listed, fingerprints_) << Logs();
    for (const auto& [name, fingerprint] : fingerprints_) {
      v1::GetClusterRequest request;
      request.set_name(name);
      v1::GetClusterResponse response;
      ASSERT_THAT(FromGrpcStatus(control_->GetCluster(Context().get(), request, &response)), IsOk())
          << name;
      const int index = std::stoi(name.substr(name.find('-') + 1));
      EXPECT_EQ(response.cluster().world_size(), 2 * (1 + index % 4)) << name;
    }
    for (const std::string& name : refused) {
      v1::GetClusterRequest request;
      request.set_name(name);
      v1::GetClusterResponse response;
      EXPECT_THAT(FromGrpcStatus(control_->GetCluster(Context().get(), request, &response)),
                  StatusIs(absl::StatusCode::kNotFound))
          << "a refused cluster exists: " << name;
    }
  }

  // Writes 4 KiB blocks to `path` on the tmpfs until the file system is full.
  void FillUp(const std::string& path) {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    const std::string block(4096, 'x');
    int written_blocks = 0;
    int error = 0;
    for (;;) {
      const ssize_t written = write(fd, block.data(), block.size());
      if (written < 0) {
        error = errno;
        break;
      }
      if (written < static_cast<ssize_t>(block.size())) continue;  // the next one says why
      ++written_blocks;
    }
    close(fd);
    ASSERT_EQ(error, ENOSPC) << "filling " << path << ": " << std::strerror(error);
    ASSERT_GT(written_blocks, 0) << "the tmpfs was full before the filler";
  }

  std::string Logs() const { return logs_ + (daemon_ ? daemon_->Stderr() : std::string()); }

  std::string dir_;
  std::string mount_point_;
  std::string data_dir_;
  bool mounted_ = false;
  std::string logs_;
  std::unique_ptr<Subprocess> daemon_;
  std::unique_ptr<v1::ControlService::Stub> control_;
  // Acknowledged clusters: name -> fingerprint from ApplyTopology.
  std::map<std::string, std::string> fingerprints_;
};

TEST_F(FullDiskTest, RefusesWritesWhileFullServesReadsAndKeepsEveryAcknowledgedCluster) {
  int next = 0;
  for (; next < 5; ++next) ASSERT_THAT(Apply(next), IsOk()) << Logs();

  // Everything but the log's last, partly used page is taken.
  const std::string filler = mount_point_ + "/filler";
  FillUp(filler);
  if (HasFatalFailure()) return;

  // The records still fit in that page are acknowledged; then the writes are refused.
  std::set<std::string> refused;
  absl::Status refusal;
  for (int attempts = 0; attempts < 1000 && refused.empty(); ++attempts, ++next) {
    absl::Status status = Apply(next);
    if (!status.ok()) {
      refusal = status;
      refused.insert(Name(next));
    }
  }
  ASSERT_FALSE(refused.empty()) << "1000 clusters fitted in the full tmpfs" << Logs();
  EXPECT_THAT(refusal,
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("No space left on device"), HasSubstr(data_dir_ + "/log"))));
  // Retrying while full is refused the same way and leaves nothing behind.
  for (int i = 0; i < 3; ++i, ++next) {
    EXPECT_THAT(Apply(next), StatusIs(absl::StatusCode::kResourceExhausted)) << Logs();
    refused.insert(Name(next));
  }
  ASSERT_GT(fingerprints_.size(), 5u);

  // Reads go on while the disk is full.
  ExpectExactlyAcknowledged(refused);
  v1::GetStatusRequest status_request;
  status_request.set_cluster(Name(0));
  v1::GetStatusResponse status_response;
  EXPECT_THAT(
      FromGrpcStatus(control_->GetStatus(Context().get(), status_request, &status_response)),
      IsOk());

  // Space returns: writes succeed again.
  ASSERT_EQ(unlink(filler.c_str()), 0) << std::strerror(errno);
  for (int i = 0; i < 5; ++i, ++next) ASSERT_THAT(Apply(next), IsOk()) << Logs();
  ExpectExactlyAcknowledged(refused);

  // A crash, and a restart on the same files: every acknowledged cluster, nothing refused.
  KillAndRestartDaemon();
  ExpectExactlyAcknowledged(refused);
  EXPECT_THAT(Logs(), ::testing::Not(HasSubstr("DATA_LOSS")));
  ASSERT_THAT(Apply(next), IsOk()) << Logs();
}

}  // namespace
}  // namespace splitd
