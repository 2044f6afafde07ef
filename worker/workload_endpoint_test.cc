// The workload endpoint's HTTP surface over a real Unix socket: routes, JSON checks, errors and
// waits a client abandons. The backend is a small in-test one (the agent's bridge and the daemon
// are exercised by tests/e2e and tests/python).

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/unix_http_server.h"
#include "worker/workload_api.h"

namespace splitd::worker {
namespace {

using ::splitd::testing::IsOk;
using ::splitd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Holds one epoch; a get of a missing key waits until the client goes away or the key appears.
class TestBackend : public WorkloadBackend {
 public:
  absl::StatusOr<std::string> PlanDocument(int64_t after, absl::Time deadline,
                                           const ClientGone& gone) override {
    if (after < 0) return std::string(R"({"epoch":3})");
    while (absl::Now() < deadline) {
      if (gone()) return absl::CancelledError("gone");
      absl::SleepFor(absl::Milliseconds(10));
    }
    return absl::DeadlineExceededError("no newer plan");
  }
  std::string StatusDocument() override { return R"({"epoch":3,"rank":1})"; }
  absl::StatusOr<StoreResult> Store(const StoreOp& op, const ClientGone& gone) override {
    if (op.epoch != 3) return absl::AbortedError(absl::StrCat("epoch ", op.epoch, " is not 3"));
    StoreResult result;
    absl::MutexLock lock(&mu_);
    last_op_ = op;
    switch (op.kind) {
      case StoreOp::Kind::kSet:
        values_[op.keys[0]] = op.value;
        break;
      case StoreOp::Kind::kGet:
        for (const std::string& key : op.keys) {
          while (values_.find(key) == values_.end()) {
            mu_.Unlock();
            const bool left = gone();
            if (!left) absl::SleepFor(absl::Milliseconds(10));
            mu_.Lock();
            if (left) {
              abandoned_.store(true);
              return absl::CancelledError("client gone");
            }
          }
          result.values.push_back(values_[key]);
        }
        break;
      case StoreOp::Kind::kAdd:
        result.number = 40 + op.delta;
        break;
      default:
        break;
    }
    return result;
  }
  absl::StatusOr<v1::Phase> Report(const v1::ReportGroupStatusRequest& report) override {
    absl::MutexLock lock(&mu_);
    last_report_ = report;
    return v1::PHASE_SPLITTING;
  }

  StoreOp last_op() {
    absl::MutexLock lock(&mu_);
    return last_op_;
  }
  v1::ReportGroupStatusRequest last_report() {
    absl::MutexLock lock(&mu_);
    return last_report_;
  }
  std::atomic<bool> abandoned_{false};

 private:
  absl::Mutex mu_;
  std::map<std::string, std::string> values_;
  StoreOp last_op_;
  v1::ReportGroupStatusRequest last_report_;
};

int Connect(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) return -1;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void SendAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Everything the server sends until it closes the connection.
std::string ReadAll(int fd) {
  std::string out;
  char buffer[4096];
  while (true) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

struct Reply {
  int status = 0;
  std::string body;
};

// One request on its own connection ("Connection: close").
Reply Send(const std::string& path, const std::string& method, const std::string& target,
           const std::string& body = "") {
  const int fd = Connect(path);
  EXPECT_GE(fd, 0);
  SendAll(fd, absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: splitd\r\nConnection: close",
                           "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
                           "\r\n\r\n", body));
  const std::string raw = ReadAll(fd);
  ::close(fd);
  Reply reply;
  if (raw.size() > 12) reply.status = std::atoi(raw.substr(9, 3).c_str());
  const size_t split = raw.find("\r\n\r\n");
  if (split != std::string::npos) reply.body = raw.substr(split + 4);
  return reply;
}

class WorkloadEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A short directory: clients connect by path, and sockaddr_un holds 108 bytes.
    char dir[] = "/tmp/splitd-ep-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/agent.sock";
    api_ = std::make_unique<WorkloadApi>(&backend_);
    UnixHttpServer::Options options;
    options.path = path_;
    server_ = std::make_unique<UnixHttpServer>(
        options, [this](const HttpRequest& request, const ClientGone& gone) {
          return api_->Handle(request, gone);
        });
    ASSERT_THAT(server_->Start(), IsOk());
  }
  void TearDown() override {
    server_->Stop();
    ::rmdir(dir_.c_str());
  }

  std::string dir_;
  std::string path_;
  TestBackend backend_;
  std::unique_ptr<WorkloadApi> api_;
  std::unique_ptr<UnixHttpServer> server_;
};

TEST_F(WorkloadEndpointTest, SocketIsTheOwnersOnly) {
  struct stat info {};
  ASSERT_EQ(::stat(path_.c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST_F(WorkloadEndpointTest, ServesStatusAndPlan) {
  Reply status = Send(path_, "GET", "/v1/status");
  EXPECT_EQ(status.status, 200);
  EXPECT_EQ(status.body, R"({"epoch":3,"rank":1})");
  Reply plan = Send(path_, "GET", "/v1/plan");
  EXPECT_EQ(plan.status, 200);
  EXPECT_EQ(plan.body, R"({"epoch":3})");
  Reply waited = Send(path_, "GET", "/v1/plan?after=3&timeout_ms=50");
  EXPECT_EQ(waited.status, 504);
  EXPECT_THAT(waited.body, HasSubstr("DEADLINE_EXCEEDED"));
  Reply bad = Send(path_, "GET", "/v1/plan?after=x");
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr("after must be an integer"));
}

TEST_F(WorkloadEndpointTest, StoreSetGetAddRoundTrip) {
  const std::string value = absl::Base64Escape(std::string("\0\1bytes", 7));
  Reply set = Send(path_, "POST", "/v1/store/set",
                   absl::StrCat(R"({"epoch":3,"key":"k","value":")", value, R"("})"));
  EXPECT_EQ(set.status, 200) << set.body;
  Reply get = Send(path_, "POST", "/v1/store/get", R"({"epoch":3,"keys":["k"]})");
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, absl::StrCat(R"({"values":[")", value, R"("]})"));
  Reply add = Send(path_, "POST", "/v1/store/add", R"({"epoch":3,"key":"n","delta":2})");
  EXPECT_EQ(add.body, R"({"value":42})");
  EXPECT_EQ(backend_.last_op().kind, StoreOp::Kind::kAdd);
  EXPECT_EQ(backend_.last_op().delta, 2);
}

TEST_F(WorkloadEndpointTest, BadRequestsGetClearErrors) {
  struct Case {
    std::string method, target, body;
    int status;
    std::string message;
  };
  const Case cases[] = {
      {"POST", "/v1/store/set", "not json", 400, "not valid JSON"},
      {"POST", "/v1/store/set", "[1]", 400, "must be a JSON object"},
      {"POST", "/v1/store/set", R"({"key":"k","value":""})", 400, "epoch is required"},
      {"POST", "/v1/store/set", R"({"epoch":"3","key":"k","value":""})", 400,
       "epoch must be an integer"},
      {"POST", "/v1/store/set", R"({"epoch":3,"key":"k","value":"%%%"})", 400,
       "value must be base64"},
      {"POST", "/v1/store/get", R"({"epoch":3,"keys":[1]})", 400, "keys[0] must be a string"},
      {"POST", "/v1/store/get", R"({"epoch":3,"keys":["k"],"timeout_ms":-1})", 400,
       "timeout_ms must be in"},
      {"POST", "/v1/store/set", R"({"epoch":2,"key":"k","value":""})", 409, "epoch 2 is not 3"},
      {"POST", "/v1/store/frobnicate", "{}", 404, "unknown store operation"},
      {"GET", "/v1/store/set", "", 405, "takes POST"},
      {"GET", "/nowhere", "", 404, "unknown path /nowhere"},
      {"POST", "/v1/report", R"({"epoch":3,"rank":1,"phase":"DANCING"})", 400,
       "phase must be BOOTSTRAPPING"},
      {"POST", "/v1/report", R"({"epoch":3,"rank":1,"phase":"READY","groups":[{}]})", 400,
       "groups[0].kind is required"},
  };
  for (const Case& c : cases) {
    Reply reply = Send(path_, c.method, c.target, c.body);
    EXPECT_EQ(reply.status, c.status) << c.target << " " << c.body << ": " << reply.body;
    EXPECT_THAT(reply.body, HasSubstr(c.message)) << c.target << " " << c.body;
    EXPECT_THAT(reply.body, StartsWith(R"({"error":{"code":")"));
  }
  EXPECT_EQ(Send(path_, "GET", "/v1/status").status, 200);
}

TEST_F(WorkloadEndpointTest, HugeBodyIsRefusedAndTheServerGoesOn) {
  const std::string huge(5 << 20, 'x');
  Reply reply = Send(path_, "POST", "/v1/store/set", huge);
  EXPECT_EQ(reply.status, 413);
  EXPECT_THAT(reply.body, HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_EQ(Send(path_, "GET", "/v1/status").status, 200);
}

TEST_F(WorkloadEndpointTest, GarbageGetsAnHttpErrorAndTheServerGoesOn) {
  const int fd = Connect(path_);
  ASSERT_GE(fd, 0);
  SendAll(fd, std::string("\x16\x03\x01 this is no HTTP at all\r\n\r\n"));
  const std::string raw = ReadAll(fd);
  ::close(fd);
  EXPECT_THAT(raw, StartsWith("HTTP/1.1 4"));
  EXPECT_EQ(Send(path_, "GET", "/v1/status").status, 200);
}

TEST_F(WorkloadEndpointTest, KeepAliveCarriesSeveralRequests) {
  const int fd = Connect(path_);
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /v1/status HTTP/1.1\r\nHost: a\r\n\r\n");
  SendAll(fd, "GET /v1/status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  const std::string raw = ReadAll(fd);
  ::close(fd);
  size_t answers = 0;
  for (size_t at = raw.find("HTTP/1.1 200"); at != std::string::npos;
       at = raw.find("HTTP/1.1 200", at + 1)) {
    ++answers;
  }
  EXPECT_EQ(answers, 2u) << raw;
}

TEST_F(WorkloadEndpointTest, AClientClosingMidWaitCancelsTheWait) {
  const int fd = Connect(path_);
  ASSERT_GE(fd, 0);
  const std::string body = R"({"epoch":3,"keys":["never"],"timeout_ms":600000})";
  SendAll(fd, absl::StrCat("POST /v1/store/get HTTP/1.1\r\nHost: a\r\nContent-Length: ",
                           body.size(), "\r\n\r\n", body));
  absl::SleepFor(absl::Milliseconds(200));  // let the wait begin
  ::close(fd);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!backend_.abandoned_.load() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(backend_.abandoned_.load());
  EXPECT_EQ(Send(path_, "GET", "/v1/status").status, 200);
}

TEST_F(WorkloadEndpointTest, ReportIsParsedIntoAWorkloadReport) {
  Reply reply = Send(path_, "POST", "/v1/report",
                     R"({"epoch":3,"rank":1,"phase":"ready","detail":"done",)"
                     R"("groups":[{"kind":"tp","allreduce_value":2,"latency_us":31.5}]})");
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.body, R"({"cluster_phase":"SPLITTING"})");
  const v1::ReportGroupStatusRequest report = backend_.last_report();
  EXPECT_EQ(report.layer(), v1::REPORT_LAYER_WORKLOAD);
  EXPECT_EQ(report.phase(), v1::PHASE_READY);
  EXPECT_EQ(report.detail(), "done");
  ASSERT_EQ(report.groups_size(), 1);
  EXPECT_EQ(report.groups(0).kind(), "tp");
  EXPECT_EQ(report.groups(0).phase(), v1::PHASE_READY);
  EXPECT_DOUBLE_EQ(report.groups(0).allreduce_value(), 2);
}

TEST(UnixHttpServerTest, AWaitLongerThanTheIdleTimeoutStillGetsItsAnswer) {
  char dir[] = "/tmp/splitd-idle-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  UnixHttpServer::Options options;
  options.path = std::string(dir) + "/agent.sock";
  options.idle_timeout_s = 1;
  UnixHttpServer server(options, [](const HttpRequest&, const ClientGone&) {
    absl::SleepFor(absl::Milliseconds(2500));
    return HttpResponse{200, "{\"waited\":true}"};
  });
  ASSERT_THAT(server.Start(), IsOk());
  Reply reply = Send(options.path, "GET", "/v1/status");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "{\"waited\":true}");
  // A request that never ends is closed once it has been idle that long.
  const int fd = Connect(options.path);
  ASSERT_GE(fd, 0);
  constexpr char kNeverEnds[] = "\0\1 not http\r\n";
  SendAll(fd, std::string(kNeverEnds, sizeof(kNeverEnds) - 1));
  const absl::Time start = absl::Now();
  ReadAll(fd);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  ::close(fd);
  server.Stop();
  ::rmdir(dir);
}

TEST(UnixSocketTest, ALiveSocketIsNotTakenOverAndAStaleOneIs) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/live-", ::getpid(), ".sock");
  absl::StatusOr<int> first = ListenUnixSocket(path, 0600);
  ASSERT_THAT(first, IsOk());
  EXPECT_THAT(ListenUnixSocket(path, 0600),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("another process")));
  ::close(*first);  // the file stays, nobody listens: stale
  absl::StatusOr<int> second = ListenUnixSocket(path, 0660);
  ASSERT_THAT(second, IsOk());
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0660u);
  ::close(*second);
  ::unlink(path.c_str());
}

TEST(UnixSocketTest, ALongPathIsReachedThroughItsDirectory) {
  std::string dir = ::testing::TempDir();
  while (dir.size() < 120) {
    dir += "/a-rather-long-directory-name";
    ::mkdir(dir.c_str(), 0700);
  }
  const std::string path = dir + "/agent.sock";
  absl::StatusOr<int> fd = ListenUnixSocket(path, 0600);
  ASSERT_THAT(fd, IsOk());
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  ::close(*fd);
  ::unlink(path.c_str());
}

TEST(UnixSocketTest, ARegularFileIsNeverReplaced) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/file-", ::getpid(), ".sock");
  FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fclose(file);
  EXPECT_THAT(ListenUnixSocket(path, 0600),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("not a socket")));
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace splitd::worker
