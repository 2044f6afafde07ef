#include "common/posix_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace splitd {
namespace {

// The directory of `path` ("." for a bare name) and its last component.
void SplitPath(const std::string& path, std::string* dir, std::string* name) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    *dir = ".";
    *name = path;
  } else {
    *dir = slash == 0 ? "/" : path.substr(0, slash);
    *name = path.substr(slash + 1);
  }
}

// Creates the temporary file next to `path`; its name goes to `temp`.
absl::StatusOr<int> CreateTemp(const std::string& path, const ReplaceFileOptions& options,
                               std::string* temp) {
  std::string dir, name;
  SplitPath(path, &dir, &name);
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("file path \"", path, "\" names a directory"));
  }
  int fd;
  if (options.unique_temp) {
    std::string pattern = absl::StrCat(dir, "/.", name, ".tmp.XXXXXX");
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    fd = ::mkostemp(buffer.data(), O_CLOEXEC);
    if (fd < 0) return PosixError(errno, "create a temporary file for", path);
    temp->assign(buffer.data());
    if (::fchmod(fd, options.mode) != 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(temp->c_str());
      return PosixError(error, "chmod", *temp);
    }
  } else {
    *temp = path + ".tmp";
    fd = ::open(temp->c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, options.mode);
    if (fd < 0) return PosixError(errno, "create", *temp);
  }
  return fd;
}

}  // namespace

absl::Status PosixError(int error, absl::string_view action, absl::string_view path) {
  char buffer[256];
  const char* text = strerror_r(error, buffer, sizeof(buffer));  // GNU strerror_r
  return absl::Status(absl::ErrnoToStatusCode(error), absl::StrCat(action, " ", path, ": ", text));
}

int WriteAllAt(int fd, off_t offset, absl::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, offset + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return PosixError(errno, "open directory", dir);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return PosixError(error, "fsync directory", dir);
  return absl::OkStatus();
}

absl::StatusOr<int> ReplaceFile(const std::string& path, absl::string_view contents,
                                const ReplaceFileOptions& options) {
  std::string temp;
  absl::StatusOr<int> created = CreateTemp(path, options, &temp);
  if (!created.ok()) return created.status();
  const int fd = *created;
  absl::Status status;
  if (const int error = WriteAllAt(fd, 0, contents); error != 0) {
    status = PosixError(error, "write", temp);
  } else if (options.sync && ::fsync(fd) != 0) {
    status = PosixError(errno, "fsync", temp);
  } else if (::rename(temp.c_str(), path.c_str()) != 0) {
    status = PosixError(errno, absl::StrCat("rename to ", path), temp);
  }
  if (!status.ok()) {
    ::close(fd);
    ::unlink(temp.c_str());
    return status;
  }
  if (options.sync_directory) {
    std::string dir, name;
    SplitPath(path, &dir, &name);
    status = SyncDirectory(dir);
  }
  if (!status.ok() || !options.keep_open) {
    if (::close(fd) != 0 && status.ok()) status = PosixError(errno, "close", path);
    if (!status.ok()) return status;
    return -1;
  }
  return fd;
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents,
                                 const ReplaceFileOptions& options) {
  ReplaceFileOptions closed = options;
  closed.keep_open = false;
  return ReplaceFile(path, contents, closed).status();
}

}  // namespace splitd
