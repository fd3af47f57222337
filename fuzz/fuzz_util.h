#pragma once
// Shared pieces of the libFuzzer targets: a private scratch folder per process (the library reads
// paths, so the fuzzed bytes become a file there) and splitting an input at NUL bytes (several
// files in one input; NUL never occurs in the text formats, so a plain valid file is a valid seed).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace c3po::fuzz {

// One folder per process under /dev/shm (memory, so the many small writes cost no disk I/O),
// removed at exit; -fork/-jobs workers each get their own.
inline const std::string& scratch_dir() {
  // Never destroyed: the atexit handler below runs after static destructors would have.
  static const std::string& dir = *new std::string([] {
    const char* base = std::getenv("C3PO_FUZZ_TMP");
    std::string root = base ? base : (std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp");
    std::string templ = root + "/c3po-fuzz-" + std::to_string(::getpid()) + "-XXXXXX";
    if (!::mkdtemp(templ.data())) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return templ;
  }());
  return dir;
}

// scratch_dir()/name holding exactly `bytes`.
inline std::string put(const std::string& name, std::string_view bytes) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) std::abort();
  return path;
}

// The input cut at NUL bytes into at most max_parts parts (the last part keeps any further NULs).
inline std::vector<std::string_view> split_nul(const uint8_t* data, std::size_t size, std::size_t max_parts) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const auto nul = s.find('\0');
    if (nul == std::string_view::npos) break;
    parts.push_back(s.substr(0, nul));
    s.remove_prefix(nul + 1);
  }
  parts.push_back(s);
  return parts;
}

// Reads a value so that the compiler cannot drop the access (ASan then checks it).
inline void touch(const void* p, std::size_t n) {
  if (n == 0) return;
  const volatile unsigned char* b = static_cast<const unsigned char*>(p);
  (void)b[0];
  (void)b[n - 1];
}

}  // namespace c3po::fuzz
