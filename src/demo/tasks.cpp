#include "demo/tasks.h"

#include <map>

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string_view>

#include "demo/rng.h"
#include "io/error.h"
#include "io/files.h"
#include "io/json_file.h"

namespace c3po::demo {

namespace {

// Every template has a fixed list of options (the same words in the same order in every item of
// the template), so an answer is a property of the question that a small model can learn as a
// classification; a first version drew distractors and shuffled them, which also demands binding
// an option's content to its letter, and a 3M-parameter model did not learn that in its budget.
const std::vector<std::string> kCities = {"Oslo", "Lima", "Cairo", "Dublin", "Quito"};
const std::vector<std::string> kColours = {"red", "blue", "green", "yellow"};
const std::vector<std::string> kJobs = {"baker", "pilot", "doctor"};
const std::vector<std::string> kYesNo = {"yes", "no"};
const std::vector<std::string> kOrdinals = {"first", "second", "third", "fourth", "fifth"};
constexpr int kPeople = 120;

const char* const kConsonants = "bdfgklmnprstvz";
const char* const kVowels = "aeiou";

bool is_vowel(char c) { return std::string_view(kVowels).find(c) != std::string_view::npos; }

// A pronounceable invented word of `letters` letters, alternating consonant/vowel.
std::string invent_word(SplitMix64& rng, int letters) {
  std::string w;
  bool consonant = rng.uniform(0, 1) == 0;
  for (int i = 0; i < letters; ++i, consonant = !consonant)
    w += consonant ? kConsonants[rng.uniform(0, 13)] : kVowels[rng.uniform(0, 4)];
  return w;
}

std::string capitalised(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

std::string num(int v) { return std::to_string(v); }

std::string join(const std::vector<std::string>& terms) {
  std::string s;
  for (std::size_t i = 0; i < terms.size(); ++i) s += (i ? ", " : "") + terms[i];
  return s;
}

void set(McItem& it, std::string question, const std::vector<std::string>& options, int answer) {
  it.question = std::move(question);
  it.choices = options;
  it.answer = answer;
}

std::vector<std::string> first_n(const std::vector<std::string>& v, int n) { return {v.begin(), v.begin() + n}; }

// A generator draws one item with n options (its answer is whatever the draw gives; the caller
// draws again until the answer is the wanted letter, which balances the letters).
using Generator = std::function<void(McItem&, SplitMix64&, int n)>;

void gen_arithmetic(McItem& it, SplitMix64& rng, int n) {
  const int a = static_cast<int>(rng.uniform(10, 99)), b = static_cast<int>(rng.uniform(10, 99));
  const int sum = a + b;
  const std::string expr = num(a) + " + " + num(b);
  switch (n) {
    case 2:
      if (rng.uniform(0, 1) == 0) {
        static const int slips[] = {-10, -2, -1, 1, 2, 10};
        const bool right = rng.uniform(0, 1) == 0;
        const int shown = right ? sum : sum + slips[rng.uniform(0, 5)];
        set(it, "Is " + expr + " equal to " + num(shown) + "?", kYesNo, right ? 0 : 1);
      } else {
        set(it, "Is " + expr + " even or odd?", {"even", "odd"}, sum % 2);
      }
      return;
    case 3: {
      const int d = static_cast<int>(rng.uniform(-12, 12));
      set(it, "How does " + expr + " compare with " + num(sum + d) + "?", {"less", "equal", "more"},
          d > 0 ? 0 : d == 0 ? 1 : 2);
      return;
    }
    case 4:
      set(it, "Which range holds " + expr + "?", {"below 80", "80 to 119", "120 to 159", "160 or more"},
          sum < 80 ? 0 : sum < 120 ? 1 : sum < 160 ? 2 : 3);
      return;
    default: {
      const int hi = std::max(a, b), lo = std::min(a, b);
      const int diff = hi - lo;
      set(it, "Which range holds " + num(hi) + " - " + num(lo) + "?",
          {"0 to 9", "10 to 19", "20 to 29", "30 to 39", "40 or more"}, std::min(diff / 10, 4));
    }
  }
}

void gen_comparison(McItem& it, SplitMix64& rng, int n) {
  switch (n) {
    case 2:
      if (rng.uniform(0, 1) == 0) {
        const int a = static_cast<int>(rng.uniform(10, 99));
        int b = static_cast<int>(rng.uniform(10, 98));
        if (b >= a) ++b;
        set(it, "Is " + num(a) + " larger than " + num(b) + "?", kYesNo, a > b ? 0 : 1);
      } else {
        const std::string x = invent_word(rng, static_cast<int>(rng.uniform(3, 6)));
        std::string y = invent_word(rng, static_cast<int>(rng.uniform(3, 6)));
        while (y == x) y = invent_word(rng, static_cast<int>(rng.uniform(3, 6)));
        set(it, "Does \"" + x + "\" come before \"" + y + "\" in alphabetical order?", kYesNo, x < y ? 0 : 1);
      }
      return;
    case 3: {
      const int a = static_cast<int>(rng.uniform(10, 99));
      const int b = rng.uniform(0, 2) == 0 ? a : static_cast<int>(rng.uniform(10, 99));
      set(it, "How does " + num(a) + " compare with " + num(b) + "?", {"smaller", "equal", "larger"},
          a < b ? 0 : a == b ? 1 : 2);
      return;
    }
    default: {  // 4 or 5 numbers: where is the largest (4) or the smallest (5)
      std::vector<int> values;
      while (static_cast<int>(values.size()) < n) {
        const int v = static_cast<int>(rng.uniform(10, 99));
        if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
      }
      std::vector<std::string> shown;
      for (int v : values) shown.push_back(num(v));
      const bool largest = n == 4;
      const auto best = largest ? std::max_element(values.begin(), values.end())
                                : std::min_element(values.begin(), values.end());
      set(it, std::string("Where is the ") + (largest ? "largest" : "smallest") + " number in " + join(shown) + "?",
          first_n(kOrdinals, n), static_cast<int>(best - values.begin()));
    }
  }
}

void gen_knowledge(McItem& it, SplitMix64& rng, int n, const std::vector<Person>& kb) {
  const Person& p = kb[rng.uniform(0, static_cast<int64_t>(kb.size()) - 1)];
  const int form = static_cast<int>(rng.uniform(0, 2));
  auto index_of = [](const std::vector<std::string>& v, const std::string& x) {
    return static_cast<int>(std::find(v.begin(), v.end(), x) - v.begin());
  };
  switch (n) {
    case 2: {
      const int attribute = static_cast<int>(rng.uniform(0, 2));
      const auto& pool = attribute == 0 ? kCities : attribute == 1 ? kColours : kJobs;
      const auto& truth = attribute == 0 ? p.city : attribute == 1 ? p.colour : p.job;
      // Half the questions name the true value, so that "no" is not the safe bet.
      const std::string& asked = rng.uniform(0, 1) == 0 ? truth : pool[rng.uniform(0, static_cast<int64_t>(pool.size()) - 1)];
      const std::string q = attribute == 0   ? "Does " + p.name + " live in " + asked + "?"
                            : attribute == 1 ? "Is the favourite colour of " + p.name + " " + asked + "?"
                                             : "Is " + p.name + " a " + asked + "?";
      set(it, q, kYesNo, asked == truth ? 0 : 1);
      return;
    }
    case 3: {
      static const char* forms[] = {"What job does {} do?", "What is the job of {}?", "What does {} work as?"};
      std::string q = forms[form];
      set(it, q.replace(q.find("{}"), 2, p.name), kJobs, index_of(kJobs, p.job));
      return;
    }
    case 4: {
      static const char* forms[] = {"What is the favourite colour of {}?", "Which colour does {} like best?",
                                    "Which colour is the favourite of {}?"};
      std::string q = forms[form];
      set(it, q.replace(q.find("{}"), 2, p.name), kColours, index_of(kColours, p.colour));
      return;
    }
    default: {
      static const char* forms[] = {"In which city does {} live?", "Where does {} live?", "Which city is home to {}?"};
      std::string q = forms[form];
      set(it, q.replace(q.find("{}"), 2, p.name), kCities, index_of(kCities, p.city));
    }
  }
}

void gen_string(McItem& it, SplitMix64& rng, int n) {
  switch (n) {
    case 2: {
      const std::string w = invent_word(rng, static_cast<int>(rng.uniform(3, 7)));
      if (rng.uniform(0, 1) == 0)
        set(it, "Does \"" + w + "\" start with a vowel?", kYesNo, is_vowel(w.front()) ? 0 : 1);
      else
        set(it, "Does \"" + w + "\" end with a vowel?", kYesNo, is_vowel(w.back()) ? 0 : 1);
      return;
    }
    case 3: {
      const std::string w = invent_word(rng, static_cast<int>(rng.uniform(3, 5)));
      set(it, "How many letters are in \"" + w + "\"?", {"3", "4", "5"}, static_cast<int>(w.size()) - 3);
      return;
    }
    case 4: {
      const std::string w = invent_word(rng, static_cast<int>(rng.uniform(2, 8)));
      const int vowels = static_cast<int>(std::count_if(w.begin(), w.end(), is_vowel));
      set(it, "How many vowels are in \"" + w + "\"?", {"1", "2", "3", "4"}, vowels - 1);
      return;
    }
    default: {
      const std::string w = invent_word(rng, static_cast<int>(rng.uniform(3, 7)));
      const char first = *std::find_if(w.begin(), w.end(), is_vowel);
      set(it, "Which vowel comes first in \"" + w + "\"?", {"a", "e", "i", "o", "u"},
          static_cast<int>(std::string_view(kVowels).find(first)));
    }
  }
}

void gen_sequence(McItem& it, SplitMix64& rng, int n) {
  const int terms = static_cast<int>(rng.uniform(4, 5));
  switch (n) {
    case 2: {
      const int start = static_cast<int>(rng.uniform(1, 50)), step = static_cast<int>(rng.uniform(2, 9));
      std::vector<std::string> shown;
      for (int i = 0; i < terms; ++i) shown.push_back(num(start + step * i));
      static const int slips[] = {-2, -1, 1, 2};
      const bool right = rng.uniform(0, 1) == 0;
      const int next = start + step * terms, offered = right ? next : next + slips[rng.uniform(0, 3)];
      set(it, "Does " + join(shown) + " continue with " + num(offered) + "?", kYesNo, right ? 0 : 1);
      return;
    }
    case 3: {
      const int stride = static_cast<int>(rng.uniform(1, 3));
      const int start = static_cast<int>(rng.uniform(0, 25 - stride * (terms - 1)));
      const bool letters = rng.uniform(0, 1) == 0;
      const int from = letters ? start : static_cast<int>(rng.uniform(1, 60));
      std::vector<std::string> shown;
      for (int i = 0; i < terms; ++i)
        shown.push_back(letters ? std::string(1, static_cast<char>('a' + from + stride * i)) : num(from + stride * i));
      set(it, (letters ? "What is the step of " : "By how much does each term grow in ") + join(shown) + "?",
          {"1", "2", "3"}, stride - 1);
      return;
    }
    case 4: {
      const int start = static_cast<int>(rng.uniform(1, 60)), step = static_cast<int>(rng.uniform(2, 5));
      std::vector<std::string> shown;
      for (int i = 0; i < terms; ++i) shown.push_back(num(start + step * i));
      set(it, "What is the step of " + join(shown) + "?", {"2", "3", "4", "5"}, step - 2);
      return;
    }
    default: {  // five terms of a progression, one of them off by 1 or 2
      const int start = static_cast<int>(rng.uniform(1, 40)), step = static_cast<int>(rng.uniform(2, 9));
      const int wrong = static_cast<int>(rng.uniform(0, 4));
      static const int slips[] = {-2, -1, 1, 2};
      std::vector<std::string> shown;
      for (int i = 0; i < 5; ++i) shown.push_back(num(start + step * i + (i == wrong ? slips[rng.uniform(0, 3)] : 0)));
      set(it, "Which term breaks the pattern of " + join(shown) + "?", kOrdinals, wrong);
    }
  }
}

std::string jsonl_line_origin(const std::string& path, std::size_t line) {
  return path + ":" + std::to_string(line);
}

}  // namespace

const std::vector<std::string>& task_families() {
  static const std::vector<std::string> families = {"arithmetic", "comparison", "knowledge",
                                                    "string", "sequence"};
  return families;
}

std::vector<Person> knowledge_base(uint64_t seed) {
  SplitMix64 rng(seed ^ 0x6B6E6F776C656467ULL);  // "knowledg": a stream of its own
  std::vector<Person> people;
  std::set<std::string> names;
  while (static_cast<int>(people.size()) < kPeople) {
    Person p;
    p.name = capitalised(invent_word(rng, static_cast<int>(rng.uniform(3, 5)))) + " " +
             capitalised(invent_word(rng, static_cast<int>(rng.uniform(4, 6))));
    if (!names.insert(p.name).second) continue;
    people.push_back(p);
  }
  // Each value held by equally many people, so that no answer is a safe bet.
  for (auto [pool, field] : {std::pair{&kCities, &Person::city}, {&kColours, &Person::colour}, {&kJobs, &Person::job}}) {
    std::vector<std::size_t> order(people.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    rng.shuffle(order);
    for (std::size_t i = 0; i < order.size(); ++i) people[order[i]].*field = (*pool)[i % pool->size()];
  }
  return people;
}

std::string identity_key(const McItem& item) {
  std::string key = item.task + "\n" + item.question;
  for (const auto& c : item.choices) key += "\n" + c;
  return key;
}

Splits generate_splits(uint64_t seed, const SplitSizes& sizes) {
  const auto kb = knowledge_base(seed);
  const auto& families = task_families();
  std::vector<Generator> generators = {
      gen_arithmetic, gen_comparison,
      [&kb](McItem& it, SplitMix64& rng, int n) { gen_knowledge(it, rng, n, kb); }, gen_string, gen_sequence};

  SplitMix64 root(seed);
  std::set<std::string> seen;
  Splits out;
  // Test first, so that the smallest split is never starved by the largest.
  struct Job {
    const char* name;
    int size;
    std::vector<McItem>* items;
  } jobs[] = {{"test", sizes.test, &out.test},
              {"reference", sizes.reference, &out.reference},
              {"train", sizes.train, &out.train}};
  for (auto& job : jobs) {
    if (job.size < 0) throw Error("", std::string("split ") + job.name, "size must be >= 0");
    const int nf = static_cast<int>(families.size());
    for (int f = 0; f < nf; ++f) {
      SplitMix64 rng = root.fork(static_cast<uint64_t>(f) * 131 + job.name[0]);
      const int count = job.size / nf + (f < job.size % nf ? 1 : 0);
      for (int j = 0; j < count; ++j) {
        // Option counts 2..5 equally often, and for each count every gold position equally often:
        // then no letter or position prior beats chance (balancing letters A..E over all items
        // instead would make "the last option" right far more often than 1/n).
        const int n = 2 + j % 4;
        const int gold = (j / 4) % n;
        McItem item;
        int attempts = 0;
        for (;; ++attempts) {
          if (attempts > 100000)
            throw Error("", "task " + families[f],
                        "cannot draw enough distinct items for split " + std::string(job.name));
          item = McItem{};
          item.task = families[f];
          generators[f](item, rng, n);
          if (item.answer != gold) continue;
          // Test and reference items are unique and never in another split; training items may
          // repeat among themselves (the knowledge family has a few thousand distinct questions).
          const auto key = identity_key(item);
          if (job.items == &out.train ? seen.count(key) == 0 : seen.insert(key).second) break;
        }
        job.items->push_back(std::move(item));
      }
    }
    SplitMix64 order = root.fork(0xABCDEFULL + job.name[0]);
    order.shuffle(*job.items);
    for (std::size_t i = 0; i < job.items->size(); ++i)
      (*job.items)[i].id = std::string(job.name) + "-" + std::to_string(i);
  }
  return out;
}

const std::vector<std::string>& family_cues() {
  static const std::vector<std::string> cues = {"Abacus:", "Scales:", "Almanac:", "Lexicon:", "Pattern:"};
  return cues;
}

namespace {

std::size_t family_index(const std::string& family, const std::string& origin) {
  const auto& families = task_families();
  const auto f = std::find(families.begin(), families.end(), family);
  if (f == families.end()) throw Error(origin, "task", "not a demo family: " + family);
  return static_cast<std::size_t>(f - families.begin());
}

// A family other than `own`, uniformly.
std::size_t other_family(std::size_t own, SplitMix64& rng) {
  const auto n = static_cast<int64_t>(task_families().size());
  const auto r = static_cast<std::size_t>(rng.uniform(0, n - 2));
  return r >= own ? r + 1 : r;
}

void renumber(std::vector<McItem>& items, const std::string& stem) {
  for (std::size_t i = 0; i < items.size(); ++i) items[i].id = stem + "-" + std::to_string(i);
}

}  // namespace

McItem with_cue(const McItem& item, const std::string& family) {
  McItem out = item;
  out.cue = family;
  out.question = family_cues()[family_index(family, item.id)] + " " + item.question;
  return out;
}

std::vector<McItem> with_other_cues(const std::vector<McItem>& items, uint64_t seed) {
  SplitMix64 rng = SplitMix64(seed).fork(0xC0E5ULL);
  std::vector<McItem> out;
  out.reserve(items.size());
  for (const auto& it : items) {
    McItem plain = it;
    if (!it.cue.empty()) plain.question = it.question.substr(family_cues()[family_index(it.cue, it.id)].size() + 1);
    out.push_back(with_cue(plain, task_families()[other_family(family_index(it.task, it.id), rng)]));
  }
  return out;
}

DemoData demo_data(uint64_t seed, const SplitSizes& sizes, int dev_per_family, double swapped_share) {
  Splits s = generate_splits(seed, sizes);
  DemoData d;
  SplitMix64 rng = SplitMix64(seed).fork(0x5A4BULL);
  for (const auto& it : s.train) {
    const std::size_t own = family_index(it.task, it.id);
    const bool swap = static_cast<double>(rng.uniform(0, 999999)) < swapped_share * 1e6;
    d.train.push_back(with_cue(it, task_families()[swap ? other_family(own, rng) : own]));
  }
  // Small reference splits (tests) keep three quarters of each family.
  dev_per_family = std::min(dev_per_family, sizes.reference / static_cast<int>(task_families().size()) / 4);
  std::map<std::string, int> taken;
  std::vector<bool> to_dev(s.reference.size(), false);
  for (std::size_t i = s.reference.size(); i-- > 0;)
    if (taken[s.reference[i].task]++ < dev_per_family) to_dev[i] = true;
  for (std::size_t i = 0; i < s.reference.size(); ++i)
    (to_dev[i] ? d.dev : d.reference).push_back(with_cue(s.reference[i], s.reference[i].task));
  for (const auto& it : s.test) d.test.push_back(with_cue(it, it.task));
  renumber(d.reference, "reference");
  renumber(d.dev, "dev");
  d.dev_shifted = with_other_cues(d.dev, seed ^ 0xDE7ULL);
  d.test_shifted = with_other_cues(d.test, seed ^ 0x7E57ULL);
  renumber(d.dev_shifted, "dev-shifted");
  renumber(d.test_shifted, "test-shifted");
  return d;
}

std::string letter_continuation(int index) { return std::string(" ") + static_cast<char>('A' + index); }

std::string render_prompt(const McItem& item) {
  std::string s = "Question: " + item.question + "\n";
  for (std::size_t i = 0; i < item.choices.size(); ++i)
    s += std::string(1, static_cast<char>('A' + i)) + ". " + item.choices[i] + "\n";
  return s + "Answer:";
}

nlohmann::json item_to_json(const McItem& item) {
  nlohmann::json j = {{"id", item.id}, {"task", item.task}, {"question", item.question},
                      {"choices", item.choices}, {"answer", item.answer}};
  if (!item.cue.empty()) j["cue"] = item.cue;
  return j;
}

McItem item_from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw Error(origin, "", "expected a JSON object per line");
  McItem it;
  auto str = [&](const char* field) {
    if (!j.contains(field) || !j[field].is_string())
      throw Error(origin, field, "expected a string");
    return j[field].get<std::string>();
  };
  it.id = str("id");
  it.task = str("task");
  it.question = str("question");
  if (!j.contains("choices") || !j["choices"].is_array())
    throw Error(origin, "choices", "expected an array of 2 to 5 strings");
  for (const auto& c : j["choices"]) {
    if (!c.is_string()) throw Error(origin, "choices", "expected an array of 2 to 5 strings");
    it.choices.push_back(c.get<std::string>());
  }
  if (it.choices.size() < 2 || it.choices.size() > 5)
    throw Error(origin, "choices", "expected 2 to 5 choices, got " + std::to_string(it.choices.size()));
  if (!j.contains("answer") || !j["answer"].is_number_integer())
    throw Error(origin, "answer", "expected an integer index");
  const auto answer = j["answer"].get<int64_t>();
  if (answer < 0 || answer >= static_cast<int64_t>(it.choices.size()))
    throw Error(origin, "answer",
                "expected an index in [0, " + std::to_string(it.choices.size() - 1) + "], got " +
                    std::to_string(answer));
  it.answer = static_cast<int>(answer);
  if (j.contains("cue")) {
    it.cue = str("cue");
    const auto& f = task_families();
    if (std::find(f.begin(), f.end(), it.cue) == f.end()) throw Error(origin, "cue", "not a demo family: " + it.cue);
  }
  return it;
}

void write_jsonl(const std::string& path, const std::vector<McItem>& items) {
  std::string text;
  for (const auto& it : items) text += item_to_json(it).dump() + "\n";
  io::write_file_atomic(path, text);
}

std::vector<McItem> read_jsonl(const std::string& path) {
  io::require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "", "cannot open (missing or unreadable)");
  std::vector<McItem> items;
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(jsonl_line_origin(path, n), "", "malformed JSON at " + io::json_error_text(e));
    } catch (const nlohmann::json::exception& e) {  // a number beyond a double (out_of_range)
      throw Error(jsonl_line_origin(path, n), "", "malformed JSON: " + io::json_error_text(e));
    }
    items.push_back(item_from_json(j, jsonl_line_origin(path, n)));
  }
  return items;
}

}  // namespace c3po::demo
