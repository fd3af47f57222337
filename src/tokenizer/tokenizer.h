#pragma once
// An exact implementation of Hugging Face tokenizer.json: the same ids as the `tokenizers` library
// for the same text. Pipeline: added tokens -> normalizer -> pre-tokenizer -> model -> post-processor;
// decode: ids -> tokens -> decoder.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace c3po::tokenizer {

struct AddedToken {
  std::int32_t id = 0;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// encode and decode are const and may be called from several threads at once.
// Answer letters: with byte-level vocabularies (Qwen, Llama-3, DeepSeek, GPT-NeoX) " A" is one token
// ("ĠA"); with legacy SentencePiece files (Llama-2, Mixtral) encode(" A") gives "▁" "▁A", exactly as
// transformers does, so take the letter token from encode(context + " A") minus encode(context).
class Tokenizer {
 public:
  // path: a tokenizer.json, or a folder holding one. A tokenizer_config.json beside it that sets
  // add_bos_token / add_eos_token replaces the post-processor by BOS $A EOS accordingly, as
  // transformers' LlamaTokenizerFast / GPTNeoXTokenizerFast do. Every problem is a c3po::Error that
  // names the file and the JSON field.
  static Tokenizer load(const std::string& path);
  // From tokenizer.json text (config_json may be empty); name is used in error messages.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json = {},
                             const std::string& name = "tokenizer.json");

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // text must be valid UTF-8 (else c3po::Error). add_special_tokens: apply the post-processor
  // (BOS/EOS, [CLS]/[SEP]); special tokens written in the text are matched either way.
  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  std::vector<std::int32_t> encode_no_special(std::string_view text) const { return encode(text, false); }
  // An id outside the vocabulary is a c3po::Error. skip_special drops added tokens marked special.
  std::string decode(const std::vector<std::int32_t>& ids, bool skip_special = false) const;

  // Added tokens first, then the model's vocabulary (the order tokenizers uses).
  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  // The token string of id (in the model's alphabet, e.g. "ĠA"); c3po::Error if unknown.
  std::string id_to_token(std::int32_t id) const;
  // 1 + the largest id of the vocabulary and the added tokens: the rows an embedding needs.
  std::int32_t vocab_size() const;
  // From tokenizer_config.json's bos_token / eos_token, when given there.
  std::optional<std::int32_t> bos_id() const;
  std::optional<std::int32_t> eos_id() const;
  const std::vector<AddedToken>& added_tokens() const;
  const std::string& source() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  void check_special_ids(const std::string& name) const;  // c3po::Error for an id outside the vocabulary
  std::unique_ptr<Impl> impl_;
};

}  // namespace c3po::tokenizer
