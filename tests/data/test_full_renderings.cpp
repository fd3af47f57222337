// Optional full comparison: every item of every real file against the independent Python
// renderings of golden/dump_all_renderings.py (see there). Skipped unless C3PO_DATA_RENDERINGS
// names that dump, because producing it takes Python ~30 s.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "data/prompt.h"
#include "data/registry.h"

using namespace c3po::data;
using nlohmann::json;

namespace {

std::string task_of(const std::string& rel) {
  const std::pair<const char*, const char*> prefixes[] = {
      {"arc/ARC-Challenge", "arc_challenge"}, {"arc/ARC-Easy", "arc_easy"}, {"commonsenseqa", "commonsense_qa"},
      {"openbookqa", "openbookqa"},           {"mmlu", "mmlu"},             {"hellaswag", "hellaswag"},
      {"piqa", "piqa"},                       {"socialiqa", "social_iqa"},  {"winogrande", "winogrande"},
      {"boolq", "boolq"},                     {"sciq", "sciq"},             {"knowref", "knowref"}};
  for (const auto& [prefix, task] : prefixes)
    if (rel.rfind(prefix, 0) == 0) return task;
  return "";
}

}  // namespace

TEST(FullRenderings, EveryItemMatchesPython) {
  const char* dump = std::getenv("C3PO_DATA_RENDERINGS");
  if (!dump) GTEST_SKIP() << "set C3PO_DATA_RENDERINGS to the output of golden/dump_all_renderings.py";
  std::ifstream in(dump);
  ASSERT_TRUE(in) << dump;
  std::map<std::string, std::map<std::string, json>> expected;  // file -> id -> rendering
  std::size_t lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    json j = json::parse(line);
    const std::string file = j["file"].get<std::string>(), id = j["id"].get<std::string>();
    expected[file][id] = std::move(j);
  }
  ASSERT_GT(lines, 160000u);
  std::size_t compared = 0, missing = 0;
  for (const auto& [rel, by_id] : expected) {
    SCOPED_TRACE(rel);
    ReadOptions options;
    options.skip_bad = true;
    const ReadResult read = read_task(task_of(rel), C3PO_SHARED_DIR "/data/" + rel, "", options);
    missing += by_id.size() - read.items.size();
    for (const McItem& item : read.items) {
      const auto it = by_id.find(item.id);
      ASSERT_NE(it, by_id.end()) << item.id;
      const json& want = it->second;
      const LoglikItem ll = render_loglik(item);
      json req = json::array(), enc = json::array();
      for (const auto& r : ll.requests) {
        req.push_back({r.context, r.continuation});
        const LoglikRequest e = encode_pair_split(r);
        enc.push_back({e.context, e.continuation});
      }
      EXPECT_EQ(item.gold, want["gold"].get<int>()) << item.id;
      EXPECT_EQ(render_letter_prompt(item), want["letter"].get<std::string>()) << item.id;
      EXPECT_EQ(req, want["req"]) << item.id;
      EXPECT_EQ(enc, want["enc"]) << item.id;
      EXPECT_EQ(ll.gold, want["lg"].get<int>()) << item.id;
      EXPECT_EQ(json(ll.norm_lengths), want["nl"]) << item.id;
      ++compared;
    }
  }
  // The only items Python renders and c3po refuses: knowref_test.json #237 and #476.
  EXPECT_EQ(missing, 2u);
  EXPECT_EQ(compared + missing, lines);
}
