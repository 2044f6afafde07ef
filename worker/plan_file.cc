#include "worker/plan_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace splitd::worker {
namespace {

absl::Status SystemError(const std::string& what, const std::string& path, int error) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(error)));
}

// Writes all of `data`, retrying short writes and EINTR.
bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

std::string PlanFile::ToJson(bool with_layout) const {
  nlohmann::ordered_json doc;
  doc["cluster"] = cluster;
  doc["rank"] = rank;
  doc["world_size"] = world_size;
  doc["epoch"] = epoch;
  doc["fingerprint"] = fingerprint;
  doc["method"] = method;
  doc["state"] = state;
  if (!error.empty()) doc["error"] = error;
  nlohmann::ordered_json group_map = nlohmann::ordered_json::object();
  for (const Group& group : groups) {
    nlohmann::ordered_json entry;
    entry["ranks"] = group.ranks;
    entry["local_rank"] = group.local_rank;
    entry["group_index"] = group.group_index;
    entry["backend"] = group.backend;
    group_map[group.kind] = std::move(entry);
  }
  doc["groups"] = std::move(group_map);
  doc["timings"] = {{"bootstrap_ms", bootstrap_ms},
                    {"split_ms", split_ms},
                    {"validate_ms", validate_ms},
                    {"groups_ready_ms", groups_ready_ms}};
  if (!socket.empty()) doc["socket"] = socket;
  if (!readiness.empty()) {
    doc["readiness"] = readiness;
    doc["preflight"] = preflight;
  }
  if (with_layout) {
    nlohmann::ordered_json kinds = nlohmann::ordered_json::array();
    for (const KindLayout& kind : layout) {
      kinds.push_back({{"kind", kind.kind}, {"backend", kind.backend}, {"groups", kind.groups}});
    }
    doc["layout"] = std::move(kinds);
  }
  // Replace rather than throw on text that is not UTF-8 (an error message, say).
  return doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

absl::Status PlanFile::Write(const std::string& path) const {
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty())
    return absl::InvalidArgumentError(
        absl::StrCat("plan file path \"", path, "\" names a directory"));

  std::string temp = absl::StrCat(dir, "/.", base, ".tmp.XXXXXX");
  std::vector<char> temp_buffer(temp.begin(), temp.end());
  temp_buffer.push_back('\0');
  const int fd = ::mkstemp(temp_buffer.data());
  if (fd < 0) return SystemError("cannot create a temporary file for", path, errno);
  temp.assign(temp_buffer.data());

  auto fail = [&](const std::string& what) {
    const int error = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return SystemError(what, temp, error);
  };
  // mkstemp creates 0600; the workload reading the file may run as another user.
  if (::fchmod(fd, 0644) != 0) return fail("cannot chmod");
  if (!WriteAll(fd, ToJson())) return fail("cannot write");
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    return SystemError("cannot close", temp, error);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    return SystemError("cannot rename onto", path, error);
  }
  // Make the rename itself durable.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

}  // namespace splitd::worker
