// Pre-tokenizers of tokenizer.json (tokenizers/src/pre_tokenizers/*).
#include <array>

#include "tokenizer/components.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace c3po::tokenizer::detail {

namespace {

// GPT-2 bytes_to_unicode(): printable bytes map to themselves, the other 68 to U+0100 upwards.
std::array<std::string, 256> make_byte_table() {
  std::array<std::string, 256> table;
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    unicode::append_utf8(table[b], printable ? static_cast<char32_t>(b) : next++);
  }
  return table;
}

const std::array<std::string, 256>& byte_table() {
  static const std::array<std::string, 256> table = make_byte_table();  // immutable after first use
  return table;
}

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::vector<Span> regex_spans(const Regex& regex, std::string_view text, bool invert) {
  std::vector<Span> spans;
  std::size_t prev = 0;
  for (const auto& [b, e] : regex.find_all(text)) {
    if (prev != b) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != text.size()) spans.push_back({prev, text.size(), invert});
  return spans;
}

template <class Fn>
void split_each(std::vector<Piece>& pieces, Fn&& fn) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (const auto& p : pieces) fn(p, out);
  pieces = std::move(out);
}

SplitBehavior parse_behavior(const Json& j, std::string_view key, SplitBehavior fallback, const Where& where) {
  const auto name = optional_string(j, key, where);
  if (!name) return fallback;
  if (*name == "Removed") return SplitBehavior::Removed;
  if (*name == "Isolated") return SplitBehavior::Isolated;
  if (*name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (*name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (*name == "Contiguous") return SplitBehavior::Contiguous;
  where.at(key).fail("unknown split behavior \"" + *name +
                     "\" (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_each(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      Piece piece = p;
      if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' ')) piece.text.insert(0, " ");
      const std::size_t first = out.size();
      if (regex_) split_piece(piece, regex_spans(*regex_, piece.text, false), SplitBehavior::Isolated, out);
      else if (!piece.text.empty()) out.push_back(std::move(piece));
      for (std::size_t i = first; i < out.size(); ++i) out[i].text = byte_level_map(out[i].text);
    });
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class Split final : public PreTokenizer {
 public:
  Split(Regex regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_each(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      split_piece(p, regex_spans(regex_, p.text, invert_), behavior_, out);
    });
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

enum class PrependScheme { Always, First, Never };

class Metaspace final : public PreTokenizer {
 public:
  Metaspace(std::string replacement, char32_t replacement_char, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), replacement_char_(replacement_char), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_each(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      Piece piece{std::string(), p.at_origin};
      piece.text.reserve(p.text.size() + 8);
      for (char c : p.text) {
        if (c == ' ') piece.text += replacement_;
        else piece.text.push_back(c);
      }
      const bool starts = piece.text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && piece.at_origin)))
        piece.text.insert(0, replacement_);
      if (split_) {
        const char32_t r = replacement_char_;
        split_piece(piece, char_spans(piece.text, [r](char32_t c) { return c == r; }), SplitBehavior::MergedWithNext,
                    out);
      } else if (!piece.text.empty()) {
        out.push_back(std::move(piece));
      }
    });
  }

 private:
  std::string replacement_;
  char32_t replacement_char_;
  PrependScheme scheme_;
  bool split_;
};

template <class Pred>
class CharSplit final : public PreTokenizer {
 public:
  CharSplit(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_each(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      split_piece(p, char_spans(p.text, pred_), behavior_, out);
    });
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};
template <class Pred>
std::unique_ptr<PreTokenizer> char_split(Pred pred, SplitBehavior behavior) {
  return std::make_unique<CharSplit<Pred>>(pred, behavior);
}

bool is_bert_punctuation(char32_t c) { return unicode::is_ascii_punctuation(c) || unicode::is_punctuation(c); }

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> items) : items_(std::move(items)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : items_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

char32_t single_char(const std::string& s, const Where& where) {
  if (s.empty() || unicode::count_code_points(s) != 1) where.fail("expected exactly one character, got \"" + s + "\"");
  std::size_t i = 0;
  return unicode::next_code_point(s, i);
}

}  // namespace

std::string byte_level_map(std::string_view bytes) {
  const auto& table = byte_table();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += table[b];
  return out;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const Where& where) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, where);
  if (type == "ByteLevel")
    return std::make_unique<ByteLevel>(bool_member(j, "add_prefix_space", true, where),
                                       bool_member(j, "use_regex", true, where));
  if (type == "Split") {
    return std::make_unique<Split>(make_pattern(member(j, "pattern", where), where.at("pattern")),
                                   parse_behavior(j, "behavior", SplitBehavior::Removed, where),
                                   bool_member(j, "invert", false, where));
  }
  if (type == "Metaspace") {
    const std::string replacement = string_member(j, "replacement", where);
    const char32_t c = single_char(replacement, where.at("replacement"));
    PrependScheme scheme = bool_member(j, "add_prefix_space", true, where) ? PrependScheme::Always : PrependScheme::Never;
    if (const auto s = optional_string(j, "prepend_scheme", where)) {
      if (*s == "always") scheme = PrependScheme::Always;
      else if (*s == "first") scheme = PrependScheme::First;
      else if (*s == "never") scheme = PrependScheme::Never;
      else where.at("prepend_scheme").fail("expected \"always\", \"first\" or \"never\", got \"" + *s + "\"");
    }
    return std::make_unique<Metaspace>(replacement, c, scheme, bool_member(j, "split", true, where));
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> items;
    items.push_back(char_split(unicode::is_white_space, SplitBehavior::Removed));
    items.push_back(char_split(is_bert_punctuation, SplitBehavior::Isolated));
    return std::make_unique<Sequence>(std::move(items));
  }
  if (type == "Whitespace") return std::make_unique<Split>(Regex(R"(\w+|[^\w\s]+)"), SplitBehavior::Removed, true);
  if (type == "WhitespaceSplit") return char_split(unicode::is_white_space, SplitBehavior::Removed);
  if (type == "Digits") {
    const bool individual = bool_member(j, "individual_digits", false, where);
    return char_split(unicode::is_numeric, individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
  }
  if (type == "Punctuation")
    return char_split(is_bert_punctuation, parse_behavior(j, "behavior", SplitBehavior::Isolated, where));
  if (type == "CharDelimiterSplit") {
    const char32_t d = single_char(string_member(j, "delimiter", where), where.at("delimiter"));
    return char_split([d](char32_t c) { return c == d; }, SplitBehavior::Removed);
  }
  if (type == "Sequence") {
    const Json& list = member(j, "pretokenizers", where);
    if (!list.is_array()) where.at("pretokenizers").fail("expected an array");
    std::vector<std::unique_ptr<PreTokenizer>> items;
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto p = make_pre_tokenizer(list[i], where.at("pretokenizers").index(i));
      if (p) items.push_back(std::move(p));
    }
    return std::make_unique<Sequence>(std::move(items));
  }
  where.at("type").fail("unsupported pre_tokenizer type \"" + type +
                        "\" (supported: ByteLevel, Split, Metaspace, BertPreTokenizer, Whitespace, WhitespaceSplit, "
                        "Digits, Punctuation, CharDelimiterSplit, Sequence)");
}

}  // namespace c3po::tokenizer::detail
