#pragma once
// A small GPT-2-style byte-level BPE: trainer, encoder and Hugging Face tokenizer.json writer.
// The encoder is the reference the demo trains with until the c3po tokenizer is plugged in; the
// tests check that both give the same ids on the written tokenizer.json.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace c3po::demo {

inline constexpr const char* kEndOfText = "<|endoftext|>";

// GPT-2 bytes_to_unicode: the printable character (as UTF-8) that stands for one byte.
const std::string& byte_char(uint8_t byte);
std::string to_byte_level(const std::string& bytes);
// Inverse of to_byte_level; throws c3po::Error if a character is not a byte-level character.
std::string from_byte_level(const std::string& chars);

// Splits text with the GPT-2 regex (Unicode classes, as HF's ByteLevel(use_regex=true) does).
std::vector<std::string> gpt2_pretokenize(const std::string& text);

struct BpeModel {
  std::vector<std::string> tokens;  // id -> byte-level token string; id 0 is <|endoftext|>
  std::vector<std::pair<std::string, std::string>> merges;  // rank order

  int id_of(const std::string& byte_level_token) const;  // -1 if absent
};

// Learns merges on texts until the vocabulary (bytes + <|endoftext|> + merges) reaches
// vocab_size. Each string of forced_tokens (raw text, e.g. " A") becomes a single token through
// merges placed first. Deterministic: ties between equally frequent pairs go to the smaller pair
// (by token strings).
BpeModel train_bpe(const std::vector<std::string>& texts, int vocab_size,
                   const std::vector<std::string>& forced_tokens);

// A tokenizer.json for Hugging Face `tokenizers` (BPE, ByteLevel pre-tokenizer and decoder).
nlohmann::json to_tokenizer_json(const BpeModel& model);

class BpeEncoder {
 public:
  explicit BpeEncoder(const BpeModel& model);
  // <|endoftext|> in the text becomes its id; the rest is pre-tokenized and merged by rank.
  std::vector<int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  void encode_word(const std::string& word, std::vector<int32_t>& out) const;
  std::vector<std::string> tokens_;
  std::map<std::string, int32_t> vocab_;
  std::map<std::pair<std::string, std::string>, int> ranks_;
};

}  // namespace c3po::demo

namespace c3po::demo {
// Reads back the vocab and merges of a tokenizer.json written by to_tokenizer_json (either merges
// spelling); errors name origin and the field.
BpeModel bpe_from_tokenizer_json(const nlohmann::json& j, const std::string& origin);
}  // namespace c3po::demo
