#include "tokenizer/tokenizer.h"

#include "io/files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "io/error.h"
#include "tokenizer/components.h"
#include "tokenizer/unicode.h"

namespace c3po::tokenizer {

using detail::Json;
using detail::Piece;
using detail::Where;

namespace {

// Byte trie over added-token contents for leftmost-longest matching.
class TokenTrie {
 public:
  TokenTrie() : nodes_(1) {}
  void insert(std::string_view text, std::size_t token) {
    if (text.empty()) return;
    std::size_t node = 0;
    for (unsigned char b : text) {
      auto& next = nodes_[node].next;
      auto it = std::find_if(next.begin(), next.end(), [b](const auto& e) { return e.first == b; });
      if (it == next.end()) {
        next.emplace_back(b, nodes_.size());
        nodes_.emplace_back();
        node = nodes_.size() - 1;
      } else {
        node = it->second;
      }
    }
    if (nodes_[node].token < 0) nodes_[node].token = static_cast<long>(token);  // first registration wins
    first_byte_[static_cast<unsigned char>(text[0])] = true;
  }
  bool empty() const { return nodes_.size() == 1; }
  // Longest token starting at text[i]: (token index, end) or token index -1.
  std::pair<long, std::size_t> longest_at(std::string_view text, std::size_t i) const {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) return {-1, i};
    std::pair<long, std::size_t> best{-1, i};
    std::size_t node = 0;
    for (std::size_t k = i; k < text.size(); ++k) {
      const auto& next = nodes_[node].next;
      const auto b = static_cast<unsigned char>(text[k]);
      auto it = std::find_if(next.begin(), next.end(), [b](const auto& e) { return e.first == b; });
      if (it == next.end()) break;
      node = it->second;
      if (nodes_[node].token >= 0) best = {nodes_[node].token, k + 1};
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, std::size_t>> next;
    long token = -1;
  };
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
};

struct Part {
  std::string text;
  std::int32_t id;  // -1: still to be tokenized
  bool at_origin;
};

char32_t last_char(std::string_view s) {
  std::size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return unicode::next_code_point(s, start);
}
char32_t first_char(std::string_view s) {
  std::size_t i = 0;
  return unicode::next_code_point(s, i);
}

std::string read_file(const std::string& path) {
  io::require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "", "cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Json parse_json(std::string_view text, const std::string& name) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    throw Error(name, "", "malformed JSON at " + io::json_error_text(e));
  }
}

// A token given in tokenizer_config.json as "text" or {"content": "text", ...}; nullopt if null/absent.
std::optional<std::string> config_token(const Json& config, std::string_view key, const Where& where) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) return detail::string_member(*it, "content", where.at(key));
  where.at(key).fail("expected a string, {\"content\": ...} or null");
}

}  // namespace

struct Tokenizer::Impl {
  std::string source;
  std::unique_ptr<detail::Normalizer> normalizer;
  std::unique_ptr<detail::PreTokenizer> pre_tokenizer;
  std::unique_ptr<detail::Model> model;
  std::unique_ptr<detail::PostProcessor> post_processor;
  std::unique_ptr<detail::Decoder> decoder;
  std::vector<AddedToken> added;
  std::unordered_map<std::int32_t, std::size_t> added_by_id;
  std::unordered_map<std::string, std::size_t> added_by_content;
  TokenTrie raw_trie, normalized_trie;
  std::optional<std::int32_t> bos, eos;

  // tokenizers' AddedVocabulary::find_matches + split_with_indices.
  void split_added(const Part& part, const TokenTrie& trie, std::vector<Part>& out) const {
    const std::string_view s = part.text;
    if (trie.empty()) {
      out.push_back(part);
      return;
    }
    std::size_t start_offset = 0;
    auto emit = [&](std::size_t b, std::size_t e, std::int32_t id) {
      if (b < e) out.push_back({std::string(s.substr(b, e - b)), id, part.at_origin && b == 0});
    };
    for (std::size_t i = 0; i < s.size();) {
      const auto [token, end] = trie.longest_at(s, i);
      if (token < 0) {
        ++i;
        continue;
      }
      const AddedToken& t = added[static_cast<std::size_t>(token)];
      std::size_t start = i, stop = end;
      i = end;  // the matcher resumes after this match whether or not it is kept
      if (t.single_word) {
        const bool start_space = start == 0 || !unicode::is_word_char(last_char(s.substr(0, start)));
        const bool stop_space = stop == s.size() || !unicode::is_word_char(first_char(s.substr(stop)));
        if (!start_space || !stop_space) continue;
      }
      if (t.lstrip) {
        std::size_t new_start = start;
        while (new_start > 0) {
          std::size_t p = new_start - 1;
          while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
          std::size_t q = p;
          if (!unicode::is_white_space(unicode::next_code_point(s, q))) break;
          new_start = p;
        }
        start = std::max(new_start, start_offset);
      }
      if (t.rstrip) {
        while (stop < s.size()) {
          std::size_t q = stop;
          if (!unicode::is_white_space(unicode::next_code_point(s, q))) break;
          stop = q;
        }
      }
      emit(start_offset, start, -1);
      out.push_back({std::string(s.substr(start, stop - start)), t.id, part.at_origin && start == 0});
      start_offset = stop;
    }
    emit(start_offset, s.size(), -1);
  }

  const std::string* token_of(std::int32_t id) const {
    if (const auto it = added_by_id.find(id); it != added_by_id.end()) return &added[it->second].content;
    return model->id_to_token(id);
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path file = path;
  std::error_code ec;
  if (fs::is_directory(file, ec)) file /= "tokenizer.json";
  if (!fs::exists(file, ec)) throw Error(file.string(), "", "no such file (expected a tokenizer.json or a folder with one)");
  const std::string text = read_file(file.string());
  const fs::path config_path = file.parent_path() / "tokenizer_config.json";
  std::string config;
  if (fs::exists(config_path, ec)) config = read_file(config_path.string());
  return from_json(text, config, file.string());
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json, const std::string& name) {
  auto impl = std::make_unique<Impl>();
  impl->source = name;
  const Json j = parse_json(tokenizer_json, name);
  const Where root{name, ""};
  if (!j.is_object()) root.fail("expected a JSON object");
  // "truncation" and "padding" are ignored: transformers turns both off unless a call asks for them.

  impl->normalizer = detail::make_normalizer(j.value("normalizer", Json()), root.at("normalizer"));
  impl->pre_tokenizer = detail::make_pre_tokenizer(j.value("pre_tokenizer", Json()), root.at("pre_tokenizer"));
  impl->model = detail::make_model(detail::member(j, "model", root), root.at("model"));
  impl->post_processor = detail::make_post_processor(j.value("post_processor", Json()), root.at("post_processor"));
  impl->decoder = detail::make_decoder(j.value("decoder", Json()), root.at("decoder"));

  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const Json& list = j["added_tokens"];
    const Where wl = root.at("added_tokens");
    if (!list.is_array()) wl.fail("expected an array");
    auto next_id = static_cast<std::int32_t>(impl->model->vocab_count());
    for (std::size_t i = 0; i < list.size(); ++i) {
      const Where w = wl.index(i);
      AddedToken t;
      const auto id = detail::int_member(list[i], "id", -1, w);
      if (id < 0 || id > INT32_MAX) w.at("id").fail("expected a non-negative 32-bit id");
      t.id = static_cast<std::int32_t>(id);
      t.content = detail::string_member(list[i], "content", w);
      if (t.content.empty()) w.at("content").fail("an added token cannot be empty");
      t.special = detail::bool_member(list[i], "special", false, w);
      t.single_word = detail::bool_member(list[i], "single_word", false, w);
      t.lstrip = detail::bool_member(list[i], "lstrip", false, w);
      t.rstrip = detail::bool_member(list[i], "rstrip", false, w);
      t.normalized = detail::bool_member(list[i], "normalized", !t.special, w);
      // tokenizers ignores the ids written here: a token already known (as added token or in the
      // model) keeps that id, a new one gets the next id after the model vocabulary.
      if (impl->added_by_content.count(t.content)) continue;  // tokens are equal by content: first wins
      if (const auto model_id = impl->model->token_to_id(t.content)) {
        t.id = *model_id;
      } else {
        t.id = next_id++;
      }
      const std::size_t index = impl->added.size();
      impl->added_by_id.insert_or_assign(t.id, index);
      impl->added_by_content.insert_or_assign(t.content, index);
      if (t.normalized) {
        std::string content = t.content;
        if (impl->normalizer) impl->normalizer->normalize(content);
        impl->normalized_trie.insert(content, index);
      } else {
        impl->raw_trie.insert(t.content, index);
      }
      impl->added.push_back(std::move(t));
    }
  }

  if (!config_json.empty()) {
    const std::string config_name =
        (std::filesystem::path(name).parent_path() / "tokenizer_config.json").string();
    const Json config = parse_json(config_json, config_name);
    const Where wc{config_name, ""};
    if (!config.is_object()) wc.fail("expected a JSON object");
    Tokenizer probe(std::move(impl));
    auto resolve = [&](std::string_view key) -> std::optional<std::int32_t> {
      const auto token = config_token(config, key, wc);
      if (!token) return std::nullopt;
      const auto id = probe.token_to_id(*token);
      if (!id) wc.at(key).fail("\"" + *token + "\" is not a token of " + name);
      return id;
    };
    probe.impl_->bos = resolve("bos_token");
    probe.impl_->eos = resolve("eos_token");
    // transformers' Llama/Gemma/GPT-NeoX fast tokenizers rebuild the post-processor from these flags.
    const std::string cls = config.value("tokenizer_class", std::string());
    std::string base = cls;
    if (base.size() > 4 && base.compare(base.size() - 4, 4, "Fast") == 0) base.resize(base.size() - 4);
    const bool llama_like = base == "LlamaTokenizer" || base == "CodeLlamaTokenizer" || base == "GemmaTokenizer";
    if (llama_like && config.contains("add_prefix_space") && !config["add_prefix_space"].is_null())
      wc.at("add_prefix_space").fail("makes transformers rebuild " + cls +
                                     " from tokenizer.model (from_slow); c3po reads tokenizer.json only");
    if (llama_like || base == "GPTNeoXTokenizer") {
      const bool add_bos = detail::bool_member(config, "add_bos_token", llama_like, wc);
      const bool add_eos = detail::bool_member(config, "add_eos_token", false, wc);
      std::vector<std::int32_t> prefix, suffix;
      if (add_bos) {
        if (!probe.impl_->bos) wc.at("add_bos_token").fail("is true but bos_token is not set");
        prefix.push_back(*probe.impl_->bos);
      }
      if (add_eos) {
        if (!probe.impl_->eos) wc.at("add_eos_token").fail("is true but eos_token is not set");
        suffix.push_back(*probe.impl_->eos);
      }
      probe.impl_->post_processor = detail::make_template(std::move(prefix), std::move(suffix));
    }
    probe.check_special_ids(name);
    return probe;
  }
  Tokenizer tok(std::move(impl));
  tok.check_special_ids(name);
  return tok;
}

void Tokenizer::check_special_ids(const std::string& name) const {
  // The ids the post-processor adds around every input must be tokens of the vocabulary: a
  // template naming id 10^9 would otherwise reach the model's embedding lookup.
  if (!impl_->post_processor) return;
  std::vector<std::int32_t> ids;
  impl_->post_processor->process(ids);
  const std::int32_t limit = vocab_size();
  for (const auto id : ids)
    if (id < 0 || id >= limit)
      throw Error(name, "post_processor",
                  "adds token id " + std::to_string(id) + ", outside the vocabulary of " + std::to_string(limit) +
                      " tokens");
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (const auto bad = unicode::find_invalid_utf8(text); bad != std::string_view::npos)
    throw Error("", "text", "invalid UTF-8 at byte " + std::to_string(bad));
  const Impl& m = *impl_;
  std::vector<Part> parts, stage;
  if (!text.empty()) m.split_added({std::string(text), -1, true}, m.raw_trie, parts);
  for (auto& p : parts) {
    if (p.id >= 0) {
      stage.push_back(std::move(p));
      continue;
    }
    if (m.normalizer) m.normalizer->normalize(p.text);
    if (!p.text.empty()) m.split_added(p, m.normalized_trie, stage);
  }
  std::vector<std::int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<Piece> pieces;
  for (auto& p : stage) {
    if (p.id >= 0) {
      ids.push_back(p.id);
      continue;
    }
    pieces.clear();
    pieces.push_back({std::move(p.text), p.at_origin});
    if (m.pre_tokenizer) m.pre_tokenizer->pre_tokenize(pieces);
    for (const auto& piece : pieces) m.model->tokenize(piece.text, ids);
  }
  if (add_special_tokens && m.post_processor) m.post_processor->process(ids);
  return ids;
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::int32_t id = ids[i];
    if (const auto it = m.added_by_id.find(id); it != m.added_by_id.end()) {
      if (skip_special && m.added[it->second].special) continue;
      tokens.push_back(m.added[it->second].content);
      continue;
    }
    const std::string* token = m.model->id_to_token(id);
    if (!token) throw Error(m.source, "ids[" + std::to_string(i) + "]", "id " + std::to_string(id) + " is not in the vocabulary");
    if (skip_special)
      if (const auto it = m.added_by_content.find(*token); it != m.added_by_content.end() && m.added[it->second].special)
        continue;
    tokens.push_back(*token);
  }
  if (!m.decoder) {
    std::string joined;
    for (std::size_t i = 0; i < tokens.size(); ++i) (joined += i ? " " : "") += tokens[i];
    return joined;
  }
  m.decoder->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto it = impl_->added_by_content.find(std::string(token)); it != impl_->added_by_content.end())
    return impl_->added[it->second].id;
  return impl_->model->token_to_id(token);
}

std::string Tokenizer::id_to_token(std::int32_t id) const {
  const std::string* t = impl_->token_of(id);
  if (!t) throw Error(impl_->source, "id", "id " + std::to_string(id) + " is not in the vocabulary");
  return *t;
}

std::int32_t Tokenizer::vocab_size() const {
  std::int32_t n = impl_->model->id_limit();
  for (const auto& t : impl_->added) n = std::max(n, t.id + 1);
  return n;
}

std::optional<std::int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<std::int32_t> Tokenizer::eos_id() const { return impl_->eos; }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace c3po::tokenizer
