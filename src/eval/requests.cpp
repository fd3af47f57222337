#include "eval/requests.h"

#include <algorithm>

#include <fmt/format.h>

#include "io/error.h"

namespace c3po::eval {
namespace {

std::vector<int64_t> widen(const std::vector<int32_t>& ids) { return {ids.begin(), ids.end()}; }

std::string show_tokens(const tokenizer::Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::string s;
  for (std::size_t i = 0; i < ids.size(); ++i)
    s += fmt::format("{}{}({})", i ? " " : "", tok.id_to_token(ids[i]), ids[i]);
  return s;
}

}  // namespace

std::vector<int64_t> letter_token_ids(const tokenizer::Tokenizer& tok, const std::string& prompt,
                                      std::size_t n_choices, const std::string& where) {
  const auto letters = data::answer_letters(n_choices);
  const auto base = tok.encode(prompt, false);
  std::vector<int64_t> out;
  out.reserve(letters.size());
  for (const auto& letter : letters) {
    const auto with = tok.encode(prompt + letter, false);
    const bool prefix_kept =
        with.size() >= base.size() && std::equal(base.begin(), base.end(), with.begin());
    if (!prefix_kept || with.size() != base.size() + 1) {
      std::vector<int32_t> tail;
      std::size_t common = 0;
      while (common < base.size() && common < with.size() && base[common] == with[common]) ++common;
      tail.assign(with.begin() + static_cast<std::ptrdiff_t>(common), with.end());
      throw Error(where, "answer letter '" + letter + "'",
                  fmt::format("must be exactly one token after the prompt's \"Answer:\" for the letter protocol, "
                              "but the tokenizer gives {} (use --protocol loglik for this model)",
                              tail.empty() ? std::string("no new token") : show_tokens(tok, tail)));
    }
    out.push_back(with.back());
  }
  return out;
}

LetterRequest encode_letter_request(const tokenizer::Tokenizer& tok, const data::McItem& item,
                                    std::size_t max_tokens, const std::string& preamble) {
  LetterRequest r;
  r.prompt = preamble + data::render_letter_prompt(item);
  r.ids = widen(tok.encode(r.prompt));
  const std::string& where = data::origin(item);
  if (r.ids.empty()) throw Error(where, "prompt", "encodes to no token");
  r.letter_ids = letter_token_ids(tok, r.prompt, item.choices.size(), where);
  if (max_tokens > 0 && r.ids.size() > max_tokens) {
    r.ids.erase(r.ids.begin(), r.ids.end() - static_cast<std::ptrdiff_t>(max_tokens));
    r.truncated = true;
  }
  return r;
}

std::size_t context_length(int64_t max_position_embeddings) {
  return static_cast<std::size_t>(std::max<int64_t>(0, max_position_embeddings));
}

int64_t loglik_max_length(int64_t max_position_embeddings) {
  return max_position_embeddings > 0 ? max_position_embeddings : 2048;
}

LoglikRequests encode_loglik_item(const tokenizer::Tokenizer& tok, const data::McItem& item,
                                  std::optional<int64_t> prefix_token,
                                  const std::vector<data::McItem>& demonstrations) {
  LoglikRequests out;
  out.item = demonstrations.empty() ? data::render_loglik(item)
                                    : data::render_loglik_with_demonstrations(item, demonstrations);
  const std::string& where = data::origin(item);
  for (std::size_t i = 0; i < out.item.requests.size(); ++i) {
    const data::LoglikRequest split = data::encode_pair_split(out.item.requests[i]);
    LoglikTokens t;
    if (split.context.empty()) {
      if (!prefix_token)
        throw Error(where, "context", "is empty and the tokenizer has neither a BOS nor an EOS token to stand for it");
      t.context = {*prefix_token};
      t.continuation = widen(tok.encode(split.continuation));
    } else {
      const auto whole = tok.encode(split.context + split.continuation);
      const auto ctx = tok.encode(split.context);
      if (ctx.size() > whole.size())
        throw Error(where, fmt::format("request {}", i), "the context encodes to more tokens than context + continuation");
      t.context = widen(ctx);
      t.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(ctx.size()), whole.end());
    }
    if (t.continuation.empty())
      throw Error(where, fmt::format("request {} continuation", i),
                  "encodes to no token: \"" + split.continuation + "\"");
    out.requests.push_back(std::move(t));
  }
  return out;
}

std::optional<int64_t> prefix_token_id(const tokenizer::Tokenizer& tok, std::optional<int64_t> config_bos,
                                       const std::vector<int64_t>& config_eos) {
  if (auto b = tok.bos_id()) return *b;
  if (auto e = tok.eos_id()) return *e;
  if (config_bos) return config_bos;
  if (!config_eos.empty()) return config_eos.front();
  return std::nullopt;
}

LetterColumns letter_columns(const std::vector<const std::vector<int64_t>*>& letter_ids) {
  LetterColumns out;
  for (const auto* ids : letter_ids) out.vocab_rows.insert(out.vocab_rows.end(), ids->begin(), ids->end());
  std::sort(out.vocab_rows.begin(), out.vocab_rows.end());
  out.vocab_rows.erase(std::unique(out.vocab_rows.begin(), out.vocab_rows.end()), out.vocab_rows.end());
  for (const auto* ids : letter_ids) {
    std::vector<int64_t> cols;
    for (int64_t id : *ids)
      cols.push_back(std::lower_bound(out.vocab_rows.begin(), out.vocab_rows.end(), id) - out.vocab_rows.begin());
    out.columns.push_back(std::move(cols));
  }
  return out;
}

}  // namespace c3po::eval
