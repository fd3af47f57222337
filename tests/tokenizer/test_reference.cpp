// Every tokenizer of tests/tokenizer/expected gives, for every corpus string, the ids and decoded
// text that Hugging Face's Rust `tokenizers` gave (see gen_expected.js).
#include <gtest/gtest.h>

#include <algorithm>

#include "reference_cases.h"
#include "tokenizer/tokenizer.h"

namespace c3po::tokenizer {
namespace {

class ReferenceTest : public ::testing::TestWithParam<std::string> {};

std::string show(const std::string& s) { return nlohmann::json(s).dump(); }

TEST_P(ReferenceTest, IdsDecodingAndLetterTokensMatchHuggingFaceTokenizers) {
  const auto ref = testing::load_reference(GetParam());
  const Tokenizer tok = Tokenizer::from_json(ref.tokenizer_json, ref.config_json, GetParam());
  const auto& cases = ref.expected.at("cases");
  ASSERT_GT(cases.size(), 200u);
  int failures = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const auto ids = c.at("ids").get<std::vector<std::int32_t>>();
    const auto plain = c.at("ids_no_special").get<std::vector<std::int32_t>>();
    const auto got = tok.encode(text, true), got_plain = tok.encode(text, false);
    const auto decoded = tok.decode(ids, false), decoded_skip = tok.decode(ids, true);
    EXPECT_EQ(got, ids) << "text " << show(text);
    EXPECT_EQ(got_plain, plain) << "text " << show(text);
    EXPECT_EQ(decoded, c.at("decoded").get<std::string>()) << "ids of " << show(text);
    EXPECT_EQ(decoded_skip, c.at("decoded_skip_special").get<std::string>()) << "ids of " << show(text);
    const bool ok = got == ids && got_plain == plain && decoded == c.at("decoded") && decoded_skip == c.at("decoded_skip_special");
    if (!ok && ++failures >= 20) FAIL() << "stopping after 20 failing cases";
  }
  // The answer-letter tokens (" A" ... " E", "A" ... "E") both ways.
  for (const auto& [letter, e] : ref.expected.at("letters").items()) {
    const auto ids = e.at("ids").get<std::vector<std::int32_t>>();
    const auto tokens = e.at("tokens").get<std::vector<std::string>>();
    EXPECT_EQ(tok.encode_no_special(letter), ids) << show(letter);
    ASSERT_EQ(ids.size(), tokens.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(tok.id_to_token(ids[i]), tokens[i]);
      EXPECT_EQ(tok.token_to_id(tokens[i]), ids[i]);
    }
  }
  EXPECT_EQ(tok.vocab_size(), ref.expected.at("vocab_size_with_added").get<std::int32_t>());
}

INSTANTIATE_TEST_SUITE_P(Expected, ReferenceTest, ::testing::ValuesIn(testing::reference_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace c3po::tokenizer
