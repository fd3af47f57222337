#pragma once
// A small hand-made evaluation run folder (results.json, items.jsonl, questions.jsonl) with the
// facts the tests check against, kept next to the data that produces them.
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace c3po::report::testing {

// A fresh empty folder under the system temp dir (mkdtemp).
std::string make_temp_dir(const std::string& prefix);

struct FixtureLayer {
  int moe_layer;
  std::vector<std::pair<int, double>> experts;  // (expert, weight), top-2
};

struct FixtureMethod {
  int prediction;
  std::vector<FixtureLayer> before, after;  // empty for base
};

struct FixtureItem {
  std::string id;
  int gold;
  std::string question;              // empty: no text anywhere
  std::vector<std::string> choices;
  bool text_in_record;               // else in questions.jsonl
  std::map<std::string, FixtureMethod> methods;
};

struct Fixture {
  std::string task = "synth-arc";
  std::vector<std::string> methods{"base", "mode", "kernel", "ngd", "oracle"};
  std::vector<FixtureItem> items;
  // Per method, hand-computed from the items above.
  std::map<std::string, double> accuracy;
  std::map<std::string, std::pair<int, int>> flips;  // (wrong->right, right->wrong)
  nlohmann::json results;                            // what results.json holds
};

Fixture make_fixture();

// Writes results.json, items.jsonl and questions.jsonl of `f` into `dir`.
void write_fixture(const Fixture& f, const std::string& dir);

}  // namespace c3po::report::testing
