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

TEST(DemoData, DevIsCarvedFromReferenceBalancedAndDisjoint) {
  const auto s = generate_splits(3, small());
  const auto d = demo_data(3, small(), 20);
  ASSERT_EQ(d.dev.size(), 100u);
  EXPECT_EQ(d.reference.size() + d.dev.size(), s.reference.size());
  ASSERT_EQ(d.test.size(), s.test.size());
  ASSERT_EQ(d.train.size(), s.train.size());
  std::map<std::string, int> per_family;
  for (const auto& it : d.dev) ++per_family[it.task];
  for (const auto& f : task_families()) EXPECT_EQ(per_family[f], 20) << f;
  // Without their cues, reference, dev and test items are the generated ones, each once.
  auto plain = [](McItem it) {
    const auto colon = it.question.find(": ");
    it.question = it.question.substr(colon + 2);
    return identity_key(it);
  };
  std::set<std::string> generated, keys;
  for (const auto* split : {&s.reference, &s.test})
    for (const auto& it : *split) generated.insert(identity_key(it));
  for (const auto* split : {&d.reference, &d.dev, &d.test})
    for (const auto& it : *split) {
      EXPECT_TRUE(keys.insert(plain(it)).second) << it.id;
      EXPECT_TRUE(generated.count(plain(it))) << it.id;
    }
  for (const auto* split : {&d.reference, &d.dev, &d.test})
    for (std::size_t i = 0; i < split->size(); ++i) EXPECT_EQ((*split)[i].cue, (*split)[i].task);
  EXPECT_EQ(d.dev[7].id, "dev-7");
  EXPECT_EQ(d.reference[7].id, "reference-7");
}

TEST(DemoData, CuesStartTheQuestionAndShiftedItemsCarryAnotherFamilysCue) {
  const auto d = demo_data(3, small(), 20);
  const auto& families = task_families();
  auto cue_of = [&](const std::string& f) {
    return family_cues()[static_cast<std::size_t>(std::find(families.begin(), families.end(), f) - families.begin())];
  };
  for (const auto& [plain, shifted] : {std::pair{&d.test, &d.test_shifted}, {&d.dev, &d.dev_shifted}}) {
    ASSERT_EQ(plain->size(), shifted->size());
    std::map<std::string, int> cue_counts;
    for (std::size_t i = 0; i < plain->size(); ++i) {
      const auto& a = (*plain)[i];
      const auto& b = (*shifted)[i];
      EXPECT_EQ(a.task, b.task);
      EXPECT_EQ(a.choices, b.choices);
      EXPECT_EQ(a.answer, b.answer);
      EXPECT_NE(b.cue, a.task);
      EXPECT_EQ(a.question.rfind(cue_of(a.task) + " ", 0), 0u) << a.question;
      EXPECT_EQ(b.question, cue_of(b.cue) + a.question.substr(cue_of(a.task).size())) << b.question;
      ++cue_counts[b.cue];
    }
    EXPECT_EQ(cue_counts.size(), families.size());  // every family's cue is used
  }
  // About swapped_share of the training items carry another family's cue.
  int swapped = 0;
  for (const auto& it : d.train) {
    EXPECT_EQ(it.question.rfind(cue_of(it.cue) + " ", 0), 0u);
    swapped += it.cue != it.task;
  }
  EXPECT_NEAR(static_cast<double>(swapped) / static_cast<double>(d.train.size()), 0.2, 0.03);
  EXPECT_EQ(dump(with_other_cues(d.test, 5)), dump(with_other_cues(d.test, 5)));
  EXPECT_NE(dump(with_other_cues(d.test, 5)), dump(with_other_cues(d.test, 6)));
  // The cue survives a round trip through the file format.
  EXPECT_EQ(item_from_json(item_to_json(d.test_shifted[3]), "x").cue, d.test_shifted[3].cue);
}

// The files shipped in models/demo/data are exactly what `c3po train-demo --data-only` writes.
TEST(DemoData, ShippedFilesAreTheGeneratorsOutput) {
  const std::string dir = std::string(C3PO_SOURCE_DIR) + "/models/demo/data/";
  const auto d = demo_data(1, SplitSizes{});
  auto slurp = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(slurp(dir + "train.jsonl"), dump(d.train));
  EXPECT_EQ(slurp(dir + "reference.jsonl"), dump(d.reference));
  EXPECT_EQ(slurp(dir + "dev.jsonl"), dump(d.dev));
  EXPECT_EQ(slurp(dir + "dev-shifted.jsonl"), dump(d.dev_shifted));
  EXPECT_EQ(slurp(dir + "test.jsonl"), dump(d.test));
  EXPECT_EQ(slurp(dir + "test-shifted.jsonl"), dump(d.test_shifted));
}

TEST(DemoTasks, SplitsAreDisjointAndSized) {
  const auto s = generate_splits(3, small());
  ASSERT_EQ(s.train.size(), 2000u);
  ASSERT_EQ(s.reference.size(), 400u);
  ASSERT_EQ(s.test.size(), 200u);
  // Test and reference items are unique; training items may repeat among themselves but never
  // occur in test or reference.
  std::set<std::string> held_out;
  std::size_t total = 0;
  for (const auto* split : {&s.reference, &s.test})
    for (const auto& it : *split) {
      held_out.insert(identity_key(it));
      ++total;
    }
  EXPECT_EQ(held_out.size(), total) << "a test or reference item occurs twice";
  for (const auto& it : s.train) EXPECT_EQ(held_out.count(identity_key(it)), 0u) << it.question;
  // Questions with fixed options: the question alone identifies the item.
  std::map<std::string, std::string> split_of;
  for (const auto& [name, split] : {std::pair{"train", &s.train}, {"reference", &s.reference}, {"test", &s.test}})
    for (const auto& it : *split) {
      auto [pos, fresh] = split_of.emplace(it.question, name);
      EXPECT_TRUE(fresh || pos->second == name) << it.question;
    }
}

TEST(DemoTasks, EveryTemplateHasFixedOptions) {
  // The options of a question depend only on its template (the question with numbers, quoted
  // words and names removed), never on the item.
  const auto s = generate_splits(4, small());
  std::map<std::string, std::vector<std::string>> by_template;
  const std::regex varying(R"((\d+|"[a-z]+"|\b(?!Does\b|Is\b|In\b|Where\b|Which\b|What\b|How\b|By\b)[A-Z][a-z]+ [A-Z][a-z]+|[a-z](, [a-z])+))");
  const std::regex knowledge_value(R"( (Oslo|Lima|Cairo|Dublin|Quito|red|blue|green|yellow|baker|pilot|doctor)\?)");
  for (const auto& it : s.train) {
    auto key = std::regex_replace(std::regex_replace(it.question, varying, "#"), knowledge_value, " #?");
    auto [pos, fresh] = by_template.emplace(key, it.choices);
    EXPECT_EQ(pos->second, it.choices) << it.question;
  }
  std::string templates;
  for (const auto& [key, options] : by_template) templates += key + "\n";
  EXPECT_LT(by_template.size(), 40u) << templates;
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
  auto numbers = [](const std::string& text) {
    std::vector<int> v;
    const std::regex re(R"(\d+)");
    for (auto i = std::sregex_iterator(text.begin(), text.end(), re); i != std::sregex_iterator(); ++i)
      v.push_back(std::stoi(i->str()));
    return v;
  };
  auto yes = [](bool b) { return std::string(b ? "yes" : "no"); };
  auto vowel = [](char c) { return std::string("aeiou").find(c) != std::string::npos; };
  const auto& q = it.question;
  const auto v = numbers(q);
  if (it.task == "arithmetic") {
    if (std::regex_match(q, m, std::regex(R"(Is (\d+) \+ (\d+) equal to (\d+)\?)")))
      return yes(std::stoi(m[1]) + std::stoi(m[2]) == std::stoi(m[3]));
    if (std::regex_match(q, m, std::regex(R"(Is (\d+) \+ (\d+) even or odd\?)")))
      return (std::stoi(m[1]) + std::stoi(m[2])) % 2 ? "odd" : "even";
    if (std::regex_match(q, m, std::regex(R"(How does (\d+) \+ (\d+) compare with (\d+)\?)"))) {
      const int a = std::stoi(m[1]) + std::stoi(m[2]), b = std::stoi(m[3]);
      return a < b ? "less" : a == b ? "equal" : "more";
    }
    if (std::regex_match(q, m, std::regex(R"(Which range holds (\d+) \+ (\d+)\?)"))) {
      const int a = std::stoi(m[1]) + std::stoi(m[2]);
      return a < 80 ? "below 80" : a < 120 ? "80 to 119" : a < 160 ? "120 to 159" : "160 or more";
    }
    if (std::regex_match(q, m, std::regex(R"(Which range holds (\d+) - (\d+)\?)"))) {
      const int d = std::stoi(m[1]) - std::stoi(m[2]);
      return d >= 40 ? "40 or more" : std::to_string(d / 10 * 10) + " to " + std::to_string(d / 10 * 10 + 9);
    }
    return "<unparsed>";
  }
  if (it.task == "comparison") {
    if (std::regex_match(q, m, std::regex(R"(Is (\d+) larger than (\d+)\?)"))) return yes(std::stoi(m[1]) > std::stoi(m[2]));
    if (std::regex_match(q, m, std::regex(R"re(Does "([a-z]+)" come before "([a-z]+)" in alphabetical order\?)re")))
      return yes(m[1].str() < m[2].str());
    if (std::regex_match(q, m, std::regex(R"(How does (\d+) compare with (\d+)\?)"))) {
      const int a = std::stoi(m[1]), b = std::stoi(m[2]);
      return a < b ? "smaller" : a == b ? "equal" : "larger";
    }
    static const char* ordinals[] = {"first", "second", "third", "fourth", "fifth"};
    if (q.rfind("Where is the largest number in ", 0) == 0)
      return ordinals[std::max_element(v.begin(), v.end()) - v.begin()];
    if (q.rfind("Where is the smallest number in ", 0) == 0)
      return ordinals[std::min_element(v.begin(), v.end()) - v.begin()];
    return "<unparsed>";
  }
  if (it.task == "string") {
    if (!std::regex_search(q, m, std::regex(R"re("([a-z]+)")re"))) return "<unparsed>";
    const std::string w = m[1];
    if (q.find("start with a vowel") != std::string::npos) return yes(vowel(w.front()));
    if (q.find("end with a vowel") != std::string::npos) return yes(vowel(w.back()));
    if (q.find("How many letters") == 0) return std::to_string(w.size());
    if (q.find("How many vowels") == 0) return std::to_string(std::count_if(w.begin(), w.end(), vowel));
    if (q.find("Which vowel comes first") == 0) return std::string(1, *std::find_if(w.begin(), w.end(), vowel));
    return "<unparsed>";
  }
  if (it.task == "sequence") {
    if (std::regex_match(q, m, std::regex(R"(Does ([\d, ]+) continue with (\d+)\?)"))) {
      const auto t = numbers(m[1]);
      return yes(t.back() + (t[1] - t[0]) == std::stoi(m[2]));
    }
    if (std::regex_match(q, m, std::regex(R"(What is the step of ([a-z])(, [a-z])+\?)"))) return std::to_string(q[q.find(",") + 2] - q[q.find(",") - 1]);
    if (q.rfind("What is the step of ", 0) == 0 || q.rfind("By how much does each term grow in ", 0) == 0)
      return std::to_string(v[1] - v[0]);
    if (q.rfind("Which term breaks the pattern of ", 0) == 0) {
      // The step is the one that three of the four gaps share... the odd term is the one whose
      // removal leaves a progression; try each.
      static const char* ordinals[] = {"first", "second", "third", "fourth", "fifth"};
      for (int odd = 0; odd < 5; ++odd) {
        std::vector<int> rest;
        std::vector<int> pos;
        for (int i = 0; i < 5; ++i)
          if (i != odd) rest.push_back(v[i]), pos.push_back(i);
        const double step = static_cast<double>(rest[1] - rest[0]) / (pos[1] - pos[0]);
        bool progression = step == std::floor(step);
        for (int i = 1; i < 4 && progression; ++i)
          progression = rest[i] - rest[0] == static_cast<int>(step) * (pos[i] - pos[0]);
        if (progression) return ordinals[odd];
      }
      return "<no single odd term>";
    }
    return "<unparsed>";
  }
  if (it.task == "knowledge") {
    for (const auto& [name, p] : kb)
      if (q.find(name) != std::string::npos) {
        if (std::regex_match(q, m, std::regex(R"(Does .* live in ([A-Za-z]+)\?)"))) return yes(m[1] == p.city);
        if (std::regex_match(q, m, std::regex(R"(Is the favourite colour of .* ([a-z]+)\?)"))) return yes(m[1] == p.colour);
        if (std::regex_match(q, m, std::regex(R"(Is .* a ([a-z]+)\?)"))) return yes(m[1] == p.job);
        if (q.find("city") != std::string::npos || q.find("live") != std::string::npos) return p.city;
        if (q.find("colour") != std::string::npos) return p.colour;
        if (q.find("job") != std::string::npos || q.find("work") != std::string::npos) return p.job;
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
