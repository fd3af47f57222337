// Rendering and scoring on hand-made items, with expected values worked out by hand from the
// lm-eval definitions (evaluation.md) and the letter protocol (method.md section 3).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "data/prompt.h"
#include "data/readers.h"
#include "data/scoring.h"
#include "io/error.h"

using namespace c3po::data;
using c3po::Error;

namespace {

McItem hellaswag_jsonl_item(const std::string& line) {
  const auto dir = std::filesystem::temp_directory_path() / ("c3po-hs-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "hs.jsonl").string();
  std::ofstream(path) << line << "\n";
  auto r = read_hellaswag(path);
  std::filesystem::remove_all(dir);
  return r.items.at(0);
}

}  // namespace

TEST(Prompt, LettersAndFormatVersion) {
  EXPECT_EQ(answer_letters(3), (std::vector<std::string>{" A", " B", " C"}));
  EXPECT_EQ(answer_letter(25), " Z");
  EXPECT_THROW(answer_letter(26), Error);
  EXPECT_EQ(kLetterPromptFormat, "c3po-letter-v1");
}

TEST(Prompt, HellaswagJsonlFormCapitalizesCtxBAndPreprocesses) {
  // ctx = ctx_a + " " + ctx_b.capitalize(); query = preprocess(activity_label + ": " + ctx).
  const McItem item = hellaswag_jsonl_item(
      R"({"ind": 24, "activity_label": "Baking cookies", "ctx_a": "A woman [header] mixes flour.", "ctx_b": "sHE then", )"
      R"("endings": ["adds [step] eggs.", "  leaves.", "eats [title] it", "sings"], "label": 2})");
  EXPECT_EQ(item.id, "24");
  EXPECT_EQ(hellaswag_query(item), "Baking cookies: A woman mixes flour. She then");
  const LoglikItem ll = render_loglik(item);
  ASSERT_EQ(ll.requests.size(), 4u);
  EXPECT_EQ(ll.requests[0].context, "Baking cookies: A woman mixes flour. She then");
  EXPECT_EQ(ll.requests[0].continuation, " adds eggs.");
  EXPECT_EQ(ll.requests[1].continuation, " leaves.");
  EXPECT_EQ(ll.requests[2].continuation, " eats. it");
  EXPECT_EQ(ll.norm_lengths, (std::vector<std::size_t>{10, 7, 8, 5}));
  EXPECT_EQ(ll.gold, 2);
  EXPECT_TRUE(ll.reports_acc_norm);
  EXPECT_TRUE(ll.matches_lm_eval);
  EXPECT_EQ(render_letter_prompt(item),
            "Question: Baking cookies: A woman mixes flour. She then\nA. adds eggs.\nB. leaves.\nC. eats. it\nD. sings\nAnswer:");
}

TEST(Prompt, EncodePairMovesTrailingWhitespace) {
  // A ctx ending in "[title]" leaves ". " at the end after preprocessing.
  const McItem item = hellaswag_jsonl_item(
      R"({"activity_label": "Intro", "ctx_a": "Start here [title]", "ctx_b": "", "endings": ["a", "b", "c", "d"], "label": 0})");
  const LoglikItem ll = render_loglik(item);
  EXPECT_EQ(ll.requests[0].context, "Intro: Start here. ");
  const LoglikRequest moved = encode_pair_split(ll.requests[0]);
  EXPECT_EQ(moved.context, "Intro: Start here.");
  EXPECT_EQ(moved.continuation, "  a");
  const LoglikRequest tabs = encode_pair_split({"x\t\u3000", " y"});
  EXPECT_EQ(tabs.context, "x");
  EXPECT_EQ(tabs.continuation, "\t\u3000 y");
  const LoglikRequest none = encode_pair_split({"Answer:", " B"});
  EXPECT_EQ(none.context, "Answer:");
  EXPECT_EQ(none.continuation, " B");
}

TEST(Prompt, AccNormLengthsAreCodePoints) {
  McItem item;
  item.task = "arc_easy";
  item.question = "Q?";
  item.choices = {"naïve", "日本語", "ab"};
  item.gold = 0;
  const LoglikItem ll = render_loglik(item);
  EXPECT_EQ(ll.norm_lengths, (std::vector<std::size_t>{5, 3, 2}));
  EXPECT_EQ(ll.requests[1].context, "Question: Q?\nAnswer:");
  EXPECT_EQ(ll.requests[1].continuation, " 日本語");
}

TEST(Prompt, MmluDescriptionAndStrip) {
  McItem item;
  item.task = "mmlu";
  item.subject = "high_school_us_history";
  item.question = "  Who?\n";
  item.choices = {"a", "b", "c", "d"};
  item.gold = 3;
  const std::string expected =
      "The following are multiple choice questions (with answers) about high school us history.\n\n"
      "Who?\nA. a\nB. b\nC. c\nD. d\nAnswer:";
  EXPECT_EQ(render_letter_prompt(item), expected);
  const LoglikItem ll = render_loglik(item);
  EXPECT_EQ(ll.requests[3].context, expected);
  EXPECT_EQ(ll.requests[3].continuation, " D");
  EXPECT_EQ(ll.gold, 3);
  EXPECT_FALSE(ll.reports_acc_norm);
}

TEST(Prompt, WinograndePartialScoringUsesFirstUnderscore) {
  McItem item;
  item.task = "winogrande";
  item.question = "Ann beat Bo because _ trained_hard .  ";
  item.choices = {"Ann", "Bo"};
  item.gold = 0;
  const LoglikItem ll = render_loglik(item);
  ASSERT_EQ(ll.requests.size(), 2u);
  EXPECT_EQ(ll.requests[0].context, "Ann beat Bo because Ann");
  EXPECT_EQ(ll.requests[1].context, "Ann beat Bo because Bo");
  EXPECT_EQ(ll.requests[0].continuation, " trained_hard .");
  EXPECT_EQ(ll.requests[1].continuation, " trained_hard .");
  EXPECT_EQ(ll.gold, 0);
  EXPECT_FALSE(ll.reports_acc_norm);
  EXPECT_TRUE(ll.matches_lm_eval);
  item.task = "knowref";
  item.extra["blank"] = 20;
  EXPECT_FALSE(render_loglik(item).matches_lm_eval);
  EXPECT_EQ(render_loglik(item).requests[1].context, "Ann beat Bo because Bo");
  item.extra["blank"] = 3;  // not at a "_"
  EXPECT_THROW(render_loglik(item), Error);
}

TEST(Prompt, BoolqLetterYesFirstLoglikNoFirst) {
  McItem item;
  item.task = "boolq";
  item.question = "is it";
  item.context = "Passage.";
  item.choices = {"yes", "no"};
  item.gold = 1;  // false
  EXPECT_EQ(render_letter_prompt(item), "Passage.\nQuestion: is it?\nA. yes\nB. no\nAnswer:");
  const LoglikItem ll = render_loglik(item);
  EXPECT_EQ(ll.requests[0].continuation, " no");
  EXPECT_EQ(ll.requests[1].continuation, " yes");
  EXPECT_EQ(ll.gold, 0);
  EXPECT_EQ(ll.requests[0].context, "Passage.\nQuestion: is it?\nAnswer:");
}

TEST(Prompt, RejectsItemsItCannotRender) {
  McItem item;
  item.task = "squad";
  item.question = "Q";
  item.choices = {"a", "b"};
  item.gold = 0;
  EXPECT_THROW(render_letter_prompt(item), Error);
  EXPECT_THROW(render_loglik(item), Error);
  item.task = "arc_easy";
  item.gold = 2;
  EXPECT_THROW(render_letter_prompt(item), Error);
  item.gold = 0;
  item.task = "commonsense_qa";
  EXPECT_THROW(render_loglik(item), Error);  // lm-eval's template needs five options
  item.task = "sciq";
  EXPECT_THROW(render_loglik(item), Error);  // no distractors in extra
}

TEST(Scoring, AccAndAccNorm) {
  // acc: -8 is the largest; acc_norm: -10/10 = -1, -8/2 = -4, -9/20 = -0.45 -> index 2.
  const auto p = predict_loglik({-10, -8, -9}, {10, 2, 20});
  EXPECT_EQ(p.acc, 1);
  EXPECT_EQ(p.acc_norm, 2);
  const auto tie = predict_loglik({-3, -3}, {3, 3});
  EXPECT_EQ(tie.acc, 0);  // numpy argmax: first maximum
  EXPECT_EQ(tie.acc_norm, 0);
  EXPECT_THROW(predict_loglik({-1, std::nan("")}, {1, 1}), Error);
  EXPECT_THROW(predict_loglik({-1, -2}, {1}), Error);
  EXPECT_THROW(predict_loglik({-1, -2}, {1, 0}), Error);
  EXPECT_THROW(predict_loglik({}, {}), Error);
  EXPECT_EQ(predict_letter({0.5, 2.0, 2.0, -1}), 1);
}

TEST(Scoring, WilsonIntervalMatchesNewcombe1998) {
  // Newcombe, Statistics in Medicine 17:857 (1998), Table I, method 3 (score, no continuity correction).
  const struct {
    std::size_t x, n;
    double lo, hi;
  } cases[] = {{81, 263, 0.2553, 0.3662}, {15, 148, 0.0624, 0.1605}, {0, 20, 0.0, 0.1611}, {1, 29, 0.0061, 0.1718}};
  for (const auto& c : cases) {
    const Interval ci = wilson_interval(c.x, c.n);
    EXPECT_NEAR(ci.low, c.lo, 6e-5) << c.x << "/" << c.n;
    EXPECT_NEAR(ci.high, c.hi, 6e-5) << c.x << "/" << c.n;
  }
  // Symmetry: the interval of n-x is the mirror image.
  const Interval a = wilson_interval(7, 31), b = wilson_interval(24, 31);
  EXPECT_NEAR(a.low, 1 - b.high, 1e-12);
  EXPECT_NEAR(a.high, 1 - b.low, 1e-12);
  EXPECT_THROW(wilson_interval(0, 0), Error);
  EXPECT_THROW(wilson_interval(5, 4), Error);
}
