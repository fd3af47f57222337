#pragma once
// Internal pipeline stages of a tokenizer.json (normalizer, pre-tokenizer, model, post-processor,
// decoder) and their factories. Not part of the public API: include tokenizer/tokenizer.h instead.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace c3po::tokenizer::detail {

using Json = nlohmann::json;

// Where a JSON value sits: the file and the dotted field path, for c3po::Error messages.
struct Where {
  std::string file;
  std::string field;
  Where at(std::string_view key) const;
  Where index(std::size_t i) const;
  [[noreturn]] void fail(const std::string& problem) const;
};

// Typed access to object members; a wrong type or a missing required member is a c3po::Error.
const Json& member(const Json& object, std::string_view key, const Where& where);
std::string string_member(const Json& object, std::string_view key, const Where& where);
std::optional<std::string> optional_string(const Json& object, std::string_view key, const Where& where);
bool bool_member(const Json& object, std::string_view key, bool fallback, const Where& where);
std::int64_t int_member(const Json& object, std::string_view key, std::int64_t fallback, const Where& where);
std::string type_of(const Json& object, const Where& where);

// A piece of the input on its way through the pipeline. at_origin: it starts at byte 0 of the
// original input (Metaspace's prepend_scheme "first" depends on it).
struct Piece {
  std::string text;
  bool at_origin = false;
};

// How the pieces around a delimiter are formed (tokenizers' SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
struct Span {
  std::size_t begin, end;
  bool is_match;
};
// Cuts piece into sub-pieces; spans cover the piece in order. Empty sub-pieces are dropped.
void split_piece(const Piece& piece, const std::vector<Span>& spans, SplitBehavior behavior,
                 std::vector<Piece>& out);
// The spans of a predicate that matches single characters (each matching character is one match).
template <class Pred>
std::vector<Span> char_spans(std::string_view s, Pred pred);

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces each piece by its sub-pieces.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual void tokenize(std::string_view word, std::vector<std::int32_t>& ids) const = 0;
  virtual std::optional<std::int32_t> token_to_id(std::string_view token) const = 0;
  virtual const std::string* id_to_token(std::int32_t id) const = 0;
  virtual std::int32_t id_limit() const = 0;  // 1 + largest id
  virtual std::size_t vocab_count() const = 0;  // number of entries (tokenizers' get_vocab_size)
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<std::int32_t>& ids) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Each factory returns nullptr for a JSON null and throws c3po::Error naming the field for an
// unknown type or a bad option.
std::unique_ptr<Normalizer> make_normalizer(const Json& j, const Where& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const Where& where);
std::unique_ptr<Model> make_model(const Json& j, const Where& where);
std::unique_ptr<PostProcessor> make_post_processor(const Json& j, const Where& where);
std::unique_ptr<Decoder> make_decoder(const Json& j, const Where& where);

// {"String": s} (literal) or {"Regex": r} (Oniguruma syntax), as in Split, Replace.
Regex make_pattern(const Json& pattern, const Where& where);
// GPT-2's byte-to-character table: every byte of bytes becomes one printable character.
std::string byte_level_map(std::string_view bytes);

// TemplateProcessing for one sequence: prefix ids, the sequence, suffix ids.
std::unique_ptr<PostProcessor> make_template(std::vector<std::int32_t> prefix, std::vector<std::int32_t> suffix);

template <class Pred>
std::vector<Span> char_spans(std::string_view s, Pred pred) {
  std::vector<Span> spans;
  std::size_t last = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t begin = i;
    const auto b = static_cast<unsigned char>(s[i]);
    char32_t c;
    if (b < 0x80) {
      c = b;
      ++i;
    } else {
      std::size_t n = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
      c = b & (0x7F >> n);
      for (std::size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      i += n;
    }
    if (pred(c)) {
      if (last < begin) spans.push_back({last, begin, false});
      spans.push_back({begin, i, true});
      last = i;
    }
  }
  if (last < s.size()) spans.push_back({last, s.size(), false});
  return spans;
}

}  // namespace c3po::tokenizer::detail
