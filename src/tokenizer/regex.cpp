#include "tokenizer/regex.h"

#include "io/error.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

#include "tokenizer/unicode.h"

namespace c3po::tokenizer {

namespace {
constexpr std::string_view kWhiteSpace = "\\p{White_Space}";
constexpr std::string_view kNotWhiteSpace = "\\P{White_Space}";
constexpr std::string_view kWordItems = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}";
constexpr std::string_view kHexItems = "0-9A-Fa-f";

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
}  // namespace

std::string translate_oniguruma(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  int class_depth = 0;  // Oniguruma allows nested classes; track depth to know where we are
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      ++i;
      const bool in_class = class_depth > 0;
      switch (e) {
        case 's': out += kWhiteSpace; break;
        case 'S': out += kNotWhiteSpace; break;
        case 'w':
          if (in_class) out += kWordItems; else (out += "[") += std::string(kWordItems) + "]";
          break;
        case 'W':
          if (in_class) throw std::invalid_argument("\\W inside a character class is not supported");
          (out += "[^") += std::string(kWordItems) + "]";
          break;
        case 'h':
          if (in_class) out += kHexItems; else (out += "[") += std::string(kHexItems) + "]";
          break;
        case 'H':
          if (in_class) throw std::invalid_argument("\\H inside a character class is not supported");
          (out += "[^") += std::string(kHexItems) + "]";
          break;
        case 'u':
          if (i + 4 < p.size() && is_hex(p[i + 1]) && is_hex(p[i + 2]) &&
              is_hex(p[i + 3]) && is_hex(p[i + 4])) {
            out += "\\x{";
            out.append(p.substr(i + 1, 4));
            out += "}";
            i += 4;
          } else {
            throw std::invalid_argument("\\u must be followed by 4 hex digits");
          }
          break;
        default:
          out += '\\';
          out += e;
          // Keep \p{..}, \x{..}, \N{..} bodies verbatim (no brackets inside to confuse depth).
          if ((e == 'p' || e == 'P' || e == 'x') && i + 1 < p.size() && p[i + 1] == '{') {
            const auto close = p.find('}', i + 1);
            if (close == std::string_view::npos) throw std::invalid_argument("unterminated \\p{ or \\x{");
            out.append(p.substr(i + 1, close - i));
            i = close;
          }
      }
      continue;
    }
    if (c == '[') {
      if (class_depth > 0 && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX [:name:]
        const auto close = p.find(":]", i + 2);
        if (close == std::string_view::npos) throw std::invalid_argument("unterminated [: :]");
        out.append(p.substr(i, close + 2 - i));
        i = close + 1;
        continue;
      }
      if (class_depth > 0) throw std::invalid_argument("nested character classes are not supported");
      ++class_depth;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') {
        out += '^';
        ++i;
      }
      if (i + 1 < p.size() && p[i + 1] == ']') {
        out += "\\]";
        ++i;
      }
      continue;
    }
    if (c == ']' && class_depth > 0) {
      --class_depth;
      out += c;
      continue;
    }
    if (class_depth > 0 && c == '&' && i + 1 < p.size() && p[i + 1] == '&')
      throw std::invalid_argument("class intersection && is not supported");
    out += c;
  }
  return out;
}

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() {
    if (code) pcre2_code_free(code);
  }
};

Regex::Regex(std::string_view pattern, bool literal) : code_(std::make_unique<Code>()) {
  const std::string translated = literal ? std::string(pattern) : translate_oniguruma(pattern);
  // PCRE2_LITERAL admits no UCP (and needs none). Oniguruma's Ruby syntax (what tokenizers compiles
  // with) makes ^ and $ line anchors: PCRE2_MULTILINE.
  const uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE;
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), options,
                              &error, &error_offset, nullptr);
  if (!code_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    throw std::invalid_argument("regex does not compile at offset " + std::to_string(error_offset) + ": " +
                                reinterpret_cast<const char*>(message));
  }
  code_->jit = pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

std::vector<std::pair<std::size_t, std::size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(code_->code, nullptr), &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t last_end = 0;
  bool have_last = false;
  std::size_t last_match_end = 0;
  while (last_end <= text.size()) {
    int rc = pcre2_match(code_->code, subject, text.size(), last_end, PCRE2_NO_UTF_CHECK, data.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // very long runs: the interpreter keeps its frames on the heap
      rc = pcre2_match(code_->code, subject, text.size(), last_end, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                       data.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      throw Error("tokenizer.json", "pre_tokenizer regex", std::string("match failed: ") + reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.get());
    const std::size_t start = ov[0], end = ov[1];
    if (start == end && have_last && last_match_end == end) {
      last_end += last_end < text.size() ? unicode::utf8_length(static_cast<unsigned char>(text[last_end])) : 1;
      continue;
    }
    last_end = end;
    last_match_end = end;
    have_last = true;
    matches.emplace_back(start, end);
  }
  return matches;
}

}  // namespace c3po::tokenizer
