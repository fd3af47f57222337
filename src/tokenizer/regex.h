#pragma once
// Regular expressions written for Oniguruma (what Hugging Face tokenizers compiles tokenizer.json
// patterns with), run by PCRE2 in UTF + UCP mode with JIT. Escapes whose meaning differs between
// the two engines are rewritten (see translate_oniguruma); ^ and $ are line anchors as in Ruby syntax.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace c3po::tokenizer {

// Rewrites an Oniguruma (Ruby syntax) pattern into a PCRE2 pattern with the same meaning:
// \s \S -> White_Space, \w -> Alphabetic|M|Nd|Pc|Join_Control, \h -> hex digit, \uHHHH -> \x{HHHH}.
// Throws std::invalid_argument for a construct it cannot translate.
std::string translate_oniguruma(std::string_view pattern);

class Regex {
 public:
  // pattern is Oniguruma syntax; literal = true matches the string itself.
  // Throws std::invalid_argument with PCRE2's message when it does not compile.
  explicit Regex(std::string_view pattern, bool literal = false);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches left to right as byte ranges, with the onig crate's rule for empty
  // matches (an empty match right where the previous match ended is skipped). text must be valid UTF-8.
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view text) const;

 private:
  struct Code;
  std::unique_ptr<Code> code_;
};

}  // namespace c3po::tokenizer
