#ifndef SPLITD_COMMON_POSIX_FILE_H_
#define SPLITD_COMMON_POSIX_FILE_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace splitd {

// The one place an errno becomes a Status: the code is absl::ErrnoToStatusCode's (ENOENT
// NOT_FOUND, EACCES PERMISSION_DENIED, ENOSPC RESOURCE_EXHAUSTED, ...), the message
// "<action> <path>: <strerror>".
absl::Status PosixError(int error, absl::string_view action, absl::string_view path);

// Writes all of `data` at `offset` (pwrite), retrying short writes and EINTR; 0 or an errno.
int WriteAllAt(int fd, off_t offset, absl::string_view data);

// fsync of a directory, which makes a rename or a new entry in it durable.
absl::Status SyncDirectory(const std::string& dir);

struct ReplaceFileOptions {
  mode_t mode = 0644;
  // fsync the new file before the rename.
  bool sync = true;
  // fsync the directory after the rename (the caller may do it itself, to handle its failure
  // knowing that the rename took place).
  bool sync_directory = true;
  // The temporary file is "<path>.tmp" (one writer, which removes leftovers itself) when false,
  // a fresh hidden "<dir>/.<name>.tmp.XXXXXX" when true (writers may race).
  bool unique_temp = true;
  // Hand back the new file open read-write instead of closing it.
  bool keep_open = false;
};

// Replaces `path` atomically with `contents`: a reader sees the old file or the new one, never
// a part. On failure the temporary file is removed and `path` is untouched. Returns the open
// file with `keep_open`, else -1.
absl::StatusOr<int> ReplaceFile(const std::string& path, absl::string_view contents,
                                const ReplaceFileOptions& options = {});

// ReplaceFile that closes the file.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents,
                                 const ReplaceFileOptions& options = {});

}  // namespace splitd

#endif  // SPLITD_COMMON_POSIX_FILE_H_
