// tokenizer.json loading (every normalizer, pre-tokenizer, model, post-processor and decoder the
// loader accepts), then encode and decode with what was loaded.
// Input: tokenizer.json [NUL tokenizer_config.json [NUL text to encode]]; without a text part a
// fixed mixed-script text is encoded.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "io/error.h"
#include "tokenizer/tokenizer.h"

namespace {
constexpr std::string_view kText =
    "Hello world!  The quick brown fox's 1234 jumps\n\tover <s> [CLS] caf\xc3\xa9 "
    "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 ABC  ";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto parts = c3po::fuzz::split_nul(data, size, 3);
  try {
    const auto tok = c3po::tokenizer::Tokenizer::from_json(parts[0], parts.size() > 1 ? parts[1] : std::string_view{});
    const std::string_view text = parts.size() > 2 ? parts[2] : kText;
    for (bool special : {true, false}) {
      const auto ids = tok.encode(text, special);
      for (auto id : ids)
        if (id < 0 || id >= tok.vocab_size()) __builtin_trap();  // an id no embedding row has
      (void)tok.decode(ids, false);
      (void)tok.decode(ids, true);
      if (!ids.empty()) (void)tok.token_to_id(tok.id_to_token(ids[0]));
    }
  } catch (const c3po::Error&) {
  }
  return 0;
}
