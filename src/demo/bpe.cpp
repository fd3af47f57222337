#include "demo/bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "io/error.h"

namespace c3po::demo {

namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

const std::array<std::string, 256>& byte_table() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      t[b] = utf8(printable ? static_cast<uint32_t>(b) : next++);
    }
    return t;
  }();
  return table;
}

// Splits a byte-level string into its characters (each 1 or 2 UTF-8 bytes here).
std::vector<std::string> chars_of(const std::string& s) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};

const pcre2_code* gpt2_regex() {
  static const std::unique_ptr<pcre2_code, CodeDeleter> code = [] {
    const char* pattern =
        R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    int err = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
    if (!c) throw Error("", "gpt2 regex", "PCRE2 failed to compile the pattern");
    return std::unique_ptr<pcre2_code, CodeDeleter>(c);
  }();
  return code.get();
}

}  // namespace

const std::string& byte_char(uint8_t byte) { return byte_table()[byte]; }

std::string to_byte_level(const std::string& bytes) {
  std::string out;
  for (unsigned char b : bytes) out += byte_table()[b];
  return out;
}

std::string from_byte_level(const std::string& chars) {
  static const std::map<std::string, char> inverse = [] {
    std::map<std::string, char> m;
    for (int b = 0; b < 256; ++b) m[byte_table()[b]] = static_cast<char>(b);
    return m;
  }();
  std::string out;
  for (const auto& c : chars_of(chars)) {
    auto it = inverse.find(c);
    if (it == inverse.end()) throw Error("", "token", "'" + c + "' is not a byte-level character");
    out += it->second;
  }
  return out;
}

std::vector<std::string> gpt2_pretokenize(const std::string& text) {
  std::vector<std::string> pieces;
  const pcre2_code* re = gpt2_regex();
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
      pcre2_match_data_create_from_pattern(re, nullptr), pcre2_match_data_free);
  PCRE2_SIZE start = 0;
  while (start < text.size()) {
    const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start, 0,
                               md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error("", "text", "not valid UTF-8 (the GPT-2 pre-tokenizer needs UTF-8)");
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    // The pattern's last alternatives match any character, so matches are contiguous.
    if (ov[0] != start || ov[1] == ov[0]) throw Error("", "text", "pre-tokenizer made no progress");
    pieces.push_back(text.substr(ov[0], ov[1] - ov[0]));
    start = ov[1];
  }
  return pieces;
}

int BpeModel::id_of(const std::string& t) const {
  auto it = std::find(tokens.begin(), tokens.end(), t);
  return it == tokens.end() ? -1 : static_cast<int>(it - tokens.begin());
}

BpeModel train_bpe(const std::vector<std::string>& texts, int vocab_size,
                   const std::vector<std::string>& forced_tokens) {
  if (vocab_size < 257) throw Error("", "vocab_size", "must be at least 257 (bytes + <|endoftext|>)");
  BpeModel model;
  model.tokens.push_back(kEndOfText);
  for (int b = 0; b < 256; ++b) model.tokens.push_back(byte_table()[b]);

  // Unique pre-tokens with their counts, as symbol-id sequences.
  std::map<std::string, int64_t> counts;
  for (const auto& t : texts)
    for (const auto& w : gpt2_pretokenize(t)) ++counts[to_byte_level(w)];
  std::map<std::string, int> id;
  for (std::size_t i = 0; i < model.tokens.size(); ++i) id[model.tokens[i]] = static_cast<int>(i);
  std::vector<std::vector<int>> words;
  std::vector<int64_t> freq;
  for (const auto& [w, c] : counts) {
    std::vector<int> syms;
    for (const auto& ch : chars_of(w)) syms.push_back(id.at(ch));
    words.push_back(std::move(syms));
    freq.push_back(c);
  }

  auto apply_merge = [&](int a, int b, int merged) {
    for (auto& w : words) {
      std::vector<int> out;
      for (std::size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
          out.push_back(merged);
          ++i;
        } else {
          out.push_back(w[i]);
        }
      }
      w.swap(out);
    }
  };
  auto add_merge = [&](int a, int b) {
    const std::string merged = model.tokens[a] + model.tokens[b];
    model.merges.emplace_back(model.tokens[a], model.tokens[b]);
    int mid;
    if (auto it = id.find(merged); it != id.end()) {
      mid = it->second;
    } else {
      mid = static_cast<int>(model.tokens.size());
      model.tokens.push_back(merged);
      id[merged] = mid;
    }
    apply_merge(a, b, mid);
  };

  // Forced tokens: merge their characters left to right.
  for (const auto& f : forced_tokens) {
    auto chars = chars_of(to_byte_level(f));
    if (chars.empty()) continue;
    std::string acc = chars[0];
    for (std::size_t i = 1; i < chars.size(); ++i) {
      if (!id.count(acc + chars[i])) add_merge(id.at(acc), id.at(chars[i]));
      acc += chars[i];
    }
  }

  while (static_cast<int>(model.tokens.size()) < vocab_size) {
    std::map<std::pair<int, int>, int64_t> pairs;
    for (std::size_t w = 0; w < words.size(); ++w)
      for (std::size_t i = 0; i + 1 < words[w].size(); ++i) pairs[{words[w][i], words[w][i + 1]}] += freq[w];
    const std::pair<int, int>* best = nullptr;
    int64_t best_count = 0;
    for (const auto& [p, c] : pairs) {
      const bool better =
          c > best_count ||
          (c == best_count && best &&
           std::tie(model.tokens[p.first], model.tokens[p.second]) <
               std::tie(model.tokens[best->first], model.tokens[best->second]));
      if (better) {
        best = &p;
        best_count = c;
      }
    }
    if (!best || best_count < 2) break;  // nothing left worth merging
    add_merge(best->first, best->second);
  }
  return model;
}

nlohmann::json to_tokenizer_json(const BpeModel& model) {
  nlohmann::json vocab = nlohmann::json::object();
  for (std::size_t i = 0; i < model.tokens.size(); ++i) vocab[model.tokens[i]] = i;
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& [a, b] : model.merges) merges.push_back(a + " " + b);
  nlohmann::json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {{{"id", 0}, {"content", kEndOfText}, {"single_word", false}, {"lstrip", false},
         {"rstrip", false}, {"normalized", false}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", nullptr},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
        {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merges}}},
  };
}

BpeEncoder::BpeEncoder(const BpeModel& model) : tokens_(model.tokens) {
  for (std::size_t i = 0; i < model.tokens.size(); ++i) vocab_[model.tokens[i]] = static_cast<int32_t>(i);
  for (std::size_t r = 0; r < model.merges.size(); ++r) ranks_.emplace(model.merges[r], static_cast<int>(r));
}

void BpeEncoder::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  auto syms = chars_of(to_byte_level(word));
  // Repeatedly merge the adjacent pair of lowest rank, leftmost first (as HF's BPE does).
  for (;;) {
    int best_rank = -1;
    std::size_t best_pos = 0;
    for (std::size_t i = 0; i + 1 < syms.size(); ++i) {
      auto it = ranks_.find({syms[i], syms[i + 1]});
      if (it != ranks_.end() && (best_rank < 0 || it->second < best_rank)) {
        best_rank = it->second;
        best_pos = i;
      }
    }
    if (best_rank < 0) break;
    syms[best_pos] += syms[best_pos + 1];
    syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(best_pos) + 1);
  }
  for (const auto& s : syms) out.push_back(vocab_.at(s));
}

std::vector<int32_t> BpeEncoder::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  const std::string eot = kEndOfText;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t hit = text.find(eot, pos);
    const std::string segment = text.substr(pos, hit == std::string::npos ? std::string::npos : hit - pos);
    for (const auto& w : gpt2_pretokenize(segment)) encode_word(w, ids);
    if (hit == std::string::npos) break;
    ids.push_back(0);
    pos = hit + eot.size();
  }
  return ids;
}

std::string BpeEncoder::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= static_cast<int32_t>(tokens_.size()))
      throw Error("", "token id", "expected an id in [0, " + std::to_string(tokens_.size() - 1) + "], got " +
                                      std::to_string(id));
    out += id == 0 ? std::string(kEndOfText) : from_byte_level(tokens_[static_cast<std::size_t>(id)]);
  }
  return out;
}

}  // namespace c3po::demo

namespace c3po::demo {

BpeModel bpe_from_tokenizer_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    throw Error(origin, "model", "expected an object");
  const auto& m = j["model"];
  if (m.value("type", std::string()) != "BPE") throw Error(origin, "model.type", "expected \"BPE\"");
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw Error(origin, "model.vocab", "expected an object");
  BpeModel model;
  model.tokens.resize(m["vocab"].size());
  std::vector<bool> filled(model.tokens.size(), false);
  for (const auto& [token, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= static_cast<int64_t>(filled.size()) ||
        filled[id.get<std::size_t>()])
      throw Error(origin, "model.vocab." + token, "expected a unique id in [0, vocab size)");
    model.tokens[id.get<std::size_t>()] = token;
    filled[id.get<std::size_t>()] = true;
  }
  if (!m.contains("merges") || !m["merges"].is_array()) throw Error(origin, "model.merges", "expected an array");
  for (const auto& merge : m["merges"]) {
    if (merge.is_string()) {
      const auto s = merge.get<std::string>();
      const auto space = s.find(' ');
      if (space == std::string::npos) throw Error(origin, "model.merges", "'" + s + "' is not \"a b\"");
      model.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      model.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    } else {
      throw Error(origin, "model.merges", "expected \"a b\" strings or [\"a\", \"b\"] pairs");
    }
  }
  if (model.tokens.empty() || model.tokens[0] != kEndOfText)
    throw Error(origin, "model.vocab", "expected <|endoftext|> at id 0 (a demo tokenizer)");
  return model;
}

}  // namespace c3po::demo
