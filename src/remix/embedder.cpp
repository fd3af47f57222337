#include "remix/embedder.h"

#include <cctype>

#include "io/hash.h"

namespace c3po::remix {

torch::Tensor HashedNgramEmbedder::embed(const std::vector<std::string>& texts) const {
  auto out = torch::zeros({static_cast<int64_t>(texts.size()), dim_});
  auto acc = out.accessor<float, 2>();
  for (std::size_t i = 0; i < texts.size(); ++i) {
    // ASCII lower-casing and splitting on non-alphanumerics: bytes >= 0x80 stay inside words.
    std::string norm;
    for (unsigned char c : texts[i]) norm.push_back(c < 0x80 ? static_cast<char>(std::tolower(c)) : static_cast<char>(c));
    std::vector<std::string> words;
    std::string cur;
    for (unsigned char c : norm) {
      if (c >= 0x80 || std::isalnum(c)) {
        cur.push_back(static_cast<char>(c));
      } else if (!cur.empty()) {
        words.push_back(cur);
        cur.clear();
      }
    }
    if (!cur.empty()) words.push_back(cur);
    auto add = [&](std::string_view feature, uint64_t salt, float w) {
      const uint64_t h = io::fnv1a64(feature, io::Fnv1a64::kC3poBasis ^ salt);
      acc[i][static_cast<int64_t>(h % static_cast<uint64_t>(dim_))] += (h >> 63) ? w : -w;
    };
    for (std::size_t w = 0; w < words.size(); ++w) {
      add(words[w], 1, 1.0f);
      if (w + 1 < words.size()) add(words[w] + " " + words[w + 1], 2, 1.0f);
      const std::string padded = " " + words[w] + " ";
      for (std::size_t c = 0; c + 3 <= padded.size(); ++c) add(std::string_view(padded).substr(c, 3), 3, 0.5f);
    }
  }
  return out / out.norm(2, 1, true).clamp_min(1e-12);
}

}  // namespace c3po::remix
