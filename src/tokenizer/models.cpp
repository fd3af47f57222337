// Models of tokenizer.json: BPE (tokenizers/src/models/bpe), WordPiece, WordLevel.
#include <algorithm>
#include <cstdio>
#include <list>
#include <mutex>
#include <queue>
#include <unordered_map>

#include "io/error.h"
#include "tokenizer/components.h"
#include "tokenizer/unicode.h"

namespace c3po::tokenizer::detail {

namespace {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>>;

// The vocabulary both ways; ids may have gaps.
struct VocabTable {
  Vocab to_id;
  std::vector<std::string> to_token;
  std::vector<bool> present;

  std::optional<std::int32_t> find(std::string_view token) const {
    const auto it = to_id.find(token);
    if (it == to_id.end()) return std::nullopt;
    return it->second;
  }
  const std::string* token(std::int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= to_token.size() || !present[static_cast<std::size_t>(id)])
      return nullptr;
    return &to_token[static_cast<std::size_t>(id)];
  }
};

constexpr std::int64_t kMaxTokenId = std::int64_t{1} << 24;

VocabTable read_vocab(const Json& vocab, const Where& where) {
  if (!vocab.is_object()) where.fail("expected an object {token: id}");
  VocabTable table;
  table.to_id.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    // The bound is the config reader's largest vocab_size: an id beyond any real vocabulary would
    // only make the id -> token table allocate gigabytes.
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() >= kMaxTokenId)
      where.at(token).fail("expected an id from 0 to " + std::to_string(kMaxTokenId - 1) + ", got " + id.dump());
    const auto i = id.get<std::int32_t>();
    table.to_id.emplace(token, i);
    if (static_cast<std::size_t>(i) >= table.to_token.size()) {
      table.to_token.resize(static_cast<std::size_t>(i) + 1);
      table.present.resize(static_cast<std::size_t>(i) + 1, false);
    }
    table.to_token[static_cast<std::size_t>(i)] = token;
    table.present[static_cast<std::size_t>(i)] = true;
  }
  return table;
}

// A bounded memo of word -> ids. Guarded by a mutex so that a const Tokenizer can be shared by threads.
class WordCache {
 public:
  static constexpr std::size_t kCapacity = 10000;
  static constexpr std::size_t kMaxWordBytes = 256;

  bool lookup(std::string_view word, std::vector<std::int32_t>& ids) const {
    std::lock_guard lock(mutex_);
    const auto it = map_.find(word);
    if (it == map_.end()) return false;
    ids.insert(ids.end(), it->second.begin(), it->second.end());
    return true;
  }
  void store(std::string_view word, const std::int32_t* ids, std::size_t n) const {
    if (word.size() > kMaxWordBytes) return;
    std::lock_guard lock(mutex_);
    if (map_.size() >= kCapacity) return;  // like tokenizers: a full cache stops accepting
    map_.emplace(std::string(word), std::vector<std::int32_t>(ids, ids + n));
  }

 private:
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, std::vector<std::int32_t>, StringHash, std::equal_to<>> map_;
};

class Bpe final : public Model {
 public:
  struct Options {
    std::optional<std::string> unk_token, continuing_subword_prefix, end_of_word_suffix;
    bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
  };

  Bpe(VocabTable vocab, Options options) : vocab_(std::move(vocab)), options_(std::move(options)) {
    if (options_.byte_fallback)
      for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        byte_ids_[b] = vocab_.find(name).value_or(-1);
      }
  }

  void add_merge(std::int32_t a, std::int32_t b, std::uint32_t rank, std::int32_t merged) {
    merges_.insert_or_assign(key(a, b), std::pair{rank, merged});  // a repeated pair keeps its last rank
  }
  const VocabTable& vocab() const { return vocab_; }
  const Options& options() const { return options_; }

  void tokenize(std::string_view word, std::vector<std::int32_t>& ids) const override {
    if (word.empty()) return;
    if (cache_.lookup(word, ids)) return;
    const std::size_t first = ids.size();
    if (options_.ignore_merges) {
      if (const auto id = vocab_.find(word)) {
        ids.push_back(*id);
        cache_.store(word, ids.data() + first, 1);
        return;
      }
    }
    merge_word(word, ids);
    cache_.store(word, ids.data() + first, ids.size() - first);
  }

  std::optional<std::int32_t> token_to_id(std::string_view token) const override { return vocab_.find(token); }
  const std::string* id_to_token(std::int32_t id) const override { return vocab_.token(id); }
  std::int32_t id_limit() const override { return static_cast<std::int32_t>(vocab_.to_token.size()); }
  std::size_t vocab_count() const override { return vocab_.to_id.size(); }

 private:
  static std::uint64_t key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }
  const std::pair<std::uint32_t, std::int32_t>* find_merge(std::int32_t a, std::int32_t b) const {
    const auto it = merges_.find(key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  }

  struct Symbol {
    std::int32_t id;
    std::int32_t prev, next;
    bool removed;
  };
  struct Candidate {
    std::uint32_t rank;
    std::uint32_t pos;
    std::int32_t merged;
    // Lowest rank first, then leftmost.
    bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };

  std::int32_t unk_id() const {
    const auto id = vocab_.find(*options_.unk_token);
    if (!id) throw Error("tokenizer.json", "model.unk_token", "BPE unk_token \"" + *options_.unk_token + "\" is not in the vocabulary");
    return *id;
  }

  void merge_word(std::string_view word, std::vector<std::int32_t>& ids) const {
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    auto add = [&](std::int32_t id) {
      const auto n = static_cast<std::int32_t>(symbols.size());
      symbols.push_back({id, n - 1, n + 1, false});
    };
    std::int32_t pending_unk = -1;  // an unk not yet added (fuse_unk may extend it)
    std::string scratch;
    for (std::size_t i = 0; i < word.size();) {
      const std::size_t begin = i;
      i += unicode::utf8_length(static_cast<unsigned char>(word[i]));
      std::string_view piece = word.substr(begin, i - begin);
      const bool affixed = (begin > 0 && options_.continuing_subword_prefix) ||
                           (i == word.size() && options_.end_of_word_suffix);
      if (affixed) {
        scratch.clear();
        if (begin > 0 && options_.continuing_subword_prefix) scratch += *options_.continuing_subword_prefix;
        scratch += piece;
        if (i == word.size() && options_.end_of_word_suffix) scratch += *options_.end_of_word_suffix;
        piece = scratch;
      }
      if (const auto id = vocab_.find(piece)) {
        if (pending_unk >= 0) {
          add(pending_unk);
          pending_unk = -1;
        }
        add(*id);
        continue;
      }
      if (options_.byte_fallback) {
        const bool all = std::all_of(piece.begin(), piece.end(),
                                     [&](char b) { return byte_ids_[static_cast<unsigned char>(b)] >= 0; });
        if (all) {
          // tokenizers adds byte tokens without flushing a pending unk first.
          for (char b : piece) add(byte_ids_[static_cast<unsigned char>(b)]);
          continue;
        }
      }
      if (options_.unk_token) {
        if (pending_unk >= 0 && options_.fuse_unk) continue;
        if (pending_unk >= 0) add(pending_unk);
        pending_unk = unk_id();
      }
      // Without unk_token an unknown character produces nothing, exactly like tokenizers.
    }
    if (pending_unk >= 0) add(pending_unk);
    if (!symbols.empty()) symbols.back().next = -1;

    std::priority_queue<Candidate> queue;
    for (std::size_t p = 0; p + 1 < symbols.size(); ++p)
      if (const auto* m = find_merge(symbols[p].id, symbols[p + 1].id))
        queue.push({m->first, static_cast<std::uint32_t>(p), m->second});
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& current = symbols[top.pos];
      if (current.removed || current.next < 0) continue;
      const auto next_pos = static_cast<std::size_t>(current.next);
      const Symbol right = symbols[next_pos];
      const auto* still = find_merge(current.id, right.id);
      if (!still || still->second != top.merged) continue;  // stale entry
      current.id = top.merged;
      current.next = right.next;
      symbols[next_pos].removed = true;
      if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = static_cast<std::int32_t>(top.pos);
      if (current.prev >= 0)
        if (const auto* m = find_merge(symbols[static_cast<std::size_t>(current.prev)].id, current.id))
          queue.push({m->first, static_cast<std::uint32_t>(current.prev), m->second});
      if (current.next >= 0)
        if (const auto* m = find_merge(current.id, symbols[static_cast<std::size_t>(current.next)].id))
          queue.push({m->first, top.pos, m->second});
    }
    for (const auto& s : symbols)
      if (!s.removed) ids.push_back(s.id);
  }

  VocabTable vocab_;
  Options options_;
  std::unordered_map<std::uint64_t, std::pair<std::uint32_t, std::int32_t>> merges_;
  std::int32_t byte_ids_[256] = {};
  WordCache cache_;
};

std::unique_ptr<Model> make_bpe(const Json& j, const Where& where) {
  if (const auto it = j.find("dropout"); it != j.end() && !it->is_null()) {
    if (!it->is_number() || it->get<double>() != 0.0)
      where.at("dropout").fail("BPE dropout " + it->dump() + " is random; only null or 0 gives reproducible ids");
  }
  Bpe::Options options;
  options.unk_token = optional_string(j, "unk_token", where);
  options.continuing_subword_prefix = optional_string(j, "continuing_subword_prefix", where);
  options.end_of_word_suffix = optional_string(j, "end_of_word_suffix", where);
  options.fuse_unk = bool_member(j, "fuse_unk", false, where);
  options.byte_fallback = bool_member(j, "byte_fallback", false, where);
  options.ignore_merges = bool_member(j, "ignore_merges", false, where);
  auto bpe = std::make_unique<Bpe>(read_vocab(member(j, "vocab", where), where.at("vocab")), options);
  const VocabTable& vocab = bpe->vocab();
  const std::size_t prefix_len = options.continuing_subword_prefix ? options.continuing_subword_prefix->size() : 0;

  const Json& merges = member(j, "merges", where);
  if (!merges.is_array()) where.at("merges").fail("expected an array");
  // Resolves one merge; false if a part or the merged token is not in the vocabulary.
  auto resolve = [&](std::string_view a, std::string_view b, std::uint32_t rank, bool must, const Where& w) {
    const auto ia = vocab.find(a), ib = vocab.find(b);
    std::string merged(a);
    if (b.size() >= prefix_len) merged.append(b.substr(prefix_len));
    const auto im = vocab.find(merged);
    if (!ia || !ib || !im || b.size() < prefix_len) {
      if (must)
        w.fail("merge of \"" + std::string(a) + "\" and \"" + std::string(b) + "\" uses a token missing from model.vocab");
      return false;
    }
    bpe->add_merge(*ia, *ib, rank, *im);
    return true;
  };
  for (std::size_t r = 0; r < merges.size(); ++r) {
    const Json& m = merges[r];
    const auto rank = static_cast<std::uint32_t>(r);
    const Where w = where.at("merges").index(r);
    if (m.is_array()) {
      if (m.size() != 2 || !m[0].is_string() || !m[1].is_string()) w.fail("expected [\"a\", \"b\"]");
      resolve(m[0].get_ref<const std::string&>(), m[1].get_ref<const std::string&>(), rank, true, w);
    } else if (m.is_string()) {
      const std::string& line = m.get_ref<const std::string&>();
      // "a b": split at the first space; a token containing spaces is found by trying the others.
      bool done = false;
      for (std::size_t sp = line.find(' '); sp != std::string::npos && !done; sp = line.find(' ', sp + 1)) {
        done = resolve(std::string_view(line).substr(0, sp), std::string_view(line).substr(sp + 1), rank, false, w);
      }
      if (!done) w.fail("expected \"a b\" with both parts and their concatenation in model.vocab, got \"" + line + "\"");
    } else {
      w.fail("expected \"a b\" or [\"a\", \"b\"]");
    }
  }
  if (options.unk_token && !vocab.find(*options.unk_token))
    where.at("unk_token").fail("\"" + *options.unk_token + "\" is not in model.vocab");
  return bpe;
}

class WordPiece final : public Model {
 public:
  WordPiece(VocabTable vocab, std::string unk, std::string prefix, std::size_t max_chars)
      : vocab_(std::move(vocab)), unk_(std::move(unk)), prefix_(std::move(prefix)), max_chars_(max_chars) {}

  void tokenize(std::string_view word, std::vector<std::int32_t>& ids) const override {
    if (word.empty()) return;
    if (unicode::count_code_points(word) > max_chars_) {
      ids.push_back(unk_id());
      return;
    }
    const std::size_t first = ids.size();
    std::string candidate;
    for (std::size_t start = 0; start < word.size();) {
      std::size_t end = word.size();
      std::optional<std::int32_t> found;
      while (start < end) {
        candidate.clear();
        if (start > 0) candidate += prefix_;
        candidate += word.substr(start, end - start);
        if ((found = vocab_.find(candidate))) break;
        do --end;  // drop the last character
        while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
      }
      if (!found) {
        ids.resize(first);
        ids.push_back(unk_id());
        return;
      }
      ids.push_back(*found);
      start = end;
    }
  }
  std::optional<std::int32_t> token_to_id(std::string_view token) const override { return vocab_.find(token); }
  const std::string* id_to_token(std::int32_t id) const override { return vocab_.token(id); }
  std::int32_t id_limit() const override { return static_cast<std::int32_t>(vocab_.to_token.size()); }
  std::size_t vocab_count() const override { return vocab_.to_id.size(); }

 private:
  std::int32_t unk_id() const {
    const auto id = vocab_.find(unk_);
    if (!id) throw Error("tokenizer.json", "model.unk_token", "WordPiece unk_token \"" + unk_ + "\" is not in the vocabulary");
    return *id;
  }
  VocabTable vocab_;
  std::string unk_, prefix_;
  std::size_t max_chars_;
};

class WordLevel final : public Model {
 public:
  WordLevel(VocabTable vocab, std::string unk) : vocab_(std::move(vocab)), unk_(std::move(unk)) {}
  void tokenize(std::string_view word, std::vector<std::int32_t>& ids) const override {
    if (const auto id = vocab_.find(word)) {
      ids.push_back(*id);
      return;
    }
    const auto unk = vocab_.find(unk_);
    if (!unk) throw Error("tokenizer.json", "model.unk_token", "WordLevel: \"" + std::string(word) + "\" and unk_token are not in the vocabulary");
    ids.push_back(*unk);
  }
  std::optional<std::int32_t> token_to_id(std::string_view token) const override { return vocab_.find(token); }
  const std::string* id_to_token(std::int32_t id) const override { return vocab_.token(id); }
  std::int32_t id_limit() const override { return static_cast<std::int32_t>(vocab_.to_token.size()); }
  std::size_t vocab_count() const override { return vocab_.to_id.size(); }

 private:
  VocabTable vocab_;
  std::string unk_;
};

}  // namespace

std::unique_ptr<Model> make_model(const Json& j, const Where& where) {
  if (j.is_null()) where.fail("a model is required");
  const std::string type = type_of(j, where);
  if (type == "BPE") return make_bpe(j, where);
  if (type == "WordPiece") {
    const auto max_chars = int_member(j, "max_input_chars_per_word", 100, where);
    if (max_chars < 0) where.at("max_input_chars_per_word").fail("expected a non-negative number");
    return std::make_unique<WordPiece>(read_vocab(member(j, "vocab", where), where.at("vocab")),
                                       optional_string(j, "unk_token", where).value_or("[UNK]"),
                                       optional_string(j, "continuing_subword_prefix", where).value_or("##"),
                                       static_cast<std::size_t>(max_chars));
  }
  if (type == "WordLevel")
    return std::make_unique<WordLevel>(read_vocab(member(j, "vocab", where), where.at("vocab")),
                                       optional_string(j, "unk_token", where).value_or("<unk>"));
  where.at("type").fail("unsupported model type \"" + type + "\" (supported: BPE, WordPiece, WordLevel)");
}

}  // namespace c3po::tokenizer::detail
