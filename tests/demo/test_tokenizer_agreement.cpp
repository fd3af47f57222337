// The tokenizer.json the demo writes, read by the c3po tokenizer (src/tokenizer): same ids as the
// demo's own BPE encoder on every task text, and text round-trips through decode.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "demo/bpe.h"
#include "demo/tasks.h"
#include "io/json_file.h"
#include "tokenizer/tokenizer.h"

namespace c3po::demo {
namespace {

TEST(DemoTokenizerJson, C3poTokenizerAgreesWithTheDemoEncoder) {
  const auto splits = generate_splits(21, SplitSizes{3000, 300, 300});
  std::vector<std::string> texts;
  for (const auto& it : splits.train) texts.push_back(render_prompt(it) + letter_continuation(it.answer));
  const auto bpe = train_bpe(texts, 700, {" A", " B", " C", " D", " E"});
  const auto dir = std::filesystem::temp_directory_path() / ("c3po_demo_tok_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "tokenizer.json").string();
  io::write_json_file(path, to_tokenizer_json(bpe));

  const auto tok = tokenizer::Tokenizer::load(path);
  const BpeEncoder mine(bpe);
  EXPECT_EQ(tok.vocab_size(), static_cast<int32_t>(bpe.tokens.size()));
  EXPECT_EQ(tok.token_to_id(kEndOfText), 0);
  for (int i = 0; i < 5; ++i) {
    const auto ids = tok.encode(letter_continuation(i));
    ASSERT_EQ(ids.size(), 1u) << letter_continuation(i);
    EXPECT_EQ(ids[0], bpe.id_of("\xC4\xA0" + std::string(1, static_cast<char>('A' + i))));
  }
  std::size_t checked = 0;
  for (const auto* split : {&splits.train, &splits.reference, &splits.test})
    for (const auto& it : *split) {
      const auto text = render_prompt(it) + letter_continuation(it.answer);
      const auto ids = tok.encode(text);
      ASSERT_EQ(ids, mine.encode(text)) << text;
      ASSERT_EQ(tok.decode(ids), text);
      ++checked;
    }
  EXPECT_EQ(checked, 3600u);
  // Text the tokenizer never saw: other scripts, odd whitespace, the special token.
  for (const std::string& text : std::vector<std::string>{"caf\xC3\xA9  na\xC3\xAFve\t\tx", "\xE2\x82\xAC 100\n\n\nZ",
                                 std::string("a") + kEndOfText + " b", "   leading", "it's they'll"}) {
    const auto ids = tok.encode(text);
    EXPECT_EQ(ids, mine.encode(text)) << text;
    EXPECT_EQ(tok.decode(ids), text);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace c3po::demo
