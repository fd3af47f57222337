// Normalizers of tokenizer.json (tokenizers/src/normalizers/*), applied to a whole piece of text.
#include <stdexcept>

#include "tokenizer/components.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace c3po::tokenizer::detail {

namespace {

class UnicodeForm final : public Normalizer {
 public:
  explicit UnicodeForm(unicode::Form form) : form_(form) {}
  void normalize(std::string& text) const override { text = unicode::normalize(text, form_); }

 private:
  unicode::Form form_;
};

class Lowercase final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = unicode::lowercase(text); }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    std::size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        std::size_t i = begin;
        if (!unicode::is_white_space(unicode::next_code_point(text, i))) break;
        begin = i;
      }
    }
    if (right_) {
      while (end > begin) {
        std::size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        std::size_t i = start;
        if (!unicode::is_white_space(unicode::next_code_point(text, i))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

template <class Pred>
std::string remove_chars(std::string_view text, Pred drop) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t begin = i;
    const char32_t c = unicode::next_code_point(text, i);
    if (!drop(c)) out.append(text.substr(begin, i - begin));
  }
  return out;
}

// Removes every mark (Mn, Mc, Me) without decomposing first, like tokenizers' StripAccents
// (BertNormalizer instead decomposes and removes Mn only).
class StripAccents final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = remove_chars(text, unicode::is_mark); }
};

class Replace final : public Normalizer {
 public:
  Replace(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    const auto matches = pattern_.find_all(text);
    if (matches.empty()) return;
    std::string out;
    out.reserve(text.size());
    std::size_t last = 0;
    for (const auto& [b, e] : matches) {
      out.append(text, last, b - last);
      out += content_;
      last = e;
    }
    out.append(text, last, std::string::npos);
    text = std::move(out);
  }

 private:
  Regex pattern_;
  std::string content_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool handle_chinese_chars, bool strip_accents, bool lowercase)
      : clean_text_(clean_text), chinese_(handle_chinese_chars), strip_accents_(strip_accents), lowercase_(lowercase) {}
  void normalize(std::string& text) const override {
    if (clean_text_ || chinese_) {
      std::string out;
      out.reserve(text.size());
      for (std::size_t i = 0; i < text.size();) {
        const std::size_t begin = i;
        const char32_t c = unicode::next_code_point(text, i);
        if (clean_text_) {
          // As tokenizers' bert.rs: control characters (category C*, except tab, newline and
          // carriage return) are removed first, even those that are also white space (\x0b,
          // \x0c, \x85); the remaining white space becomes ' '.
          const bool tab_or_newline = c == '\t' || c == '\n' || c == '\r';
          if (c == 0 || c == 0xFFFD || (!tab_or_newline && unicode::is_other(c))) continue;
          if (tab_or_newline || unicode::is_white_space(c)) {
            out.push_back(' ');
            continue;
          }
        }
        if (chinese_ && is_chinese_char(c)) {
          out.push_back(' ');
          out.append(text, begin, i - begin);
          out.push_back(' ');
          continue;
        }
        out.append(text, begin, i - begin);
      }
      text = std::move(out);
    }
    if (strip_accents_) text = remove_chars(unicode::normalize(text, unicode::Form::NFD), unicode::is_mark_nonspacing);
    if (lowercase_) text = unicode::lowercase(text);
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

class ByteLevelNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> items) : items_(std::move(items)) {}
  void normalize(std::string& text) const override {
    for (const auto& n : items_) n->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

}  // namespace

void ByteLevelNormalizer::normalize(std::string& text) const { text = byte_level_map(text); }

Regex make_pattern(const Json& pattern, const Where& where) {
  if (!pattern.is_object() || pattern.size() != 1)
    where.fail("expected {\"String\": ...} or {\"Regex\": ...}");
  try {
    if (pattern.contains("String")) return Regex(string_member(pattern, "String", where), true);
    if (pattern.contains("Regex")) return Regex(string_member(pattern, "Regex", where), false);
  } catch (const std::invalid_argument& e) {
    where.fail(e.what());
  }
  where.fail("expected {\"String\": ...} or {\"Regex\": ...}, got " + pattern.dump());
}

std::unique_ptr<Normalizer> make_normalizer(const Json& j, const Where& where) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, where);
  if (type == "NFC") return std::make_unique<UnicodeForm>(unicode::Form::NFC);
  if (type == "NFD") return std::make_unique<UnicodeForm>(unicode::Form::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(unicode::Form::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(unicode::Form::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Strip")
    return std::make_unique<Strip>(bool_member(j, "strip_left", true, where), bool_member(j, "strip_right", true, where));
  if (type == "Replace")
    return std::make_unique<Replace>(make_pattern(member(j, "pattern", where), where.at("pattern")),
                                     string_member(j, "content", where));
  if (type == "Prepend") return std::make_unique<Prepend>(string_member(j, "prepend", where));
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "BertNormalizer") {
    const bool lowercase = bool_member(j, "lowercase", true, where);
    return std::make_unique<BertNormalizer>(bool_member(j, "clean_text", true, where),
                                            bool_member(j, "handle_chinese_chars", true, where),
                                            bool_member(j, "strip_accents", lowercase, where), lowercase);
  }
  if (type == "Sequence") {
    const Json& list = member(j, "normalizers", where);
    if (!list.is_array()) where.at("normalizers").fail("expected an array");
    std::vector<std::unique_ptr<Normalizer>> items;
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto n = make_normalizer(list[i], where.at("normalizers").index(i));
      if (n) items.push_back(std::move(n));
    }
    return std::make_unique<Sequence>(std::move(items));
  }
  where.at("type").fail("unsupported normalizer type \"" + type +
                        "\" (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, "
                        "ByteLevel, BertNormalizer, Sequence)");
}

}  // namespace c3po::tokenizer::detail
