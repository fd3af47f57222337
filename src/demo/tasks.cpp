#include "demo/tasks.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "demo/rng.h"
#include "io/error.h"
#include "io/json_file.h"

namespace c3po::demo {

namespace {

const std::vector<std::string> kCities = {"Oslo", "Lima", "Cairo", "Dublin", "Quito",
                                          "Seoul", "Perth", "Tunis", "Riga", "Hanoi"};
const std::vector<std::string> kColours = {"red", "blue", "green", "yellow",
                                           "purple", "orange", "black", "white"};
const std::vector<std::string> kJobs = {"baker", "pilot", "doctor", "farmer", "painter",
                                        "teacher", "lawyer", "sailor", "chemist", "tailor"};
constexpr int kPeople = 48;

const char* const kConsonants = "bdfgklmnprstvz";
const char* const kVowels = "aeiou";

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

// Places the gold string at position `gold` among n - 1 distinct distractors drawn from `draw`.
// Returns false if the distractor space is too small for this draw (the caller draws again).
bool fill_choices(McItem& item, const std::string& gold_text, int gold, int n,
                  const std::function<std::string()>& draw, SplitMix64& rng) {
  std::vector<std::string> distractors;
  for (int attempt = 0; attempt < 200 && static_cast<int>(distractors.size()) < n - 1; ++attempt) {
    std::string d = draw();
    if (d == gold_text || std::find(distractors.begin(), distractors.end(), d) != distractors.end())
      continue;
    distractors.push_back(d);
  }
  if (static_cast<int>(distractors.size()) < n - 1) return false;
  rng.shuffle(distractors);
  item.choices = distractors;
  item.choices.insert(item.choices.begin() + gold, gold_text);
  item.answer = gold;
  return true;
}

using Generator = std::function<bool(McItem&, SplitMix64&, int gold, int n)>;

bool gen_arithmetic(McItem& it, SplitMix64& rng, int gold, int n) {
  const int a = static_cast<int>(rng.uniform(10, 99)), b = static_cast<int>(rng.uniform(10, 99));
  const bool add = rng.uniform(0, 1) == 0;
  int result;
  if (add) {
    result = a + b;
    it.question = "What is " + std::to_string(a) + " + " + std::to_string(b) + "?";
  } else {
    const int hi = std::max(a, b), lo = std::min(a, b);
    result = hi - lo;
    it.question = "What is " + std::to_string(hi) + " - " + std::to_string(lo) + "?";
  }
  // Distractors are the typical slips: off by one, off by ten, a wrong carry.
  static const int offsets[] = {-11, -10, -9, -2, -1, 1, 2, 9, 10, 11};
  auto draw = [&] {
    int v = result + offsets[rng.uniform(0, 9)];
    return std::to_string(v < 0 ? -v : v);
  };
  return fill_choices(it, std::to_string(result), gold, n, draw, rng);
}

bool gen_comparison(McItem& it, SplitMix64& rng, int gold, int n) {
  const int kind = static_cast<int>(rng.uniform(0, 3));
  if (kind < 2) {
    const bool largest = kind == 0;
    it.question = largest ? "Which number is the largest?" : "Which number is the smallest?";
    std::set<int> values;
    while (static_cast<int>(values.size()) < n) values.insert(static_cast<int>(rng.uniform(10, 99)));
    const int best = largest ? *values.rbegin() : *values.begin();
    std::vector<int> rest(values.begin(), values.end());
    rest.erase(std::find(rest.begin(), rest.end(), best));
    std::size_t next = 0;
    auto draw = [&] { return std::to_string(rest[next++ % rest.size()]); };
    return fill_choices(it, std::to_string(best), gold, n, draw, rng);
  }
  const bool first = kind == 2;
  it.question = first ? "Which word comes first in alphabetical order?"
                      : "Which word comes last in alphabetical order?";
  std::set<std::string> words;
  for (int guard = 0; static_cast<int>(words.size()) < n && guard < 100; ++guard)
    words.insert(invent_word(rng, static_cast<int>(rng.uniform(3, 6))));
  if (static_cast<int>(words.size()) < n) return false;
  const std::string best = first ? *words.begin() : *words.rbegin();
  std::vector<std::string> rest;
  for (const auto& w : words)
    if (w != best) rest.push_back(w);
  std::size_t next = 0;
  auto draw = [&] { return rest[next++ % rest.size()]; };
  return fill_choices(it, best, gold, n, draw, rng);
}

bool gen_knowledge(McItem& it, SplitMix64& rng, int gold, int n, const std::vector<Person>& kb) {
  const Person& p = kb[rng.uniform(0, static_cast<int64_t>(kb.size()) - 1)];
  const int attribute = static_cast<int>(rng.uniform(0, 2));
  const std::vector<std::string>* pool;
  std::string truth;
  if (attribute == 0) {
    it.question = "In which city does " + p.name + " live?";
    pool = &kCities;
    truth = p.city;
  } else if (attribute == 1) {
    it.question = "What is the favourite colour of " + p.name + "?";
    pool = &kColours;
    truth = p.colour;
  } else {
    it.question = "What job does " + p.name + " do?";
    pool = &kJobs;
    truth = p.job;
  }
  auto draw = [&] { return (*pool)[rng.uniform(0, static_cast<int64_t>(pool->size()) - 1)]; };
  return fill_choices(it, truth, gold, n, draw, rng);
}

bool gen_string(McItem& it, SplitMix64& rng, int gold, int n) {
  const std::string word = invent_word(rng, static_cast<int>(rng.uniform(3, 6)));
  const std::string quoted = "\"" + word + "\"";
  const int kind = static_cast<int>(rng.uniform(0, 3));
  auto letter = [&] { return std::string(1, static_cast<char>('a' + rng.uniform(0, 25))); };
  switch (kind) {
    case 0:
      it.question = "What is the first letter of " + quoted + "?";
      return fill_choices(it, word.substr(0, 1), gold, n, letter, rng);
    case 1:
      it.question = "What is the last letter of " + quoted + "?";
      return fill_choices(it, word.substr(word.size() - 1), gold, n, letter, rng);
    case 2: {
      it.question = "How many letters are in " + quoted + "?";
      auto count = [&] { return std::to_string(rng.uniform(2, 8)); };
      return fill_choices(it, std::to_string(word.size()), gold, n, count, rng);
    }
    default: {
      it.question = "What is " + quoted + " spelled backwards?";
      std::string reversed(word.rbegin(), word.rend());
      // Distractors: the word itself and other orderings of its letters.
      auto scramble = [&] {
        if (rng.uniform(0, 3) == 0) return word;
        std::vector<char> letters(word.begin(), word.end());
        rng.shuffle(letters);
        return std::string(letters.begin(), letters.end());
      };
      return fill_choices(it, reversed, gold, n, scramble, rng);
    }
  }
}

bool gen_sequence(McItem& it, SplitMix64& rng, int gold, int n) {
  const int kind = static_cast<int>(rng.uniform(0, 2));
  std::vector<std::string> shown;
  std::string next;
  std::function<std::string()> draw;
  int answer_value = 0, step = 0;
  if (kind == 0) {  // arithmetic progression
    const int start = static_cast<int>(rng.uniform(1, 60));
    step = static_cast<int>(rng.uniform(2, 9)) * (rng.uniform(0, 3) == 0 ? -1 : 1);
    const int terms = static_cast<int>(rng.uniform(4, 5));
    if (start + step * terms < 0) step = -step;
    for (int i = 0; i < terms; ++i) shown.push_back(std::to_string(start + step * i));
    answer_value = start + step * terms;
    next = std::to_string(answer_value);
    draw = [&, answer_value, step] {
      static const int deltas[] = {-2, -1, 1, 2};
      int v = rng.uniform(0, 2) == 0 ? answer_value - step : answer_value + step + deltas[rng.uniform(0, 3)];
      if (rng.uniform(0, 2) == 0) v = answer_value + deltas[rng.uniform(0, 3)];
      return std::to_string(v < 0 ? -v : v);
    };
  } else if (kind == 1) {  // alternating pair
    const int a = static_cast<int>(rng.uniform(1, 60));
    int b = static_cast<int>(rng.uniform(1, 59));
    if (b >= a) ++b;
    const int terms = static_cast<int>(rng.uniform(4, 6));
    for (int i = 0; i < terms; ++i) shown.push_back(std::to_string(i % 2 == 0 ? a : b));
    next = std::to_string(terms % 2 == 0 ? a : b);
    const std::string other = std::to_string(terms % 2 == 0 ? b : a);
    draw = [&, other, a, b] {
      if (rng.uniform(0, 2) == 0) return other;
      return std::to_string((rng.uniform(0, 1) ? a : b) + static_cast<int>(rng.uniform(1, 3)));
    };
  } else {  // letters with a fixed stride
    const int stride = static_cast<int>(rng.uniform(1, 3));
    const int terms = static_cast<int>(rng.uniform(4, 5));
    const int start = static_cast<int>(rng.uniform(0, 25 - stride * terms));
    for (int i = 0; i < terms; ++i) shown.push_back(std::string(1, static_cast<char>('a' + start + stride * i)));
    const int answer_letter = start + stride * terms;
    next = std::string(1, static_cast<char>('a' + answer_letter));
    draw = [&, answer_letter] {
      int v = answer_letter + static_cast<int>(rng.uniform(-3, 3));
      v = std::clamp(v, 0, 25);
      return std::string(1, static_cast<char>('a' + v));
    };
  }
  it.question = "What comes next in the sequence";
  for (std::size_t i = 0; i < shown.size(); ++i) it.question += (i ? ", " : ": ") + shown[i];
  it.question += ", ...?";
  return fill_choices(it, next, gold, n, draw, rng);
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
    p.city = kCities[rng.uniform(0, static_cast<int64_t>(kCities.size()) - 1)];
    p.colour = kColours[rng.uniform(0, static_cast<int64_t>(kColours.size()) - 1)];
    p.job = kJobs[rng.uniform(0, static_cast<int64_t>(kJobs.size()) - 1)];
    people.push_back(p);
  }
  return people;
}

std::string identity_key(const McItem& item) {
  std::string key = item.task + "\n" + item.question;
  if (item.task == "knowledge" || item.task == "comparison")
    for (const auto& c : item.choices) key += "\n" + c;
  return key;
}

Splits generate_splits(uint64_t seed, const SplitSizes& sizes) {
  const auto kb = knowledge_base(seed);
  const auto& families = task_families();
  std::vector<Generator> generators = {
      gen_arithmetic, gen_comparison,
      [&kb](McItem& it, SplitMix64& rng, int gold, int n) { return gen_knowledge(it, rng, gold, n, kb); },
      gen_string, gen_sequence};

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
          if (!generators[f](item, rng, gold, n)) continue;
          if (seen.insert(identity_key(item)).second) break;
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

std::string letter_continuation(int index) { return std::string(" ") + static_cast<char>('A' + index); }

std::string render_prompt(const McItem& item) {
  std::string s = "Question: " + item.question + "\n";
  for (std::size_t i = 0; i < item.choices.size(); ++i)
    s += std::string(1, static_cast<char>('A' + i)) + ". " + item.choices[i] + "\n";
  return s + "Answer:";
}

nlohmann::json item_to_json(const McItem& item) {
  return {{"id", item.id}, {"task", item.task}, {"question", item.question},
          {"choices", item.choices}, {"answer", item.answer}};
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
  return it;
}

void write_jsonl(const std::string& path, const std::vector<McItem>& items) {
  std::string text;
  for (const auto& it : items) text += item_to_json(it).dump() + "\n";
  io::write_file_atomic(path, text);
}

std::vector<McItem> read_jsonl(const std::string& path) {
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
      throw Error(jsonl_line_origin(path, n), "", std::string("malformed JSON: ") + e.what());
    }
    items.push_back(item_from_json(j, jsonl_line_origin(path, n)));
  }
  return items;
}

}  // namespace c3po::demo
