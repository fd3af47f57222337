// Renders the first items of every real data file and compares with expected renderings made
// independently in Python (golden/make_golden.py: lm-eval templates and the letter protocol
// re-implemented from their definitions, data read with Python's json/csv).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "data/prompt.h"
#include "data/registry.h"
#include "io/error.h"

using namespace c3po::data;
using nlohmann::json;

namespace {

const std::string kGolden = C3PO_SOURCE_DIR "/tests/data/golden/";
const std::string kData = C3PO_SHARED_DIR "/data/";

std::vector<std::string> manifest() {
  std::ifstream in(kGolden + "MANIFEST");
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) names.push_back(line);
  return names;
}

json pairs(const std::vector<LoglikRequest>& requests) {
  json out = json::array();
  for (const auto& r : requests) out.push_back({r.context, r.continuation});
  return out;
}

}  // namespace

TEST(Golden, EveryRealFileRendersAsExpected) {
  const auto names = manifest();
  ASSERT_GE(names.size(), 90u) << "golden/MANIFEST missing or short";
  std::size_t compared = 0;
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    std::ifstream in(kGolden + name);
    ASSERT_TRUE(in) << name;
    const json golden = json::parse(in);
    ReadOptions options;
    options.skip_bad = true;  // knowref_test.json has two defective items further down
    const ReadResult read = read_task(golden["task"].get<std::string>(), kData + golden["file"].get<std::string>(), "", options);
    const auto& items = golden["items"];
    ASSERT_GE(read.items.size(), items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      const McItem& item = read.items[i];
      const json& want = items[i];
      SCOPED_TRACE(want["id"].get<std::string>());
      EXPECT_EQ(item.id, want["id"].get<std::string>());
      EXPECT_EQ(item.gold, want["gold"].get<int>());
      EXPECT_EQ(render_letter_prompt(item), want["letter_prompt"].get<std::string>());
      EXPECT_EQ(json(answer_letters(item.choices.size())), want["letters"]);
      const LoglikItem ll = render_loglik(item);
      EXPECT_EQ(pairs(ll.requests), want["loglik"]["requests"]);
      std::vector<LoglikRequest> encoded;
      for (const auto& r : ll.requests) encoded.push_back(encode_pair_split(r));
      EXPECT_EQ(pairs(encoded), want["loglik"]["encoded"]);
      EXPECT_EQ(ll.gold, want["loglik"]["gold"].get<int>());
      EXPECT_EQ(json(ll.norm_lengths), want["loglik"]["norm_lengths"]);
      EXPECT_EQ(ll.reports_acc_norm, want["loglik"]["acc_norm"].get<bool>());
      const std::string task = golden["task"].get<std::string>();
      EXPECT_EQ(ll.matches_lm_eval, task != "knowref" && task != "hellaswag");  // hellaswag here: text form
      ++compared;
    }
  }
  EXPECT_GE(compared, 180u);
}

TEST(Golden, FewShotContextsAsLmEvalBuildsThem) {
  std::ifstream in(kGolden + "fewshot.golden.json");
  ASSERT_TRUE(in);
  const json cases = json::parse(in);
  ASSERT_EQ(cases.size(), 4u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["file"].get<std::string>());
    const std::string task = c["task"].get<std::string>();
    const ReadResult items = read_task(task, kData + c["file"].get<std::string>());
    const ReadResult pool = read_task(task, kData + c["shot_file"].get<std::string>());
    std::vector<McItem> shots;
    for (const auto& k : c["shots"]) shots.push_back(pool.items.at(k.get<std::size_t>()));
    const LoglikItem ll = render_loglik(items.items.at(c["index"].get<std::size_t>()), shots);
    EXPECT_EQ(pairs(ll.requests), c["requests"]);
  }
  // A shot from another task is refused.
  const ReadResult arc = read_task("arc_easy", kData + "arc/ARC-Easy/ARC-Easy-Dev.jsonl");
  const ReadResult wg = read_task("winogrande", kData + "winogrande/train_xs.jsonl");
  EXPECT_THROW(render_loglik(arc.items.at(0), {wg.items.at(0)}), c3po::Error);
}
