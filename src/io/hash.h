#pragma once
// FNV-1a, 64 bit: stable across platforms, compilers and runs, unlike std::hash. Model
// fingerprints, hashed n-gram embeddings and sampled subsets depend on its values.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace c3po::io {

class Fnv1a64 {
 public:
  // The basis c3po's fingerprints, hash embedder and SciQ distractor order have always used: the
  // standard basis with one digit lost. Kept, because changing it would change every stored
  // fingerprint and every result computed with the hash embedder.
  static constexpr std::uint64_t kC3poBasis = 1469598103934665603ull;
  static constexpr std::uint64_t kStandardBasis = 14695981039346656037ull;
  static constexpr std::uint64_t kPrime = 1099511628211ull;

  explicit Fnv1a64(std::uint64_t basis = kC3poBasis) : h_(basis) {}

  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * kPrime;
  }
  void add(std::string_view s) { add(s.data(), s.size()); }
  // A string followed by a NUL, so that ("ab","c") and ("a","bc") hash differently.
  void add_field(std::string_view s) {
    add(s);
    add("\0", 1);
  }
  std::uint64_t value() const { return h_; }

 private:
  std::uint64_t h_;
};

inline std::uint64_t fnv1a64(std::string_view s, std::uint64_t basis = Fnv1a64::kC3poBasis) {
  Fnv1a64 h(basis);
  h.add(s);
  return h.value();
}

}  // namespace c3po::io
