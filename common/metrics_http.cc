#include "common/metrics_http.h"

#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "httplib.h"

namespace splitd::metrics {
namespace {

constexpr size_t kHandlerThreads = 2;

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, const Registry* registry) {
  std::string bind_host = host;
  if (bind_host.size() >= 2 && bind_host.front() == '[' && bind_host.back() == ']') {
    bind_host = bind_host.substr(1, bind_host.size() - 2);
  }
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->server_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *server->server_;
  // cpp-httplib's default sets SO_REUSEPORT, which would let a second daemon share the port
  // silently; SO_REUSEADDR alone still allows a quick restart.
  http.set_socket_options([](socket_t socket) {
    int yes = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http.new_task_queue = [] { return new httplib::ThreadPool(kHandlerThreads); };
  http.Get("/metrics", [registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(registry->Render(), kTextContentType);
  });
  if (port == 0) {
    server->port_ = http.bind_to_any_port(bind_host);
  } else if (http.bind_to_port(bind_host, port)) {
    server->port_ = port;
  } else {
    server->port_ = -1;
  }
  if (server->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port, " for metrics"));
  }
  // Until the accept loop runs, stop() would not reach it; wait for it (or for its failure) so
  // that Shutdown always can.
  auto returned = std::make_shared<std::atomic<bool>>(false);
  server->thread_ = std::thread([&http, returned] {
    http.listen_after_bind();
    returned->store(true);
  });
  while (!http.is_running() && !returned->load()) absl::SleepFor(absl::Milliseconds(1));
  if (!http.is_running()) {
    return absl::UnavailableError(
        absl::StrCat("metrics server on ", host, ":", server->port_, " stopped at once"));
  }
  return server;
}

MetricsHttpServer::~MetricsHttpServer() { Shutdown(); }

void MetricsHttpServer::Shutdown() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace splitd::metrics
