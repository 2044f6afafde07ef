#ifndef SPLITD_COMMON_SHA256_H_
#define SPLITD_COMMON_SHA256_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace splitd {

// Streaming SHA-256 over OpenSSL's libcrypto. Not thread-safe; one object per digest.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  void Update(absl::string_view bytes) { Update(bytes.data(), bytes.size()); }

  // Lowercase hex of the digest; the object must not be used afterwards.
  std::string HexDigest();

  // One-shot helper.
  static std::string Hex(absl::string_view bytes);

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

}  // namespace splitd

#endif  // SPLITD_COMMON_SHA256_H_
