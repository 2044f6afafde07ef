#ifndef SPLITD_COMMON_METRICS_HTTP_H_
#define SPLITD_COMMON_METRICS_HTTP_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/metrics.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace splitd::metrics {

// Serves a registry over HTTP for Prometheus to scrape: GET /metrics answers the text format
// (kTextContentType); every other path is 404. Built on cpp-httplib with a small fixed pool of
// handler threads, so a burst of scrapes cannot grow the process.
//
// Threading: Start and Shutdown from any thread; Shutdown is idempotent and also runs on
// destruction. The registry must outlive the server.
class MetricsHttpServer {
 public:
  // Listens on `host` (a name or address; "[v6]" brackets allowed) and `port` (0: any free
  // port) and serves until Shutdown. UNAVAILABLE when it cannot listen there.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& host, int port,
                                                                  const Registry* registry);
  ~MetricsHttpServer();

  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The bound port.
  int port() const { return port_; }

  // Stops listening and waits for the serving thread.
  void Shutdown();

 private:
  MetricsHttpServer() = default;

  int port_ = 0;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace splitd::metrics

#endif  // SPLITD_COMMON_METRICS_HTTP_H_
