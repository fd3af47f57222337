#pragma once
// UTF-8 and Unicode character facts the tokenizer pipeline needs, with the exact definitions
// Hugging Face tokenizers (Rust `char` methods) uses, backed by utf8proc.
#include <cstddef>
#include <string>
#include <string_view>

namespace c3po::tokenizer::unicode {

// Byte length of the UTF-8 sequence that starts with lead byte b (1 for stray bytes).
inline std::size_t utf8_length(unsigned char b) {
  return b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
}
// Decodes the code point at s[i] (s must be valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view s, std::size_t& i);
void append_utf8(std::string& out, char32_t c);
// Offset of the first byte that is not part of valid UTF-8, or npos.
std::size_t find_invalid_utf8(std::string_view s);
// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes U+FFFD.
std::string from_utf8_lossy(std::string_view bytes);
std::size_t count_code_points(std::string_view s);

bool is_white_space(char32_t c);    // Unicode White_Space (Rust char::is_whitespace)
bool is_punctuation(char32_t c);    // general category P*
bool is_numeric(char32_t c);        // Nd, Nl, No (Rust char::is_numeric)
bool is_other(char32_t c);          // C* incl. unassigned
bool is_mark_nonspacing(char32_t c);  // Mn
bool is_mark(char32_t c);             // M* (Mn, Mc, Me)
bool is_word_char(char32_t c);      // regex \w: Alphabetic, M, Nd, Pc, Join_Control
bool is_ascii_punctuation(char32_t c);

enum class Form { NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view s, Form form);
// Rust char::to_lowercase applied to every character (full mapping, no context).
std::string lowercase(std::string_view s);

}  // namespace c3po::tokenizer::unicode
