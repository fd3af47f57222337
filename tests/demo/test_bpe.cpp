// The demo's byte-level BPE: the GPT-2 byte map and regex on hand-worked cases, the trainer's
// invariants, the tokenizer.json layout, and encode/decode round trips.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "demo/bpe.h"
#include "demo/tasks.h"
#include "io/error.h"

namespace c3po::demo {
namespace {

TEST(DemoBpe, ByteMapIsGpt2s) {
  EXPECT_EQ(byte_char(' '), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(byte_char('\n'), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(byte_char('A'), "A");
  EXPECT_EQ(byte_char(0x00), "\xC4\x80");  // U+0100
  EXPECT_EQ(byte_char(0xAD), "\xC5\x83");  // the 68th remapped byte: U+0143
  EXPECT_EQ(byte_char(0xFF), "\xC3\xBF");  // U+00FF maps to itself
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(from_byte_level(to_byte_level(all)), all);
  EXPECT_THROW(from_byte_level("\xE2\x82\xAC"), Error);  // '€' is no byte character
}

TEST(DemoBpe, PreTokenizerFollowsTheGpt2Regex) {
  using V = std::vector<std::string>;
  EXPECT_EQ(gpt2_pretokenize("Question: What is 12 + 34?\nA. 46\nAnswer: B"),
            (V{"Question", ":", " What", " is", " 12", " +", " 34", "?", "\n", "A", ".", " 46", "\n",
               "Answer", ":", " B"}));
  // Whitespace before a word: all but the last space stay apart (\s+(?!\S)).
  EXPECT_EQ(gpt2_pretokenize("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(gpt2_pretokenize("it's  \n"), (V{"it", "'s", "  \n"}));
  EXPECT_EQ(gpt2_pretokenize("\"kavo\"?"), (V{"\"", "kavo", "\"?"}));
  EXPECT_EQ(gpt2_pretokenize("caf\xC3\xA9 9x"), (V{"caf\xC3\xA9", " 9", "x"}));  // Unicode letters
}

BpeModel small_model() {
  const auto s = generate_splits(1, SplitSizes{300, 0, 0});
  std::vector<std::string> texts;
  for (const auto& it : s.train) texts.push_back(render_prompt(it) + letter_continuation(it.answer));
  return train_bpe(texts, 400, {" A", " B", " C", " D", " E"});
}

TEST(DemoBpe, TrainerReachesTheVocabularyAndKeepsLettersWhole) {
  const auto model = small_model();
  EXPECT_EQ(model.tokens.size(), 400u);
  EXPECT_EQ(model.tokens[0], kEndOfText);
  EXPECT_EQ(model.merges.size(), 400u - 257u);
  // Every merge's result is in the vocabulary and its parts were there before it.
  for (std::size_t r = 0; r < model.merges.size(); ++r) {
    const int merged = model.id_of(model.merges[r].first + model.merges[r].second);
    ASSERT_GE(merged, 0);
    EXPECT_LT(model.id_of(model.merges[r].first), merged);
    EXPECT_LT(model.id_of(model.merges[r].second), merged);
  }
  const BpeEncoder enc(model);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(enc.encode(letter_continuation(i)).size(), 1u) << i;
  // Same corpus, same merges.
  EXPECT_EQ(small_model().merges, model.merges);
}

TEST(DemoBpe, EncodeDecodeRoundTripsAndCompresses) {
  const auto model = small_model();
  const BpeEncoder enc(model);
  const std::string text = "Question: What is 47 + 28?\nA. 75\nB. 65\nAnswer: A";
  const auto ids = enc.encode(text);
  EXPECT_EQ(enc.decode(ids), text);
  EXPECT_LT(ids.size() * 3, text.size() * 2) << "merges learned on task text should compress task text";
  // Unseen bytes still encode (byte fallback through the 256 byte tokens), and specials split.
  const std::string odd = "\xE2\x82\xAC\t~" + std::string(kEndOfText) + "zz";
  const auto odd_ids = enc.encode(odd);
  EXPECT_EQ(enc.decode(odd_ids), odd);
  EXPECT_NE(std::find(odd_ids.begin(), odd_ids.end(), 0), odd_ids.end());
  // Concatenating the prompt and the answer letter adds exactly the letter's token.
  const std::string prompt = "Question: q?\nA. x\nB. y\nAnswer:";
  auto joined = enc.encode(prompt + " B");
  auto alone = enc.encode(prompt);
  alone.push_back(enc.encode(" B")[0]);
  EXPECT_EQ(joined, alone);
  EXPECT_THROW(enc.decode({static_cast<int32_t>(model.tokens.size())}), Error);
}

TEST(DemoBpe, TokenizerJsonHasTheHuggingFaceLayout) {
  const auto model = small_model();
  const auto j = to_tokenizer_json(model);
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["model"]["vocab"].size(), model.tokens.size());
  EXPECT_EQ(j["model"]["merges"].size(), model.merges.size());
  EXPECT_EQ(j["model"]["vocab"]["\xC4\xA0" "A"], model.id_of("\xC4\xA0" "A"));
  EXPECT_EQ(j["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(j["pre_tokenizer"]["add_prefix_space"], false);
  EXPECT_EQ(j["pre_tokenizer"]["trim_offsets"], true);
  EXPECT_EQ(j["pre_tokenizer"]["use_regex"], true);
  EXPECT_EQ(j["decoder"]["type"], "ByteLevel");
  ASSERT_EQ(j["added_tokens"].size(), 1u);
  EXPECT_EQ(j["added_tokens"][0]["content"], kEndOfText);
  EXPECT_EQ(j["added_tokens"][0]["special"], true);
  // Reads back to the same model.
  const auto back = bpe_from_tokenizer_json(j, "mem");
  EXPECT_EQ(back.tokens, model.tokens);
  EXPECT_EQ(back.merges, model.merges);
  auto broken = j;
  broken["model"]["merges"][0] = 5;
  EXPECT_THROW(bpe_from_tokenizer_json(broken, "mem"), Error);
}

}  // namespace
}  // namespace c3po::demo
