#pragma once
// Items -> token ids, for both protocols. No torch here.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/item.h"
#include "data/prompt.h"
#include "tokenizer/tokenizer.h"

namespace c3po::eval {

struct LetterRequest {
  std::string prompt;               // data::render_letter_prompt
  std::vector<int64_t> ids;         // the prompt with the tokenizer's default special tokens
  std::vector<int64_t> letter_ids;  // token of " A", " B", ... as it follows the prompt
  bool truncated = false;           // ids lost their beginning to fit the model (as lm-eval truncates)
};

// The LM-head rows a batch of letter prompts needs (every letter token once, ascending: pass as
// ForwardOptions::vocab_rows) and, per prompt, the column of each of its letters in logits
// computed over those rows. The one mapping from option letters to output columns.
struct LetterColumns {
  std::vector<int64_t> vocab_rows;
  std::vector<std::vector<int64_t>> columns;  // columns[b][j]: letter j of prompt b
};
LetterColumns letter_columns(const std::vector<const std::vector<int64_t>*>& letter_ids);

// The token id of each answer letter after `prompt`: encode(prompt + letter) must be
// encode(prompt) followed by exactly one token (both without special tokens, so an appended EOS
// cannot interfere); anything else is a c3po::Error naming `where` and the letter.
std::vector<int64_t> letter_token_ids(const tokenizer::Tokenizer& tok, const std::string& prompt,
                                      std::size_t n_choices, const std::string& where);

// The one way every command turns an item into its letter prompt. max_tokens > 0: keep only the
// last max_tokens ids (pass the model's context length, context_length(config); as lm-eval
// truncates), so that a prompt eval accepts is accepted everywhere. `preamble` is text put before
// the item's prompt (in-context demonstrations, each ending in "\n\n").
LetterRequest encode_letter_request(const tokenizer::Tokenizer& tok, const data::McItem& item, std::size_t max_tokens,
                                    const std::string& preamble = "");

// max_position_embeddings, or 0 (no limit) when the config does not give it.
std::size_t context_length(int64_t max_position_embeddings);
// The log-likelihood protocol's max_length: max_position_embeddings, else lm-eval's default 2048.
int64_t loglik_max_length(int64_t max_position_embeddings);

// One lm-eval request as tokens: the model reads context + continuation[:-1] and is scored on
// every continuation token.
struct LoglikTokens {
  std::vector<int64_t> context;
  std::vector<int64_t> continuation;
};

struct LoglikRequests {
  data::LoglikItem item;               // the rendered requests, gold, acc_norm lengths
  std::vector<LoglikTokens> requests;  // one per choice
};

// lm-eval _encode_pair: whole = enc(ctx + cont), ctx_enc = enc(ctx), cont_enc = whole[len(ctx_enc):]
// (tokenizer default special tokens); an empty context becomes [prefix_token].
// demonstrations: solved items (any task) put before the item, data::render_loglik_with_demonstrations.
LoglikRequests encode_loglik_item(const tokenizer::Tokenizer& tok, const data::McItem& item,
                                  std::optional<int64_t> prefix_token,
                                  const std::vector<data::McItem>& demonstrations = {});

// lm-eval's prefix_token_id: the tokenizer's BOS, else its EOS, else the model config's
// bos_token_id / first eos_token_id (what HF would read from the same folder); nullopt if none.
std::optional<int64_t> prefix_token_id(const tokenizer::Tokenizer& tok, std::optional<int64_t> config_bos,
                                       const std::vector<int64_t>& config_eos);

}  // namespace c3po::eval
