// Decoders of tokenizer.json (tokenizers/src/decoders/*): each maps the token strings to new strings,
// and the results are concatenated at the end.
#include <array>

#include "tokenizer/components.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace c3po::tokenizer::detail {

namespace {

// Inverse of GPT-2's byte table: code point -> byte, or -1.
std::array<int, 0x144> make_char_to_byte() {
  std::array<int, 0x144> table;
  table.fill(-1);
  int next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table[static_cast<std::size_t>(printable ? b : next++)] = b;
  }
  return table;
}

class ByteLevel final : public Decoder {
 public:
  ByteLevel() : table_(make_char_to_byte()) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      const std::size_t before = bytes.size();
      bool mapped = true;
      for (std::size_t i = 0; i < t.size() && mapped;) {
        const char32_t c = unicode::next_code_point(t, i);
        if (c < table_.size() && table_[c] >= 0) bytes.push_back(static_cast<char>(table_[c]));
        else mapped = false;
      }
      if (!mapped) {  // a token outside the byte alphabet (an added token) is kept as it is
        bytes.resize(before);
        bytes += t;
      }
    }
    tokens.assign(1, unicode::from_utf8_lossy(bytes));
  }

 private:
  std::array<int, 0x144> table_;
};

class Metaspace final : public Decoder {
 public:
  Metaspace(std::string replacement, bool prepend) : replacement_(std::move(replacement)), prepend_(prepend) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (std::size_t k = 0; k < t.size();) {
        if (t.compare(k, replacement_.size(), replacement_) == 0) {
          if (!(i == 0 && prepend_)) out.push_back(' ');  // every leading-token replacement is dropped
          k += replacement_.size();
        } else {
          out.push_back(t[k++]);
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool prepend_;
};

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;
  std::string out;
  std::size_t last = 0;
  for (std::size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, last)) {
    out.append(s, last, pos - last);
    out += to;
    last = pos + from.size();
  }
  out.append(s, last, std::string::npos);
  return out;
}

class WordPiece final : public Decoder {
 public:
  WordPiece(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) t.erase(0, prefix_.size());
        else t.insert(0, " ");
      }
      if (cleanup_) {
        static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
            {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
            {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
        for (const auto& [from, to] : kRules) t = replace_all(std::move(t), from, to);
      }
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class Replace final : public Decoder {
 public:
  Replace(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::string out;
      std::size_t last = 0;
      for (const auto& [b, e] : pattern_.find_all(t)) {
        out.append(t, last, b - last);
        out += content_;
        last = e;
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  Regex pattern_;
  std::string content_;
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class ByteFallback final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (unicode::find_invalid_utf8(pending) == std::string::npos) out.push_back(pending);
      else
        for (std::size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      pending.clear();
    };
    for (auto& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex_value(t[3]) >= 0 && hex_value(t[4]) >= 0) {
        pending.push_back(static_cast<char>(hex_value(t[3]) * 16 + hex_value(t[4])));
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }
};

class Fuse final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class Strip final : public Decoder {
 public:
  Strip(char32_t content, std::size_t start, std::size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::pair<std::size_t, char32_t>> chars;  // (byte offset, code point)
      for (std::size_t i = 0; i < t.size();) {
        const std::size_t at = i;
        chars.emplace_back(at, unicode::next_code_point(t, i));
      }
      std::size_t begin = 0, end = chars.size();
      for (std::size_t i = 0; i < start_ && i < chars.size() && chars[i].second == content_; ++i) begin = i + 1;
      for (std::size_t i = 0; i < stop_ && i < chars.size() && chars[chars.size() - 1 - i].second == content_; ++i)
        end = chars.size() - 1 - i;
      if (begin >= end) {
        t.clear();
        continue;
      }
      const std::size_t b = chars[begin].first, e = end < chars.size() ? chars[end].first : t.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  char32_t content_;
  std::size_t start_, stop_;
};

class BpeSuffix final : public Decoder {
 public:
  explicit BpeSuffix(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = replace_all(std::move(tokens[i]), suffix_, i + 1 == tokens.size() ? "" : " ");
  }

 private:
  std::string suffix_;
};

class Sequence final : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> items) : items_(std::move(items)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& d : items_) d->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

char32_t one_char(const std::string& s, const Where& where) {
  if (unicode::count_code_points(s) != 1) where.fail("expected exactly one character, got \"" + s + "\"");
  std::size_t i = 0;
  return unicode::next_code_point(s, i);
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const Json& j, const Where& where) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, where);
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "Metaspace") {
    bool prepend = bool_member(j, "add_prefix_space", true, where);
    if (const auto s = optional_string(j, "prepend_scheme", where)) {
      if (*s != "always" && *s != "first" && *s != "never")
        where.at("prepend_scheme").fail("expected \"always\", \"first\" or \"never\", got \"" + *s + "\"");
      prepend = *s != "never";
    }
    const std::string replacement = string_member(j, "replacement", where);
    one_char(replacement, where.at("replacement"));
    return std::make_unique<Metaspace>(replacement, prepend);
  }
  if (type == "WordPiece")
    return std::make_unique<WordPiece>(optional_string(j, "prefix", where).value_or("##"),
                                       bool_member(j, "cleanup", true, where));
  if (type == "Replace")
    return std::make_unique<Replace>(make_pattern(member(j, "pattern", where), where.at("pattern")),
                                     string_member(j, "content", where));
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") {
    const auto start = int_member(j, "start", 0, where), stop = int_member(j, "stop", 0, where);
    if (start < 0 || stop < 0) where.fail("start and stop must be non-negative");
    return std::make_unique<Strip>(one_char(string_member(j, "content", where), where.at("content")),
                                   static_cast<std::size_t>(start), static_cast<std::size_t>(stop));
  }
  if (type == "BPEDecoder") return std::make_unique<BpeSuffix>(optional_string(j, "suffix", where).value_or("</w>"));
  if (type == "Sequence") {
    const Json& list = member(j, "decoders", where);
    if (!list.is_array()) where.at("decoders").fail("expected an array");
    std::vector<std::unique_ptr<Decoder>> items;
    for (std::size_t i = 0; i < list.size(); ++i)
      if (auto d = make_decoder(list[i], where.at("decoders").index(i))) items.push_back(std::move(d));
    return std::make_unique<Sequence>(std::move(items));
  }
  where.at("type").fail("unsupported decoder type \"" + type +
                        "\" (supported: ByteLevel, Metaspace, WordPiece, Replace, ByteFallback, Fuse, Strip, "
                        "BPEDecoder, Sequence)");
}

}  // namespace c3po::tokenizer::detail
