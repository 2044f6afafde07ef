#include "worker/unix_http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/posix_file.h"
#include "spdlog/spdlog.h"

namespace splitd::worker {
namespace {

// A path sockaddr_un can hold: `path` itself, or, when it is too long, the same file reached
// through an open descriptor of its directory (/proc/self/fd/N/name). `dir_fd` receives that
// descriptor (or -1), to be closed by the caller once the call using the address is done.
absl::StatusOr<sockaddr_un> AddressOf(const std::string& path, int* dir_fd) {
  *dir_fd = -1;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::string reachable = path;
  if (path.size() >= sizeof(address.sun_path)) {
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
    const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    *dir_fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*dir_fd < 0) return PosixError(errno, "open the directory of", path);
    reachable = absl::StrCat("/proc/self/fd/", *dir_fd, "/", base);
    if (reachable.size() >= sizeof(address.sun_path)) {
      ::close(*dir_fd);
      *dir_fd = -1;
      return absl::InvalidArgumentError(
          absl::StrCat("socket name \"", base, "\" is too long for a Unix socket"));
    }
  }
  std::memcpy(address.sun_path, reachable.data(), reachable.size());
  return address;
}

// True when something accepts connections on the socket at `path`.
bool SomeoneListens(const sockaddr_un& address) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool live =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return live;
}

bool HungUp(int fd) {
  pollfd entry{fd, POLLRDHUP, 0};
  if (::poll(&entry, 1, 0) <= 0) return false;
  return (entry.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace

absl::StatusOr<int> ListenUnixSocket(const std::string& path, unsigned mode) {
  if (path.empty()) return absl::InvalidArgumentError("socket path must not be empty");
  int dir_fd = -1;
  absl::StatusOr<sockaddr_un> address = AddressOf(path, &dir_fd);
  if (!address.ok()) return address.status();
  auto close_dir = [&dir_fd] {
    if (dir_fd >= 0) ::close(dir_fd);
  };
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      close_dir();
      return absl::AlreadyExistsError(absl::StrCat(path, " exists and is not a socket"));
    }
    if (SomeoneListens(*address)) {
      close_dir();
      return absl::AlreadyExistsError(
          absl::StrCat(path, " is served by another process (another agent?)"));
    }
    ::unlink(path.c_str());  // stale: left by a process that is gone
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    close_dir();
    return PosixError(errno, "create a socket for", path);
  }
  // Created with no permissions for anyone, then opened up to `mode`: no window in which other
  // users could connect.
  const mode_t old_mask = ::umask(0777);
  const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&*address), sizeof(*address));
  const int bind_error = errno;
  ::umask(old_mask);
  close_dir();
  if (bound != 0) {
    ::close(fd);
    return PosixError(bind_error, "bind", path);
  }
  if (::chmod(path.c_str(), mode) != 0 || ::listen(fd, 128) != 0) {
    const int error = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return PosixError(error, "set up", path);
  }
  return fd;
}

// libmicrohttpd's callbacks; they reach the server's private parts.
struct UnixHttpServerCallbacks {
  // What one request collects while its body arrives.
  struct Call {
    HttpRequest request;
  };

  static MHD_Result Respond(MHD_Connection* connection, const HttpResponse& response) {
    MHD_Response* reply = MHD_create_response_from_buffer(
        response.body.size(), const_cast<char*>(response.body.data()), MHD_RESPMEM_MUST_COPY);
    if (reply == nullptr) return MHD_NO;
    MHD_add_response_header(reply, "Content-Type", "application/json");
    const MHD_Result queued =
        MHD_queue_response(connection, static_cast<unsigned>(response.status), reply);
    MHD_destroy_response(reply);
    return queued;
  }

  static MHD_Result OnRequest(void* self, MHD_Connection* connection, const char* url,
                              const char* method, const char* /*version*/, const char* upload_data,
                              size_t* upload_data_size, void** call_state) {
    auto* server = static_cast<UnixHttpServer*>(self);
    if (*call_state == nullptr) {  // headers are in: start collecting the body
      auto call = std::make_unique<Call>();
      call->request.method = method;
      const std::string target = url;
      const size_t question = target.find('?');
      call->request.path = target.substr(0, question);
      // libmicrohttpd strips the query from `url`; rebuild it from the arguments it parsed.
      MHD_get_connection_values(
          connection, MHD_GET_ARGUMENT_KIND,
          [](void* query, MHD_ValueKind, const char* key, const char* value) -> MHD_Result {
            auto* text = static_cast<std::string*>(query);
            if (!text->empty()) text->push_back('&');
            absl::StrAppend(text, key, "=", value == nullptr ? "" : value);
            return MHD_YES;
          },
          &call->request.query);
      *call_state = call.release();
      return MHD_YES;
    }
    auto* call = static_cast<Call*>(*call_state);
    if (*upload_data_size > 0) {
      if (call->request.body.size() + *upload_data_size > server->options_.max_body_bytes) {
        call->request.body_too_large = true;
        call->request.body.clear();
        call->request.body.shrink_to_fit();
      } else if (!call->request.body_too_large) {
        call->request.body.append(upload_data, *upload_data_size);
      }
      *upload_data_size = 0;
      return MHD_YES;
    }
    const MHD_ConnectionInfo* info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    const int fd = info == nullptr ? -1 : info->connect_fd;
    ClientGone gone = [server, fd] { return server->stopping() || (fd >= 0 && HungUp(fd)); };
    HttpResponse response;
    try {
      response = server->handler_(call->request, gone);
    } catch (const std::exception& error) {  // a handler bug must not take the agent down
      response = HttpResponse{500, absl::StrCat(R"({"error":{"code":"INTERNAL","message":")",
                                                "internal error", "\"}}")};
      spdlog::error("workload endpoint: {} {}: {}", call->request.method, call->request.path,
                    error.what());
    }
    return Respond(connection, response);
  }

  static void OnCompleted(void* /*self*/, MHD_Connection* /*connection*/, void** call_state,
                          MHD_RequestTerminationCode /*why*/) {
    delete static_cast<Call*>(*call_state);
    *call_state = nullptr;
  }

  static void Log(void* /*self*/, const char* format, va_list args) {
    char line[512];
    std::vsnprintf(line, sizeof(line), format, args);
    std::string text = line;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    spdlog::debug("workload endpoint: {}", text);
  }
};

UnixHttpServer::UnixHttpServer(Options options, HttpHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

UnixHttpServer::~UnixHttpServer() { Stop(); }

absl::Status UnixHttpServer::Start() {
  absl::StatusOr<int> fd = ListenUnixSocket(options_.path, options_.mode);
  if (!fd.ok()) return fd.status();
  listen_fd_ = *fd;
  daemon_ = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
          MHD_USE_ITC,
      0, nullptr, nullptr, &UnixHttpServerCallbacks::OnRequest, this, MHD_OPTION_LISTEN_SOCKET,
      listen_fd_, MHD_OPTION_NOTIFY_COMPLETED, &UnixHttpServerCallbacks::OnCompleted, this,
      MHD_OPTION_CONNECTION_LIMIT, options_.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      options_.idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, size_t{64} << 10,
      MHD_OPTION_EXTERNAL_LOGGER, &UnixHttpServerCallbacks::Log, this, MHD_OPTION_END);
  if (daemon_ == nullptr) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    ::unlink(options_.path.c_str());
    return absl::InternalError(absl::StrCat("cannot serve HTTP on ", options_.path));
  }
  return absl::OkStatus();
}

void UnixHttpServer::Stop() {
  if (daemon_ == nullptr) return;
  stopping_.store(true);
  MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
  ::close(listen_fd_);
  listen_fd_ = -1;
  ::unlink(options_.path.c_str());
}

}  // namespace splitd::worker
