// Fuzz target: any bytes as the daemon's log file (after a valid file header, or raw), opened
// by LogStateStore. Opening must end in OK, DATA_LOSS or FAILED_PRECONDITION, never a crash.

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "daemon/store/log_state_store.h"
#include "zlib.h"

namespace {

const std::string& Directory() {
  static const std::string* directory = [] {
    char pattern[] = "/tmp/splitd-store-fuzz-XXXXXX";
    const char* made = mkdtemp(pattern);
    if (made == nullptr) abort();
    return new std::string(made);
  }();
  return *directory;
}

// The first bytes of a valid log file: magic, format version 1, kind 1 (log), little-endian.
std::string LogHeader() {
  std::string header = "SPLITD-STORE\n";
  const unsigned char tail[] = {1, 0, 0, 0, 1, 0, 0, 0};
  header.append(reinterpret_cast<const char*>(tail), sizeof(tail));
  return header;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = Directory();
  std::remove((dir + "/snapshot").c_str());
  {
    std::ofstream log(dir + "/log", std::ios::binary | std::ios::trunc);
    const int mode = size > 0 ? data[0] % 3 : 0;
    if (mode == 0) {
      // Raw bytes: the header check.
      log.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    } else if (mode == 1) {
      // A valid header, then raw bytes: the frame reader.
      log << LogHeader();
      log.write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
    } else {
      // A valid header, then well-framed records whose payloads are the input's chunks (a length
      // byte, then that many bytes): the record decoder and the state's checks.
      log << LogHeader();
      size_t at = 1;
      while (at < size) {
        const size_t length = std::min<size_t>(data[at], size - at - 1);
        const unsigned char* payload = data + at + 1;
        const uint32_t frame[2] = {
            static_cast<uint32_t>(length),
            static_cast<uint32_t>(crc32(0L, payload, static_cast<uInt>(length)))};
        if (length > 0) {
          log.write(reinterpret_cast<const char*>(frame), sizeof(frame));
          log.write(reinterpret_cast<const char*>(payload), static_cast<std::streamsize>(length));
        }
        at += length + 1;
      }
    }
  }
  splitd::store::LogStoreOptions options;
  options.sync = false;
  auto store = splitd::store::LogStateStore::Open(dir, options);
  if (store.ok()) (void)(*store)->LoadClusters();
  return 0;
}
