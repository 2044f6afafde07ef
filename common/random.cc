#include "common/random.h"

#include <cstdlib>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "openssl/rand.h"

namespace splitd {

std::string RandomHex(size_t bytes) {
  std::vector<unsigned char> buffer(bytes);
  // RAND_bytes fails only when the system has no entropy source; nothing safe can go on then.
  if (RAND_bytes(buffer.data(), static_cast<int>(buffer.size())) != 1) std::abort();
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(buffer.data()), buffer.size()));
}

}  // namespace splitd
