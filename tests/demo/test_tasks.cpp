// The synthetic task generator: determinism, disjoint splits, well-formed items, and every gold
// answer recomputed independently from the question text.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "demo/tasks.h"
#include "io/error.h"

namespace c3po::demo {
namespace {

SplitSizes small() { return SplitSizes{2000, 400, 200}; }

std::string dump(const std::vector<McItem>& items) {
  std::string s;
  for (const auto& it : items) s += item_to_json(it).dump() + "\n";
  return s;
}

TEST(DemoTasks, SameSeedSameItemsOtherSeedOtherItems) {
  const auto a = generate_splits(7, small()), b = generate_splits(7, small()), c = generate_splits(8, small());
  EXPECT_EQ(dump(a.train), dump(b.train));
  EXPECT_EQ(dump(a.reference), dump(b.reference));
  EXPECT_EQ(dump(a.test), dump(b.test));
  EXPECT_NE(dump(a.test), dump(c.test));
}

TEST(DemoTasks, SplitsAreDisjointAndSized) {
  const auto s = generate_splits(3, small());
  ASSERT_EQ(s.train.size(), 2000u);
  ASSERT_EQ(s.reference.size(), 400u);
  ASSERT_EQ(s.test.size(), 200u);
  std::set<std::string> keys;
  std::size_t total = 0;
  for (const auto* split : {&s.train, &s.reference, &s.test})
    for (const auto& it : *split) {
      keys.insert(identity_key(it));
      ++total;
    }
  EXPECT_EQ(keys.size(), total) << "an item occurs twice (within or across splits)";
  // The question alone never repeats across splits for the families whose question fixes the answer.
  std::map<std::string, std::string> split_of;
  for (const auto& [name, split] : {std::pair{"train", &s.train}, {"reference", &s.reference}, {"test", &s.test}})
    for (const auto& it : *split)
      if (it.task == "arithmetic" || it.task == "string" || it.task == "sequence") {
        auto [pos, fresh] = split_of.emplace(it.question, name);
        EXPECT_TRUE(fresh || pos->second == name) << it.question;
      }
}

TEST(DemoTasks, OptionCountsAndGoldPositionsAreBalanced) {
  const auto s = generate_splits(5, small());
  for (const auto* split : {&s.train, &s.reference, &s.test}) {
    // family -> option count -> gold index -> items
    std::map<std::string, std::map<int, std::map<int, int>>> counts;
    for (const auto& it : *split) ++counts[it.task][static_cast<int>(it.choices.size())][it.answer];
    ASSERT_EQ(counts.size(), task_families().size());
    const double per_family = static_cast<double>(split->size()) / task_families().size();
    for (const auto& [family, by_n] : counts) {
      ASSERT_EQ(by_n.size(), 4u) << family << ": every option count 2..5 occurs";
      for (const auto& [n, by_gold] : by_n) {
        int items = 0;
        for (const auto& [g, c] : by_gold) items += c;
        EXPECT_NEAR(items, per_family / 4, 1.0) << family << " n=" << n;
        ASSERT_EQ(static_cast<int>(by_gold.size()), n) << family << " n=" << n;
        for (const auto& [g, c] : by_gold) EXPECT_NEAR(c, static_cast<double>(items) / n, 1.0) << family << " n=" << n;
      }
    }
    // So always answering the last option (or any fixed letter) is right about E[1/n] of the time.
    int last = 0;
    for (const auto& it : *split) last += it.answer + 1 == static_cast<int>(it.choices.size());
    EXPECT_NEAR(static_cast<double>(last) / split->size(), (1.0 / 2 + 1.0 / 3 + 1.0 / 4 + 1.0 / 5) / 4, 0.03);
  }
}

// Recomputes the gold answer of an item from its question, independently of the generator.
std::string expected_answer(const McItem& it, const std::map<std::string, Person>& kb) {
  std::smatch m;
  if (it.task == "arithmetic") {
    const std::regex re(R"(What is (\d+) ([+-]) (\d+)\?)");
    if (!std::regex_match(it.question, m, re)) return "<unparsed>";
    const int a = std::stoi(m[1]), b = std::stoi(m[3]);
    return std::to_string(m[2] == "+" ? a + b : a - b);
  }
  if (it.task == "string") {
    const std::regex re(R"re((What is the first letter of|What is the last letter of|How many letters are in|What is) "([a-z]+)"( spelled backwards)?\?)re");
    if (!std::regex_match(it.question, m, re)) return "<unparsed>";
    const std::string w = m[2];
    if (m[3].matched) return std::string(w.rbegin(), w.rend());
    if (m[1] == "What is the first letter of") return w.substr(0, 1);
    if (m[1] == "What is the last letter of") return w.substr(w.size() - 1);
    return std::to_string(w.size());
  }
  if (it.task == "sequence") {
    const std::string prefix = "What comes next in the sequence: ";
    if (it.question.rfind(prefix, 0) != 0) return "<unparsed>";
    std::vector<std::string> terms;
    std::string body = it.question.substr(prefix.size());
    body = body.substr(0, body.size() - std::string(", ...?").size());
    std::size_t pos = 0;
    while (pos <= body.size()) {
      auto comma = body.find(", ", pos);
      terms.push_back(body.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
      if (comma == std::string::npos) break;
      pos = comma + 2;
    }
    const std::size_t n = terms.size();
    if (std::isalpha(static_cast<unsigned char>(terms[0][0])))
      return std::string(1, static_cast<char>(terms[n - 1][0] + (terms[1][0] - terms[0][0])));
    const int t0 = std::stoi(terms[0]), t1 = std::stoi(terms[1]), t2 = std::stoi(terms[2]);
    if (t2 == t0 && t1 != t0) return terms[n - 2];          // alternating
    return std::to_string(std::stoi(terms[n - 1]) + (t1 - t0));  // arithmetic
  }
  if (it.task == "comparison") {
    const bool numbers = it.question.find("number") != std::string::npos;
    const bool want_max = it.question.find("largest") != std::string::npos ||
                          it.question.find("last in alphabetical") != std::string::npos;
    auto less = [&](const std::string& a, const std::string& b) { return numbers ? std::stoi(a) < std::stoi(b) : a < b; };
    return want_max ? *std::max_element(it.choices.begin(), it.choices.end(), less)
                    : *std::min_element(it.choices.begin(), it.choices.end(), less);
  }
  if (it.task == "knowledge") {
    for (const auto& [name, p] : kb)
      if (it.question.find(name) != std::string::npos) {
        if (it.question.find("city") != std::string::npos) return p.city;
        if (it.question.find("colour") != std::string::npos) return p.colour;
        if (it.question.find("job") != std::string::npos) return p.job;
      }
    return "<unknown person>";
  }
  return "<unknown task>";
}

TEST(DemoTasks, EveryItemIsWellFormedAndItsGoldIsRight) {
  const uint64_t seed = 11;
  const auto s = generate_splits(seed, small());
  std::map<std::string, Person> kb;
  for (const auto& p : knowledge_base(seed)) kb[p.name] = p;
  ASSERT_GE(kb.size(), 20u);
  for (const auto* split : {&s.train, &s.reference, &s.test})
    for (const auto& it : *split) {
      ASSERT_GE(it.choices.size(), 2u) << it.id;
      ASSERT_LE(it.choices.size(), 5u) << it.id;
      ASSERT_GE(it.answer, 0) << it.id;
      ASSERT_LT(it.answer, static_cast<int>(it.choices.size())) << it.id;
      std::set<std::string> distinct(it.choices.begin(), it.choices.end());
      EXPECT_EQ(distinct.size(), it.choices.size()) << it.id << ": repeated choice";
      for (const auto& c : it.choices) EXPECT_FALSE(c.empty()) << it.id;
      EXPECT_EQ(it.choices[it.answer], expected_answer(it, kb)) << it.id << ": " << it.question;
      // Exactly one choice is right for comparison items (no ties).
      if (it.task == "comparison") {
        EXPECT_EQ(std::count(it.choices.begin(), it.choices.end(), it.choices[it.answer]), 1);
      }
    }
}

TEST(DemoTasks, RendersTheLetterProtocol) {
  McItem it{"x-0", "arithmetic", "What is 2 + 3?", {"4", "5", "6"}, 1};
  EXPECT_EQ(render_prompt(it), "Question: What is 2 + 3?\nA. 4\nB. 5\nC. 6\nAnswer:");
  EXPECT_EQ(letter_continuation(0), " A");
  EXPECT_EQ(letter_continuation(4), " E");
}

TEST(DemoTasks, JsonlRoundTripsAndRejectsBadItems) {
  const auto dir = std::filesystem::temp_directory_path() / ("c3po_demo_tasks_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto s = generate_splits(2, SplitSizes{50, 10, 10});
  const auto path = (dir / "test.jsonl").string();
  write_jsonl(path, s.test);
  EXPECT_EQ(dump(read_jsonl(path)), dump(s.test));

  auto expect_error = [&](const std::string& line, const std::string& field) {
    std::ofstream(path) << line << "\n";
    try {
      read_jsonl(path);
      FAIL() << "accepted " << line;
    } catch (const Error& e) {
      EXPECT_EQ(e.field(), field) << e.what();
      EXPECT_NE(e.file().find(path), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"id":"a","task":"t","question":"q","choices":["x","y"],"answer":2})", "answer");
  expect_error(R"({"id":"a","task":"t","question":"q","choices":["x","y"],"answer":-1})", "answer");
  expect_error(R"({"id":"a","task":"t","question":"q","choices":["x"],"answer":0})", "choices");
  expect_error(R"({"id":"a","task":"t","choices":["x","y"],"answer":0})", "question");
  expect_error(R"({"id":"a","task":"t","question":"q","choices":["x",3],"answer":0})", "choices");
  expect_error(R"({"id":"a", "task")", "");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace c3po::demo
