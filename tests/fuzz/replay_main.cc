// Runs a fuzz target over files, without libFuzzer: every file given, and every file in every
// directory given. The Bazel tests use it to replay each target's corpus (also under the
// sanitizers); tests/fuzz/run_libfuzzer.sh builds the same targets with libFuzzer.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

int Replay(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  int replayed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path path(argv[i]);
    if (std::filesystem::is_directory(path)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(path)) {
        if (entry.is_regular_file()) replayed += Replay(entry.path());
      }
    } else {
      replayed += Replay(path);
    }
  }
  // Every single-byte input too, and an empty one.
  LLVMFuzzerTestOneInput(nullptr, 0);
  for (int b = 0; b < 256; ++b) {
    const uint8_t byte = static_cast<uint8_t>(b);
    LLVMFuzzerTestOneInput(&byte, 1);
  }
  std::printf("replayed %d file(s) and 257 short inputs\n", replayed);
  return replayed > 0 ? 0 : 1;
}
