#include "data/text.h"

#include <fmt/format.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/error.h"
#include "tokenizer/unicode.h"

namespace c3po::data {
namespace {

// Decodes one code point at s[i]; returns its length in bytes, 0 if the bytes there are not
// well-formed UTF-8.
std::size_t decode_one(std::string_view s, std::size_t i, char32_t& out) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const std::size_t left = s.size() - i;
  const unsigned char c0 = b(0);
  if (c0 < 0x80) {
    out = c0;
    return 1;
  }
  std::size_t len;
  char32_t cp;
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    len = 2;
    cp = c0 & 0x1F;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    len = 3;
    cp = c0 & 0x0F;
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    len = 4;
    cp = c0 & 0x07;
  } else {
    return 0;
  }
  if (left < len) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  out = cp;
  return len;
}

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    char32_t c;
    const std::size_t n = decode_one(s, i, c);
    if (n == 0) throw Error("", "text", fmt::format("not valid UTF-8 (byte {} of {})", i, s.size()));
    out.push_back(c);
    i += n;
  }
  return out;
}

// UTF-8 encoding is the tokenizer's (one implementation in the project).
using tokenizer::unicode::append_utf8;

// Titlecase mappings of more than one code point (SpecialCasing.txt, unconditional entries);
// every other code point titlecases to a single code point.
struct MultiMapping {
  char32_t from;
  std::u32string_view to;
};
constexpr std::array<MultiMapping, 48> kTitleMulti{{
    {0xDF, U"\u0053\u0073"},         {0x149, U"\u02BC\u004E"},        {0x1F0, U"\u004A\u030C"},
    {0x390, U"\u0399\u0308\u0301"},  {0x3B0, U"\u03A5\u0308\u0301"},  {0x587, U"\u0535\u0582"},
    {0x1E96, U"\u0048\u0331"},       {0x1E97, U"\u0054\u0308"},       {0x1E98, U"\u0057\u030A"},
    {0x1E99, U"\u0059\u030A"},       {0x1E9A, U"\u0041\u02BE"},       {0x1F50, U"\u03A5\u0313"},
    {0x1F52, U"\u03A5\u0313\u0300"}, {0x1F54, U"\u03A5\u0313\u0301"}, {0x1F56, U"\u03A5\u0313\u0342"},
    {0x1FB2, U"\u1FBA\u0345"},       {0x1FB4, U"\u0386\u0345"},       {0x1FB6, U"\u0391\u0342"},
    {0x1FB7, U"\u0391\u0342\u0345"}, {0x1FC2, U"\u1FCA\u0345"},       {0x1FC4, U"\u0389\u0345"},
    {0x1FC6, U"\u0397\u0342"},       {0x1FC7, U"\u0397\u0342\u0345"}, {0x1FD2, U"\u0399\u0308\u0300"},
    {0x1FD3, U"\u0399\u0308\u0301"}, {0x1FD6, U"\u0399\u0342"},       {0x1FD7, U"\u0399\u0308\u0342"},
    {0x1FE2, U"\u03A5\u0308\u0300"}, {0x1FE3, U"\u03A5\u0308\u0301"}, {0x1FE4, U"\u03A1\u0313"},
    {0x1FE6, U"\u03A5\u0342"},       {0x1FE7, U"\u03A5\u0308\u0342"}, {0x1FF2, U"\u1FFA\u0345"},
    {0x1FF4, U"\u038F\u0345"},       {0x1FF6, U"\u03A9\u0342"},       {0x1FF7, U"\u03A9\u0342\u0345"},
    {0xFB00, U"\u0046\u0066"},       {0xFB01, U"\u0046\u0069"},       {0xFB02, U"\u0046\u006C"},
    {0xFB03, U"\u0046\u0066\u0069"}, {0xFB04, U"\u0046\u0066\u006C"}, {0xFB05, U"\u0053\u0074"},
    {0xFB06, U"\u0053\u0074"},       {0xFB13, U"\u0544\u0576"},       {0xFB14, U"\u0544\u0565"},
    {0xFB15, U"\u0544\u056B"},       {0xFB16, U"\u054E\u0576"},       {0xFB17, U"\u0544\u056D"},
}};

int category(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)); }

// Unicode "Cased": Lowercase, Uppercase or Lt. Other_Lowercase/Other_Uppercase letters are
// covered where they have a case mapping (circled letters); the remaining few (modifier letters
// such as U+02B0) only matter for the Final_Sigma context.
bool is_cased(char32_t c) {
  const int cat = category(c);
  if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT)
    return true;
  const auto i = static_cast<utf8proc_int32_t>(c);
  return utf8proc_tolower(i) != i || utf8proc_toupper(i) != i;
}

// Unicode "Case_Ignorable": Mn, Me, Cf, Lm, Sk, or Word_Break MidLetter/MidNumLet/Single_Quote.
bool is_case_ignorable(char32_t c) {
  const int cat = category(c);
  if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
      cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK)
    return true;
  switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4:
    case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55:
    case 0xFF07: case 0xFF0E: case 0xFF1A:
      return true;
    default:
      return false;
  }
}

// CPython's handle_capital_sigma: U+03A3 lowercases to final sigma after a cased letter
// (skipping case-ignorables) when no cased letter follows (skipping case-ignorables).
char32_t lower_capital_sigma(const std::u32string& s, std::size_t i) {
  std::size_t j = i;
  char32_t c = 0;
  bool found = false;
  while (j > 0) {
    c = s[--j];
    if (!is_case_ignorable(c)) {
      found = true;
      break;
    }
  }
  bool final_sigma = found && is_cased(c);
  if (final_sigma && i + 1 < s.size()) {
    std::size_t k = i + 1;
    for (; k < s.size(); ++k) {
      c = s[k];
      if (!is_case_ignorable(c)) break;
    }
    final_sigma = k == s.size() || !is_cased(c);
  }
  return final_sigma ? 0x3C2 : 0x3C3;
}

std::size_t strip_begin(const std::u32string& s) {
  std::size_t b = 0;
  while (b < s.size() && is_python_whitespace(s[b])) ++b;
  return b;
}
std::size_t strip_end(const std::u32string& s, std::size_t b) {
  std::size_t e = s.size();
  while (e > b && is_python_whitespace(s[e - 1])) --e;
  return e;
}

std::string encode(const std::u32string& s, std::size_t b, std::size_t e) {
  std::string out;
  out.reserve(e - b);
  for (std::size_t i = b; i < e; ++i) append_utf8(out, s[i]);
  return out;
}

}  // namespace

bool is_valid_utf8(std::string_view utf8) {
  for (std::size_t i = 0; i < utf8.size();) {
    char32_t c;
    const std::size_t n = decode_one(utf8, i, c);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::size_t code_point_count(std::string_view utf8) { return decode(utf8).size(); }

bool is_python_whitespace(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x1C: case 0x1D: case 0x1E:
    case 0x1F: case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

std::string python_strip(std::string_view utf8) {
  const auto s = decode(utf8);
  const std::size_t b = strip_begin(s);
  return encode(s, b, strip_end(s, b));
}
std::string python_lstrip(std::string_view utf8) {
  const auto s = decode(utf8);
  return encode(s, strip_begin(s), s.size());
}
std::string python_rstrip(std::string_view utf8) {
  const auto s = decode(utf8);
  return encode(s, 0, strip_end(s, 0));
}

std::string python_capitalize(std::string_view utf8) {
  const auto s = decode(utf8);
  std::string out;
  out.reserve(utf8.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (i == 0) {
      const auto multi = std::find_if(kTitleMulti.begin(), kTitleMulti.end(),
                                      [&](const MultiMapping& m) { return m.from == c; });
      if (multi != kTitleMulti.end()) {
        for (char32_t t : multi->to) append_utf8(out, t);
      } else {
        append_utf8(out, static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c))));
      }
    } else if (c == 0x130) {  // the one unconditional multi-code-point lowercase mapping
      append_utf8(out, U'i');
      append_utf8(out, 0x307);
    } else if (c == 0x3A3) {
      append_utf8(out, lower_capital_sigma(s, i));
    } else {
      append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  return out;
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  if (from.empty()) throw Error("", "replace_all", "empty pattern");
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (true) {
    const std::size_t hit = text.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

std::string remove_bracketed(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '[') {
      std::size_t j = i + 1;
      while (j < text.size() && text[j] != ']' && text[j] != '\n') ++j;
      if (j < text.size() && text[j] == ']') {
        i = j + 1;
        continue;
      }
    }
    out.push_back(text[i]);
    ++i;
  }
  return out;
}

std::string hellaswag_preprocess(std::string_view text) {
  std::string t = python_strip(text);
  t = replace_all(t, " [title]", ". ");
  t = remove_bracketed(t);
  return replace_all(t, "  ", " ");
}

}  // namespace c3po::data
