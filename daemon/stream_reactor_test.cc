// StreamReactor and StreamRegistry under a real gRPC server on 127.0.0.1: streams fed by the test
// through a service that answers WatchEvents with them.

#include "daemon/stream_reactor.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/metrics.h"
#include "daemon/rpc_metrics.h"
#include "daemon/service_call.h"
#include "daemon/stream_registry.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "splitd/v1/control_service.grpc.pb.h"

namespace splitd::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// What the streams of one group send: the events pushed by the test, then `error` once set.
struct Feed {
  absl::Mutex mu;
  std::deque<v1::Event> events ABSL_GUARDED_BY(mu);
  std::optional<absl::Status> error ABSL_GUARDED_BY(mu);
  std::atomic<int> opened{0};
  std::atomic<int> closed{0};
  std::atomic<int> deleted{0};

  void Push(uint64_t sequence) {
    v1::Event event;
    event.set_sequence(sequence);
    absl::MutexLock lock(&mu);
    events.push_back(event);
  }
};

class FeedStream final : public StreamReactor<v1::Event> {
 public:
  FeedStream(ServiceCall call, Feed* feed)
      : StreamReactor(call, "feed stream write failed"), feed_(feed) {}
  ~FeedStream() override { feed_->deleted.fetch_add(1); }

 private:
  absl::StatusOr<std::optional<v1::Event>> Next() override {
    absl::MutexLock lock(&feed_->mu);
    if (!feed_->events.empty()) {
      v1::Event event = feed_->events.front();
      feed_->events.pop_front();
      return event;
    }
    if (feed_->error.has_value()) return *feed_->error;
    return std::nullopt;
  }
  void Opening() override { feed_->opened.fetch_add(1); }
  void Closed() override { feed_->closed.fetch_add(1); }

  Feed* const feed_;
};

// Answers WatchEvents with a FeedStream of the request's cluster; cluster "refused" is refused
// by the handler before the stream opens.
class FeedService final : public v1::ControlService::CallbackService {
 public:
  explicit FeedService(RpcMetrics* metrics) : metrics_(metrics) {}

  grpc::ServerWriteReactor<v1::Event>* WatchEvents(grpc::CallbackServerContext* context,
                                                   const v1::WatchEventsRequest* request) override {
    const ServiceCall call(context, metrics_, "splitd.v1.ControlService", "WatchEvents");
    auto* stream = new FeedStream(call, &feeds.at(request->cluster()));
    if (request->cluster() == "refused") {
      stream->End(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "refused by the handler"));
      return stream;
    }
    stream->Open(&registry, request->cluster());
    return stream;
  }

  StreamRegistry registry;
  std::map<std::string, Feed> feeds;  // every group the test uses, made before the server starts

 private:
  RpcMetrics* const metrics_;
};

class StreamReactorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* group : {"a", "b", "c", "late", "refused"}) service_.feeds[group];
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::ControlService::NewStub(channel_);
  }

  void TearDown() override {
    service_.registry.Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  struct Watch {
    std::unique_ptr<grpc::ClientContext> context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<grpc::ClientReader<v1::Event>> reader;
  };

  Watch Open(const std::string& group) {
    Watch watch;
    watch.context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::WatchEventsRequest request;
    request.set_cluster(group);
    watch.reader = stub_->WatchEvents(watch.context.get(), request);
    return watch;
  }

  // Polls `done` until it holds or 20 seconds passed.
  static bool Eventually(const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!done()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }

  // The line of splitd_rpc_requests_total for WatchEvents ending with `code`.
  static std::string Count(const std::string& code, int count) {
    return "splitd_rpc_requests_total{method=\"/splitd.v1.ControlService/WatchEvents\",code=\"" +
           code + "\"} " + std::to_string(count) + "\n";
  }

  metrics::Registry metrics_registry_;
  RpcMetrics metrics_{&metrics_registry_};
  FeedService service_{&metrics_};
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ControlService::Stub> stub_;
};

TEST_F(StreamReactorTest, SendsABacklogInOrderThenWhatEachWakeUpFinds) {
  Feed& feed = service_.feeds["a"];
  for (uint64_t i = 1; i <= 50; ++i) feed.Push(i);
  Watch watch = Open("a");
  // Pushed while writes are in flight: a wake-up during a write is not lost.
  std::thread pusher([&] {
    for (uint64_t i = 51; i <= 100; ++i) {
      feed.Push(i);
      service_.registry.WakeGroup("a");
    }
  });
  v1::Event event;
  for (uint64_t want = 1; want <= 100; ++want) {
    ASSERT_TRUE(watch.reader->Read(&event)) << "event " << want;
    EXPECT_EQ(event.sequence(), want);
  }
  pusher.join();
  EXPECT_EQ(feed.opened.load(), 1);
  watch.context->TryCancel();
  while (watch.reader->Read(&event)) {
  }
  EXPECT_EQ(watch.reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(StreamReactorTest, AnErrorFromNextEndsTheStreamOnceAndFreesIt) {
  Feed& feed = service_.feeds["a"];
  feed.Push(1);
  Watch watch = Open("a");
  v1::Event event;
  ASSERT_TRUE(watch.reader->Read(&event));
  {
    absl::MutexLock lock(&feed.mu);
    feed.error = absl::NotFoundError("cluster \"a\" not found");
  }
  service_.registry.WakeGroup("a");
  service_.registry.WakeGroup("a");
  EXPECT_FALSE(watch.reader->Read(&event));
  const grpc::Status status = watch.reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("cluster \"a\" not found"));

  EXPECT_TRUE(Eventually([&] { return feed.deleted.load() == 1; }));
  EXPECT_EQ(feed.closed.load(), 1);
  EXPECT_EQ(service_.registry.size(), 0u);
  EXPECT_THAT(metrics_registry_.Render(), HasSubstr(Count("NOT_FOUND", 1)));
}

TEST_F(StreamReactorTest, ShutdownEndsEveryOpenStreamOnceAndRefusesLaterOnes) {
  std::vector<Watch> watches;
  for (const char* group : {"a", "b", "c"}) {
    service_.feeds[group].Push(1);
    watches.push_back(Open(group));
    v1::Event event;
    ASSERT_TRUE(watches.back().reader->Read(&event)) << group;  // open on the server
  }
  EXPECT_EQ(service_.registry.size(), 3u);
  // Two shutdowns race: each stream still ends once.
  std::thread first([&] { service_.registry.Shutdown(); });
  std::thread second([&] { service_.registry.Shutdown(); });
  first.join();
  second.join();
  for (Watch& watch : watches) {
    v1::Event event;
    EXPECT_FALSE(watch.reader->Read(&event));
    const grpc::Status status = watch.reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(status.error_message(), "daemon is shutting down");
  }

  service_.feeds["late"].Push(1);
  Watch late = Open("late");
  v1::Event event;
  EXPECT_FALSE(late.reader->Read(&event));
  EXPECT_EQ(late.reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(service_.feeds["late"].opened.load(), 0);

  EXPECT_TRUE(Eventually([&] { return service_.registry.size() == 0; }));
  for (const char* group : {"a", "b", "c", "late"}) {
    EXPECT_TRUE(Eventually([&] { return service_.feeds[group].deleted.load() == 1; })) << group;
  }
  const std::string text = metrics_registry_.Render();
  EXPECT_THAT(text, HasSubstr(Count("UNAVAILABLE", 4)));
  EXPECT_THAT(text, Not(HasSubstr("code=\"CANCELLED\"")));
}

TEST_F(StreamReactorTest, AStreamRefusedBeforeItOpensSendsNothing) {
  Feed& feed = service_.feeds["refused"];
  feed.Push(1);
  Watch watch = Open("refused");
  v1::Event event;
  EXPECT_FALSE(watch.reader->Read(&event));
  const grpc::Status status = watch.reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(feed.opened.load(), 0);
  EXPECT_TRUE(Eventually([&] { return feed.deleted.load() == 1; }));
  absl::MutexLock lock(&feed.mu);
  EXPECT_EQ(feed.events.size(), 1u) << "Next ran for a refused stream";
}

TEST_F(StreamReactorTest, ACancelledStreamLeavesItsGroupAndIsFreed) {
  Feed& feed = service_.feeds["b"];
  feed.Push(1);
  Watch watch = Open("b");
  v1::Event event;
  ASSERT_TRUE(watch.reader->Read(&event));
  watch.context->TryCancel();
  while (watch.reader->Read(&event)) {
  }
  EXPECT_EQ(watch.reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(Eventually([&] { return feed.deleted.load() == 1; }));
  EXPECT_EQ(feed.closed.load(), 1);
  EXPECT_EQ(service_.registry.size(), 0u);
  service_.registry.WakeGroup("b");  // nothing left to wake
  EXPECT_TRUE(Eventually(
      [&] { return metrics_registry_.Render().find(Count("CANCELLED", 1)) != std::string::npos; }));
}

}  // namespace
}  // namespace splitd::daemon
