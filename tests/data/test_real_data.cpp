// Reads every real data file through the registry and checks the counts against the numbers in
// the folders' SOURCE.md (items, label balance) and against the other form of the same data
// (OpenBookQA TSV vs jsonl, KnowRef train.tsv vs val.json).
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "data/registry.h"
#include "io/error.h"

using namespace c3po::data;

namespace {

const std::string kData = C3PO_SHARED_DIR "/data/";

ReadResult read(const std::string& task, const std::string& rel, const std::string& split = "") {
  return read_task(task, kData + rel, split);
}

std::map<int, std::size_t> gold_counts(const ReadResult& r) {
  std::map<int, std::size_t> counts;
  for (const auto& item : r.items) ++counts[item.gold];
  return counts;
}

using Counts = std::map<int, std::size_t>;

}  // namespace

TEST(RealData, Mmlu) {
  const auto test = read("mmlu", "mmlu", "test");
  EXPECT_EQ(test.items.size(), 14042u);
  EXPECT_EQ(test.files.size(), 57u);
  EXPECT_EQ(test.skipped, 0u);
  // Answer letters counted with Python's csv module.
  EXPECT_EQ(gold_counts(test), (Counts{{0, 3222}, {1, 3462}, {2, 3582}, {3, 3776}}));
  EXPECT_EQ(read("mmlu", "mmlu", "validation").items.size(), 1531u);
  const auto dev = read("mmlu", "mmlu", "dev");
  EXPECT_EQ(dev.items.size(), 285u);
  EXPECT_EQ(dev.items.front().subject, "abstract_algebra");
  EXPECT_EQ(dev.items.back().subject, "world_religions");
  // A quote inside an unquoted field (college_medicine_val.csv row 6) is literal, as in Python's csv.
  const auto med = read("mmlu", "mmlu/val/college_medicine_val.csv");
  ASSERT_EQ(med.items.size(), 22u);
  EXPECT_EQ(med.items[5].question,
            "Which of the following would be the most accurate definition of Nietzsche\u2019s Will to Truth?\"");
  EXPECT_EQ(med.items[5].choices[3], "Our desire for love.");
}

TEST(RealData, Arc) {
  const std::map<std::string, std::size_t> sizes = {
      {"ARC-Challenge/ARC-Challenge-Train.jsonl", 1119}, {"ARC-Challenge/ARC-Challenge-Dev.jsonl", 299},
      {"ARC-Challenge/ARC-Challenge-Test.jsonl", 1172}, {"ARC-Easy/ARC-Easy-Train.jsonl", 2251},
      {"ARC-Easy/ARC-Easy-Dev.jsonl", 570},             {"ARC-Easy/ARC-Easy-Test.jsonl", 2376}};
  for (const auto& [rel, n] : sizes) {
    const bool challenge = rel.find("Challenge") != std::string::npos;
    const auto r = read(challenge ? "arc_challenge" : "arc_easy", "arc/" + rel);
    EXPECT_EQ(r.items.size(), n) << rel;
  }
  // Through the registry's default split; choice counts and digit labels counted with Python.
  const auto test = read("arc_challenge", "arc");
  ASSERT_EQ(test.items.size(), 1172u);
  std::map<std::size_t, std::size_t> by_choices;
  std::size_t digit_labels = 0;
  for (const auto& item : test.items) {
    ++by_choices[item.choices.size()];
    digit_labels += item.extra["labels"][0] == "1";
  }
  EXPECT_EQ(by_choices, (std::map<std::size_t, std::size_t>{{3, 4}, {4, 1165}, {5, 3}}));
  EXPECT_EQ(digit_labels, 22u);
  EXPECT_EQ(read("arc_easy", "arc").items.size(), 2376u);
}

TEST(RealData, HellaswagTextForm) {
  const auto r = read("hellaswag", "hellaswag");
  EXPECT_EQ(r.items.size(), 10042u);
  EXPECT_EQ(gold_counts(r), (Counts{{0, 2515}, {1, 2485}, {2, 2584}, {3, 2458}}));
  EXPECT_EQ(r.items[1].source, kData + "hellaswag/hellaswag_val_full.txt:7");
}

TEST(RealData, Piqa) {
  EXPECT_EQ(read("piqa", "piqa").items.size(), 1838u);
  const auto train = read("piqa", "piqa", "train");
  EXPECT_EQ(train.items.size(), 16113u);
  EXPECT_EQ(gold_counts(train), (Counts{{0, 8053}, {1, 8060}}));
}

TEST(RealData, WinograndeAgreesWithItsLabelFiles) {
  const std::map<std::string, std::size_t> sizes = {{"validation", 1267}, {"train_xs", 160},
                                                    {"train_s", 640},     {"train_m", 2558},
                                                    {"train_l", 10234},   {"train_debiased", 9248}};
  for (const auto& [split, n] : sizes) {
    const auto r = read("winogrande", "winogrande", split);
    EXPECT_EQ(r.items.size(), n) << split;
    EXPECT_EQ(r.files.size(), 2u) << split;  // the labels file was read and agreed
  }
  // "train" picks the largest set present (train_xl is missing here).
  EXPECT_EQ(read("winogrande", "winogrande", "train").items.size(), 10234u);
}

TEST(RealData, Boolq) {
  const auto r = read("boolq", "boolq");
  EXPECT_EQ(r.items.size(), 3270u);
  EXPECT_EQ(gold_counts(r), (Counts{{0, 2033}, {1, 1237}}));  // "yes" first
}

TEST(RealData, CommonsenseQa) {
  EXPECT_EQ(read("commonsense_qa", "commonsenseqa").items.size(), 1221u);
  EXPECT_EQ(read("commonsense_qa", "commonsenseqa", "train").items.size(), 9741u);
}

TEST(RealData, OpenBookQaTsvAndJsonlAgree) {
  const std::map<std::string, Counts> balance = {{"train", {{0, 1378}, {1, 1212}, {2, 1146}, {3, 1221}}},
                                                 {"dev", {{0, 126}, {1, 138}, {2, 110}, {3, 126}}},
                                                 {"test", {{0, 138}, {1, 126}, {2, 132}, {3, 104}}}};
  for (const auto& [split, counts] : balance) {
    const auto jsonl = read("openbookqa", "openbookqa-jsonl/" + split + ".jsonl");
    EXPECT_EQ(gold_counts(jsonl), counts) << split;
    ReadOptions skip;
    skip.skip_bad = true;
    const auto tsv = read_task("openbookqa", kData + "openbookqa/" + split + ".tsv", "", skip);
    // One train row cannot be split unambiguously: an option text contains " (D) ".
    const std::size_t ambiguous = split == "train" ? 1 : 0;
    EXPECT_EQ(tsv.skipped, ambiguous) << split;
    if (ambiguous) {
      ASSERT_EQ(tsv.messages.size(), 1u);
      EXPECT_NE(tsv.messages[0].find("train.tsv:3334: Choices"), std::string::npos) << tsv.messages[0];
      EXPECT_THROW(read("openbookqa", "openbookqa", "train"), c3po::Error);
    }
    ASSERT_EQ(tsv.items.size() + ambiguous, jsonl.items.size()) << split;
    std::size_t j = 0;
    for (std::size_t i = 0; i < tsv.items.size(); ++i, ++j) {
      if (tsv.items[i].id != jsonl.items[j].id) ++j;  // the skipped row
      ASSERT_LT(j, jsonl.items.size());
      EXPECT_EQ(tsv.items[i].id, jsonl.items[j].id);
      EXPECT_EQ(tsv.items[i].question, jsonl.items[j].question) << tsv.items[i].source;
      EXPECT_EQ(tsv.items[i].choices, jsonl.items[j].choices) << tsv.items[i].source;
      EXPECT_EQ(tsv.items[i].gold, jsonl.items[j].gold);
    }
  }
}

TEST(RealData, Sciq) {
  const std::map<std::string, std::pair<std::size_t, std::size_t>> sizes = {
      {"train", {11679, 10481}}, {"validation", {1000, 887}}, {"test", {1000, 884}}};
  for (const auto& [split, n] : sizes) {
    const auto r = read("sciq", "sciq", split);
    EXPECT_EQ(r.items.size(), n.first) << split;
    std::size_t with_support = 0;
    for (const auto& item : r.items) {
      with_support += !item.context.empty();
      EXPECT_EQ(item.choices[item.gold], item.extra["correct_answer"]);
    }
    EXPECT_EQ(with_support, n.second) << split;
  }
}

TEST(RealData, SocialIqa) {
  const auto train = read("social_iqa", "socialiqa", "train");
  EXPECT_EQ(train.items.size(), 33410u);
  EXPECT_EQ(gold_counts(train), (Counts{{0, 11274}, {1, 11176}, {2, 10960}}));
  const auto dev = read("social_iqa", "socialiqa");
  EXPECT_EQ(gold_counts(dev), (Counts{{0, 643}, {1, 654}, {2, 657}}));
}

TEST(RealData, KnowRef) {
  // Two defective test items: #237 (both candidates "Christina", named in SOURCE.md) and #476
  // (two bracketed pronouns). Without skip_bad the first one stops the read.
  EXPECT_THROW(read("knowref", "knowref"), c3po::Error);
  ReadOptions skip;
  skip.skip_bad = true;
  const auto test = read_task("knowref", kData + "knowref", "test", skip);
  EXPECT_EQ(test.items.size(), 1267u);
  EXPECT_EQ(test.skipped, 2u);
  ASSERT_EQ(test.messages.size(), 2u);
  EXPECT_NE(test.messages[0].find("knowref_test.json:239"), std::string::npos) << test.messages[0];
  EXPECT_NE(test.messages[1].find("knowref_test.json:478"), std::string::npos) << test.messages[1];
  // SOURCE.md: correct = candidate0 631 / candidate1 638 over all 1269; the skipped two count one each.
  EXPECT_EQ(gold_counts(test), (Counts{{0, 630}, {1, 637}}));

  const auto train = read("knowref", "knowref", "train");
  const auto dev = read("knowref", "knowref", "validation");
  EXPECT_EQ(train.items.size(), 5219u);
  EXPECT_EQ(dev.items.size(), 2236u);
  // SOURCE.md "first row correct": the first row of each pair always substitutes candidate0.
  EXPECT_EQ(gold_counts(train), (Counts{{0, 2792}, {1, 2427}}));
  EXPECT_EQ(gold_counts(dev), (Counts{{0, 1190}, {1, 1046}}));

  // val.json is the JSON twin of train.tsv: the sentence rebuilt from the two TSV rows must be
  // the JSON sentence with its [pronoun] blanked, with the same candidates and answer.
  const auto twin = read("knowref", "knowref/data/val.json");
  ASSERT_EQ(twin.items.size(), 5220u);
  std::size_t same = 0;
  for (std::size_t i = 0; i < train.items.size(); ++i) {
    const auto& a = train.items[i];
    const auto& b = twin.items[i];
    same += a.question == b.question && a.choices == b.choices && a.gold == b.gold;
  }
  EXPECT_EQ(same, train.items.size());
}
