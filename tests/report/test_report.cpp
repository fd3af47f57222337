// The report page from a hand-made run folder: table numbers, charts, escaping, determinism and
// input errors. Expected values come from the fixture's hand-counted table (run_fixture.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "io/error.h"
#include "report/html.h"
#include "report/report.h"
#include "report/run_fixture.h"
#include "report/svg.h"

namespace c3po::report {
namespace {

using testing::Fixture;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + needle.size())) ++n;
  return n;
}

// The text from `start` (which must occur) up to and including the next `end`.
std::string section(const std::string& text, const std::string& start, const std::string& end) {
  const auto a = text.find(start);
  if (a == std::string::npos) return "";
  const auto b = text.find(end, a);
  return text.substr(a, b == std::string::npos ? std::string::npos : b + end.size() - a);
}

// Text of each <td> of a row, tags inside removed.
std::vector<std::string> cells(const std::string& row) {
  std::vector<std::string> out;
  static const std::regex td("<td[^>]*>(.*?)</td>");
  static const std::regex tag("<[^>]*>");
  for (std::sregex_iterator it(row.begin(), row.end(), td), end; it != end; ++it)
    out.push_back(std::regex_replace((*it)[1].str(), tag, ""));
  return out;
}

double attribute(const std::string& element, const std::string& name) {
  const std::regex re(" " + name + "=\"([-0-9.]+)\"");
  std::smatch m;
  if (!std::regex_search(element, m, re)) return -1;
  return std::stod(m[1].str());
}

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir("c3po_report_");
    fixture_ = testing::make_fixture();
    testing::write_fixture(fixture_, dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string render(const ReportOptions& options = {}) {
    write_report(dir_, dir_ + "/report.html", options);
    return slurp(dir_ + "/report.html");
  }
  std::string dir_;
  Fixture fixture_;
};

TEST_F(ReportTest, TableRowsShowTheResultsNumbers) {
  const std::string html = render();
  auto row = [&](const std::string& method) {
    return cells(section(html, "<tr data-task=\"synth-arc\" data-method=\"" + method + "\"", "</tr>"));
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(row("base"), (V{"synth-arc", "base", "4", "50.0%", "15.0% &ndash; 85.0%", "-", "-", "-", "-", "2.1 ms",
                            "1.5 MFLOP"}));
  EXPECT_EQ(row("mode"), (V{"synth-arc", "mode", "4", "25.0%", "4.6% &ndash; 69.9%", "-25.0 pp", "0", "1", "-50%",
                            "4.3 ms", "2 MFLOP"}));
  EXPECT_EQ(row("kernel"), (V{"synth-arc", "kernel", "4", "75.0%", "30.1% &ndash; 95.4%", "+25.0 pp", "1", "0", "50%",
                              "52.0 ms", "31 MFLOP"}));
  EXPECT_EQ(row("ngd"), (V{"synth-arc", "ngd", "4", "50.0%", "15.0% &ndash; 85.0%", "+0.0 pp", "1", "1", "0%",
                           "1.23 s", "4.2 GFLOP"}));
  EXPECT_EQ(row("oracle"), (V{"synth-arc", "oracleupper bound", "4", "100.0%", "51.0% &ndash; 100.0%", "+50.0 pp",
                              "2", "0", "100%", "750.0 ms", "3.9 GFLOP"}));
  // The oracle row, and only it, is marked as an upper bound.
  EXPECT_NE(html.find("data-method=\"oracle\" class=\"upper-bound\""), std::string::npos);
  EXPECT_EQ(count_of(section(html, "<table class=\"results\">", "</table>"), "class=\"upper-bound\""), 1u);
  EXPECT_NE(html.find("it is an upper bound for analysis"), std::string::npos);
}

TEST_F(ReportTest, OneSvgPerChart) {
  const std::string html = render();
  // One accuracy chart (one task), one heatmap per example (q0, q2, q3 changed an answer), one
  // usage histogram per critical layer (2 and 3).
  EXPECT_EQ(count_of(html, "<figure class=\"accuracy\"><svg "), 1u);
  EXPECT_EQ(count_of(html, "<figure class=\"heatmap\"><svg "), 3u);
  EXPECT_EQ(count_of(html, "<figure class=\"usage\"><svg "), 2u);
  EXPECT_EQ(count_of(html, "<svg "), 6u);
  EXPECT_EQ(count_of(html, "</svg>"), 6u);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://") , html.find("http://www.w3.org/2000/svg"));  // no other link
  EXPECT_EQ(html.find("https://"), std::string::npos);
}

TEST_F(ReportTest, ExamplesAreTheItemsWhoseAnswerChanged) {
  const std::string html = render();
  std::vector<std::string> ids;
  static const std::regex re("<section class=\"example\" data-id=\"([^\"]*)\"");
  for (std::sregex_iterator it(html.begin(), html.end(), re), end; it != end; ++it) ids.push_back((*it)[1]);
  EXPECT_EQ(ids, (std::vector<std::string>{"q0", "q2", "q3"}));
  // max_examples caps them, keeping the order.
  ids.clear();
  ReportOptions two;
  two.max_examples = 2;
  const std::string capped = render(two);
  for (std::sregex_iterator it(capped.begin(), capped.end(), re), end; it != end; ++it) ids.push_back((*it)[1]);
  EXPECT_EQ(ids, (std::vector<std::string>{"q0", "q2"}));
}

TEST_F(ReportTest, TextIsEscaped) {
  const std::string html = render();
  EXPECT_NE(html.find("Which tag makes text &lt;b&gt;bold&lt;/b&gt; &amp; &quot;strong&quot;?"), std::string::npos);
  EXPECT_EQ(html.find("<b>bold</b>"), std::string::npos);
  EXPECT_NE(html.find("<li class=\"gold\">&lt;b&gt; <span"), std::string::npos);
  EXPECT_NE(html.find("it&#39;s &lt;s&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<s>"), std::string::npos);
  EXPECT_EQ(html.find("<i>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"text\">arc&lt;easy&gt;</td>"), std::string::npos);
  EXPECT_EQ(html.find("arc<easy>"), std::string::npos);
}

TEST_F(ReportTest, ItemTextComesFromTheRecordOrQuestionsFile) {
  const std::string html = render();
  const std::string q2 = section(html, "data-id=\"q2\"", "</section>");
  EXPECT_NE(q2.find("<p class=\"question\">Pick the vowel.</p>"), std::string::npos);  // in the record
  EXPECT_NE(q2.find("<li class=\"gold\">a <span"), std::string::npos);
  const std::string q3 = section(html, "data-id=\"q3\"", "</section>");
  EXPECT_NE(q3.find("no text for this item"), std::string::npos);
  EXPECT_NE(q3.find("Gold answer: <b>D</b>"), std::string::npos);
  // Answers per method, with the probability of the answer and of gold.
  const std::string q0 = section(html, "data-id=\"q0\"", "</section>");
  EXPECT_EQ(cells(section(q0, "<tr data-method=\"ngd\"", "</tr>")),
            (std::vector<std::string>{"ngd", "A", "0.700", "0.700", "&#10003; right", "-", "11",
                                      "1.2000 &rarr; 0.7000 (3 steps)"}));
  EXPECT_EQ(cells(section(q0, "<tr data-method=\"kernel\"", "</tr>")),
            (std::vector<std::string>{"kernel", "B", "0.700", "0.100", "&#10007; wrong", "0.30", "11", "-"}));
  // Neighbours of ngd: id, source, similarity, kernel weight.
  const std::string nb = section(q0, "<table class=\"neighbours\">", "</table>");
  EXPECT_EQ(count_of(nb, "<tr><td>"), 3u);
  EXPECT_EQ(cells(section(nb, "<tr><td>1</td>", "</tr>")),
            (std::vector<std::string>{"1", "arc-e/17", "arc&lt;easy&gt;", "0.9100", "0.5000"}));
}

TEST_F(ReportTest, QuestionsFileOptionTakesADataFile) {
  // A demo-style data file: "task" is the item family (not the record's task), extra fields.
  std::filesystem::remove(dir_ + "/questions.jsonl");
  const std::string data = dir_ + "/test.jsonl";
  std::ofstream(data) << "{\"id\": \"q1\", \"task\": \"arithmetic\", \"question\": \"1 + 3 = ?\", "
                         "\"choices\": [\"3\", \"5\", \"4\", \"22\"], \"answer\": 2}\n"
                         "{\"id\": \"q3\", \"task\": \"a\", \"question\": \"first?\", \"choices\": [\"w\", \"x\", \"y\", \"z\"]}\n"
                         "{\"id\": \"q3\", \"task\": \"b\", \"question\": \"second?\", \"choices\": [\"w\", \"x\", \"y\", \"z\"]}\n";
  ReportOptions options;
  options.questions_file = data;
  const RunData run = read_run(dir_, data);
  std::map<std::string, std::optional<std::string>> question;
  for (const auto& r : run.items) question[r.id] = r.question;
  EXPECT_EQ(question["q1"], std::optional<std::string>("1 + 3 = ?"));  // matched by its unique id
  EXPECT_EQ(question["q3"], std::nullopt);                             // two lines: ambiguous, no text
  EXPECT_EQ(question["q0"], std::nullopt);                             // not in the file
  EXPECT_EQ(question["q2"], std::optional<std::string>("Pick the vowel."));  // the record's own text
  const std::string html = render(options);
  EXPECT_NE(html.find("no text for this item"), std::string::npos);
  options.questions_file = dir_ + "/missing.jsonl";
  EXPECT_THROW(render(options), Error);
}

TEST_F(ReportTest, BarHeightsAreProportionalToAccuracy) {
  const std::string html = render();
  const std::string chart = section(html, "<figure class=\"accuracy\">", "</figure>");
  std::map<std::string, double> height;
  static const std::regex bar("<rect class=\"bar[^\"]*\" data-label=\"([^\"]*)\"[^>]*>");
  for (std::sregex_iterator it(chart.begin(), chart.end(), bar), end; it != end; ++it)
    height[(*it)[1]] = attribute((*it)[0], "height");
  ASSERT_EQ(height.size(), fixture_.methods.size());
  for (const auto& m : fixture_.methods)
    EXPECT_NEAR(height[m], fixture_.accuracy[m] * kAccuracyPlotHeight, 0.006) << m;
  EXPECT_NEAR(height["kernel"] / height["mode"], 3.0, 1e-4);
  EXPECT_NEAR(height["oracle"] / height["base"], 2.0, 1e-4);
  EXPECT_EQ(count_of(chart, "class=\"bar upper-bound\""), 1u);
  EXPECT_EQ(count_of(chart, "class=\"whisker\""), 3 * fixture_.methods.size());
  // y axis: ticks 0% to 100% every 20%.
  for (int t = 0; t <= 100; t += 20) EXPECT_NE(chart.find(">" + std::to_string(t) + "%</text>"), std::string::npos);
}

TEST_F(ReportTest, HeatmapHasOneCellPerLayerAndExpertPerPanel) {
  const std::string html = render();
  for (const char* id : {"q0", "q2", "q3"}) {
    const auto& item = *std::find_if(fixture_.items.begin(), fixture_.items.end(),
                                     [&](const auto& it) { return it.id == id; });
    std::set<int> experts, layers;
    const auto& ngd = item.methods.at("ngd");
    for (const auto& l : ngd.before)
      for (const auto& [e, w] : l.experts) experts.insert(e), layers.insert(l.moe_layer);
    for (const auto& [name, m] : item.methods)
      for (const auto& l : m.after)
        for (const auto& [e, w] : l.experts) experts.insert(e);
    const std::size_t panels = 1 + 4;  // before, after mode / kernel / ngd / oracle
    const std::string heatmap =
        section(section(html, std::string("data-id=\"") + id + "\"", "</section>"), "<figure class=\"heatmap\">",
                "</figure>");
    EXPECT_EQ(count_of(heatmap, "<rect class=\"cell"), panels * layers.size() * experts.size()) << id;
    // Filled cells: each panel has top-2 experts in each layer.
    EXPECT_EQ(count_of(heatmap, "<rect class=\"cell\""), panels * layers.size() * 2) << id;
    EXPECT_NE(heatmap.find("after oracle (upper bound)"), std::string::npos);
    EXPECT_EQ(count_of(heatmap, "<rect class=\"legend\""), 11u);
  }
  // The strongest weight of q0's panels (oracle, layer 2: 0.48) gets the darkest colour.
  const std::string q0 = section(html, "data-id=\"q0\"", "</section>");
  EXPECT_NE(q0.find("after oracle (upper bound): layer 2, expert 5: 0.4800</title>"), std::string::npos);
  EXPECT_NE(q0.find("fill=\"" + heat_colour(1.0) + "\" stroke=\"#ffffff\"><title>after oracle (upper bound): layer 2, "
                    "expert 5: 0.4800"),
            std::string::npos);
}

TEST_F(ReportTest, UsageHistogramsCountTopKExpertsOverItems) {
  const std::string html = render();
  for (int layer : {2, 3}) {
    std::vector<std::size_t> before(8, 0), after(8, 0);
    for (const auto& item : fixture_.items) {
      const auto& ngd = item.methods.at("ngd");
      for (const auto& l : ngd.before)
        if (l.moe_layer == layer)
          for (const auto& [e, w] : l.experts) ++before[static_cast<std::size_t>(e)];
      for (const auto& l : ngd.after)
        if (l.moe_layer == layer)
          for (const auto& [e, w] : l.experts) ++after[static_cast<std::size_t>(e)];
    }
    const std::string svg = section(html.substr(html.find("MoE layer " + std::to_string(layer) + ": items")), "",
                                    "</svg>");
    ASSERT_FALSE(svg.empty());
    for (std::size_t e = 0; e < 8; ++e) {
      EXPECT_NE(svg.find("class=\"usage s0\" data-expert=\"" + std::to_string(e) + "\" data-count=\"" +
                         std::to_string(before[e]) + "\""),
                std::string::npos)
          << "layer " << layer << " expert " << e;
      EXPECT_NE(svg.find("class=\"usage s1\" data-expert=\"" + std::to_string(e) + "\" data-count=\"" +
                         std::to_string(after[e]) + "\""),
                std::string::npos)
          << "layer " << layer << " expert " << e;
    }
  }
  // num_experts widens the axis.
  ReportOptions wide;
  wide.num_experts = 12;
  EXPECT_NE(render(wide).find("data-expert=\"11\" data-count=\"0\""), std::string::npos);
}

TEST_F(ReportTest, SameInputSameBytes) {
  write_report(dir_, dir_ + "/a.html", {});
  write_report(dir_, dir_ + "/b.html", {});
  const std::string a = slurp(dir_ + "/a.html");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, slurp(dir_ + "/b.html"));
  EXPECT_EQ(a, render_report(read_run(dir_), {}));
}

TEST_F(ReportTest, RemixMethodOptionChoosesTheShownPathways) {
  ReportOptions kernel;
  kernel.remix_method = "kernel";
  const std::string html = render(kernel);
  EXPECT_NE(html.find("pathway after kernel"), std::string::npos);
  EXPECT_NE(html.find("Neighbours used by kernel"), std::string::npos);
  // A method that did not run falls back to the first one that recorded experts (mode).
  ReportOptions missing;
  missing.remix_method = "nope";
  EXPECT_NE(render(missing).find("pathway after mode"), std::string::npos);
}

TEST_F(ReportTest, OptionalFieldsMayBeMissing) {
  nlohmann::json results = fixture_.results;
  for (auto& m : results["tasks"][0]["methods"]) {
    for (const char* k : {"seconds_per_item", "flops_per_item", "gap_closed", "flips", "acc_interval"}) m.erase(k);
  }
  std::ofstream(dir_ + "/results.json") << results.dump();
  std::ofstream items(dir_ + "/items.jsonl");
  for (int i = 0; i < 2; ++i)
    items << nlohmann::json{{"task_index", 0}, {"index", i}, {"gold", 0},
                            {"methods", {{"base", {{"prediction", 1}}}, {"ngd", {{"prediction", 0}}}}}}
                 .dump()
          << "\n";
  items.close();
  std::filesystem::remove(dir_ + "/questions.jsonl");
  const std::string html = render();
  EXPECT_EQ(cells(section(html, "data-method=\"ngd\">", "</tr>")),
            (std::vector<std::string>{"synth-arc", "ngd", "4", "50.0%", "-", "+0.0 pp", "-", "-", "-", "-", "-"}));
  EXPECT_NE(html.find("No re-mixing method recorded its experts"), std::string::npos);
  EXPECT_EQ(count_of(html, "<svg "), 1u);  // the accuracy chart only
  EXPECT_EQ(count_of(html, "<section class=\"example\""), 2u);
}

TEST_F(ReportTest, TaskWithoutItemsHasNoChart) {
  nlohmann::json results = fixture_.results;
  nlohmann::json empty = results["tasks"][0];
  empty["task"] = "empty-task";
  empty["n"] = 0;
  for (auto& m : empty["methods"]) {
    m["n"] = 0;
    m["acc"] = nullptr;  // what the harness writes for 0 / 0
    m["change_vs_base"] = nullptr;
  }
  results["tasks"].push_back(empty);
  std::ofstream(dir_ + "/results.json") << results.dump();
  const std::string html = render();
  EXPECT_EQ(count_of(html, "<figure class=\"accuracy\"><svg "), 1u);
  EXPECT_EQ(cells(section(html, "<tr data-task=\"empty-task\" data-method=\"ngd\"", "</tr>")),
            (std::vector<std::string>{"empty-task", "ngd", "0", "-", "15.0% &ndash; 85.0%", "-", "1", "1", "0%",
                                      "1.23 s", "4.2 GFLOP"}));
}

// A c3po::Error whose message names `file_part` and `field_part`.
void expect_error(const std::string& dir, const std::string& file_part, const std::string& field_part) {
  try {
    write_report(dir, dir + "/report.html", {});
    ADD_FAILURE() << "no error; expected one about " << file_part << " " << field_part;
  } catch (const Error& e) {
    EXPECT_NE(e.file().find(file_part), std::string::npos) << e.what();
    EXPECT_NE(e.field().find(field_part), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/report.html"));
}

TEST_F(ReportTest, BadInputIsAnErrorNamingFileAndField) {
  std::filesystem::remove(dir_ + "/results.json");
  expect_error(dir_, "results.json", "");
  testing::write_fixture(fixture_, dir_);

  nlohmann::json results = fixture_.results;
  results["tasks"][0]["methods"][1]["acc"] = "high";
  std::ofstream(dir_ + "/results.json") << results.dump();
  expect_error(dir_, "results.json", "tasks[0].methods[1].acc");
  results["tasks"][0]["methods"][1]["acc"] = 1.5;
  std::ofstream(dir_ + "/results.json") << results.dump();
  expect_error(dir_, "results.json", "tasks[0].methods[1].acc");
  results.erase("tasks");
  std::ofstream(dir_ + "/results.json") << results.dump();
  expect_error(dir_, "results.json", "tasks");
  testing::write_fixture(fixture_, dir_);

  const std::string good = slurp(dir_ + "/items.jsonl");
  const std::string first = good.substr(0, good.find('\n') + 1);
  std::ofstream(dir_ + "/items.jsonl") << first << "{\"task_index\": 0, \"index\": 1,\n";
  expect_error(dir_, "items.jsonl", "line 2");

  auto write_record = [&](const std::function<void(nlohmann::json&)>& change) {
    nlohmann::json rec = nlohmann::json::parse(first);
    change(rec);
    std::ofstream(dir_ + "/items.jsonl") << rec.dump() << "\n";
  };
  write_record([](auto& r) { r["methods"]["ngd"]["prediction"] = 4; });  // q0 has 4 choices
  expect_error(dir_, "items.jsonl", "line 1.methods.ngd.prediction");
  write_record([](auto& r) { r["task_index"] = 1; });  // results.json has one task
  expect_error(dir_, "items.jsonl", "line 1.task_index");
  write_record([](auto& r) { r.erase("gold"); });
  expect_error(dir_, "items.jsonl", "line 1.gold");
  write_record([](auto& r) { r["methods"]["ngd"]["details"]["experts_after"][0]["experts"][1]["weight"] = "x"; });
  expect_error(dir_, "items.jsonl", "line 1.methods.ngd.details.experts_after[0].experts[1].weight");
  write_record([](auto& r) { r["methods"]["ngd"]["details"]["neighbours"][0].erase("id"); });
  expect_error(dir_, "items.jsonl", "line 1.methods.ngd.details.neighbours[0].id");
  write_record([](auto& r) { r["methods"]["ngd"]["letter_probs"] = {0.5, 0.5}; });
  expect_error(dir_, "items.jsonl", "line 1.methods.ngd.letter_probs");

  std::filesystem::remove(dir_ + "/items.jsonl");
  expect_error(dir_, "items.jsonl", "");
  testing::write_fixture(fixture_, dir_);
  std::ofstream(dir_ + "/questions.jsonl") << "{\"id\": \"q0\", \"question\": \"?\", \"choices\": \"A\"}\n";
  expect_error(dir_, "questions.jsonl", "line 1.choices");
}

TEST(ReportFormatting, EscapeAndNumbers) {
  EXPECT_EQ(escape("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
  EXPECT_EQ(escape("plain ü"), "plain ü");
  EXPECT_EQ(percent(0.5234), "52.3%");
  EXPECT_EQ(percent(std::nullopt), "-");
  EXPECT_EQ(signed_points(-0.0001), "+0.0 pp");
  EXPECT_EQ(signed_points(0.031), "+3.1 pp");
  EXPECT_EQ(signed_points(-0.25), "-25.0 pp");
  EXPECT_EQ(si_number(1.23e9), "1.23 G");
  EXPECT_EQ(si_number(450000.0), "450 k");
  EXPECT_EQ(si_number(12.0), "12");
  EXPECT_EQ(choice_letter(0), "A");
  EXPECT_EQ(choice_letter(25), "Z");
  EXPECT_EQ(choice_letter(26), "27");
  EXPECT_EQ(coord(-0.001), "0.00");
  EXPECT_EQ(heat_colour(0.0), "#f7fbff");
  EXPECT_EQ(heat_colour(0.5), "#6baed6");
  EXPECT_EQ(heat_colour(1.0), "#08306b");
  EXPECT_EQ(heat_colour(0.25), "#b1d5eb");  // halfway between the first two stops, rounded
}

}  // namespace
}  // namespace c3po::report
