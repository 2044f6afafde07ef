#ifndef SPLITD_WORKER_UNIX_HTTP_SERVER_H_
#define SPLITD_WORKER_UNIX_HTTP_SERVER_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct MHD_Daemon;

namespace splitd::worker {

// One HTTP request as the handler sees it: the whole body is read before the handler runs.
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query
  std::string query;   // the raw text after '?', or empty
  std::string body;
  bool body_too_large = false;  // the body passed the server's limit and was dropped
};

struct HttpResponse {
  int status = 200;
  std::string body;  // JSON
};

// True once the client that sent the request has gone away (or the server is stopping): a
// handler that waits polls it and gives up.
using ClientGone = std::function<bool()>;

using HttpHandler = std::function<HttpResponse(const HttpRequest&, const ClientGone&)>;

// An HTTP/1.1 server on a Unix domain socket (libmicrohttpd, one thread per connection, so that
// a handler may block while it waits without holding up other connections). A stale socket file
// (nobody accepts on it) is replaced; a live one is refused. The socket file gets `mode` and is
// removed by Stop().
//
// Threading: Start and Stop from one thread; the handler runs on connection threads, several at
// once.
class UnixHttpServer {
 public:
  struct Options {
    std::string path;
    unsigned mode = 0600;
    size_t max_body_bytes = size_t{4} << 20;
    unsigned max_connections = 256;
    // A connection that sends nothing for this long (between requests, or in the middle of one:
    // a request that never ends) is closed; a handler that waits is not cut short by it.
    unsigned idle_timeout_s = 10;
  };

  UnixHttpServer(Options options, HttpHandler handler);
  ~UnixHttpServer();

  UnixHttpServer(const UnixHttpServer&) = delete;
  UnixHttpServer& operator=(const UnixHttpServer&) = delete;

  // Binds and starts serving. INVALID_ARGUMENT for an empty path, ALREADY_EXISTS when another
  // process serves on it, INTERNAL naming the path and the system error otherwise.
  absl::Status Start();

  // Stops serving: waiting handlers see ClientGone() true, connection threads are joined and the
  // socket file removed. Idempotent.
  void Stop();

  const std::string& path() const { return options_.path; }
  bool stopping() const { return stopping_.load(); }

 private:
  friend struct UnixHttpServerCallbacks;  // libmicrohttpd's callbacks, in the .cc

  const Options options_;
  const HttpHandler handler_;
  MHD_Daemon* daemon_ = nullptr;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
};

// Binds a listening Unix socket at `path` (through /proc/self/fd when the path is longer than
// sockaddr_un allows) with `mode`; the file descriptor. Exposed for tests of the path handling.
absl::StatusOr<int> ListenUnixSocket(const std::string& path, unsigned mode);

}  // namespace splitd::worker

#endif  // SPLITD_WORKER_UNIX_HTTP_SERVER_H_
