#include "report/run_fixture.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace c3po::report::testing {

std::string make_temp_dir(const std::string& prefix) {
  std::string templ = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed for " + templ);
  return templ;
}

namespace {

// Top-2 experts of the two critical layers (MoE layers 2 and 3, 8 experts): the base pathway of
// item i, and a shifted one for re-mixing method k (1 = mode ... 4 = oracle).
std::vector<FixtureLayer> pathway(int i, int k) {
  return {{2, {{(i + 1 + k) % 8, 0.40 + 0.02 * k}, {(i + 6) % 8, 0.18}}},
          {3, {{(i + 2) % 8, 0.33}, {(i + 3 + k) % 8, 0.27 - 0.01 * k}}}};
}

nlohmann::json experts_json(const std::vector<FixtureLayer>& layers) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& l : layers) {
    nlohmann::json experts = nlohmann::json::array();
    for (const auto& [e, w] : l.experts) experts.push_back({{"expert", e}, {"weight", w}});
    out.push_back({{"moe_layer", l.moe_layer}, {"experts", experts}});
  }
  return out;
}

}  // namespace

Fixture make_fixture() {
  Fixture f;
  // predictions per method in the order base, mode, kernel, ngd, oracle
  struct Row {
    const char* id;
    int gold;
    std::vector<int> pred;
    std::string question;
    std::vector<std::string> choices;
    bool in_record;
  };
  const std::vector<Row> rows = {
      {"q0", 0, {1, 1, 1, 0, 0}, "Which tag makes text <b>bold</b> & \"strong\"?", {"<b>", "<i>", "<u>", "it's <s>"}, false},
      {"q1", 2, {2, 2, 2, 2, 2}, "2 + 2 = ?", {"3", "5", "4", "22"}, false},
      {"q2", 1, {1, 0, 1, 3, 1}, "Pick the vowel.", {"b", "a", "c", "d"}, true},
      {"q3", 3, {0, 0, 3, 0, 3}, "", {}, false},
  };
  for (std::size_t i = 0; i < rows.size(); ++i) {
    FixtureItem it;
    it.id = rows[i].id;
    it.gold = rows[i].gold;
    it.question = rows[i].question;
    it.choices = rows[i].choices;
    it.text_in_record = rows[i].in_record;
    for (std::size_t m = 0; m < f.methods.size(); ++m) {
      FixtureMethod fm;
      fm.prediction = rows[i].pred[m];
      if (m > 0) {
        fm.before = pathway(static_cast<int>(i), 0);
        fm.after = pathway(static_cast<int>(i), static_cast<int>(m));
      }
      it.methods[f.methods[m]] = fm;
    }
    f.items.push_back(it);
  }
  // Hand-counted from the table above (base is right on q1 and q2).
  f.accuracy = {{"base", 0.50}, {"mode", 0.25}, {"kernel", 0.75}, {"ngd", 0.50}, {"oracle", 1.00}};
  f.flips = {{"base", {0, 0}}, {"mode", {0, 1}}, {"kernel", {1, 0}}, {"ngd", {1, 1}}, {"oracle", {2, 0}}};
  // Wilson 95% intervals for c of 4 (z = 1.96), computed by hand.
  const std::map<std::string, std::pair<double, double>> interval = {{"base", {0.150039, 0.849961}},
                                                                     {"mode", {0.045587, 0.699358}},
                                                                     {"kernel", {0.300642, 0.954413}},
                                                                     {"ngd", {0.150039, 0.849961}},
                                                                     {"oracle", {0.510109, 1.0}}};
  const std::map<std::string, double> seconds = {
      {"base", 0.0021}, {"mode", 0.0043}, {"kernel", 0.052}, {"ngd", 1.234}, {"oracle", 0.75}};
  const std::map<std::string, double> flops = {
      {"base", 1.5e6}, {"mode", 2.0e6}, {"kernel", 3.1e7}, {"ngd", 4.2e9}, {"oracle", 3.9e9}};
  nlohmann::json methods = nlohmann::json::array();
  for (const auto& m : f.methods) {
    const double acc = f.accuracy[m];
    methods.push_back({{"method", m},
                       {"n", 4},
                       {"correct", static_cast<int>(acc * 4)},
                       {"acc", acc},
                       {"acc_interval", {interval.at(m).first, interval.at(m).second}},
                       {"change_vs_base", acc - 0.5},
                       {"flips", {{"wrong_to_right", f.flips[m].first}, {"right_to_wrong", f.flips[m].second}}},
                       {"gap_closed", (acc - 0.5) / (1.0 - 0.5)},
                       {"seconds_per_item", seconds.at(m)},
                       {"flops_per_item", flops.at(m)}});
  }
  f.results = {{"c3po_version", "0.1.0"},
               {"model", {{"path", "models/demo-olmoe"}, {"fingerprint", "0123456789abcdef0123"}, {"model_type", "olmoe"}}},
               {"settings", {{"protocol", "letter"}}},
               {"tasks",
                {{{"task", f.task}, {"data", "synthetic"}, {"split", "test"}, {"protocol", "letter"}, {"n", 4},
                  {"methods", methods}}}}};
  return f;
}

void write_fixture(const Fixture& f, const std::string& dir) {
  std::ofstream(dir + "/results.json") << f.results.dump(2) << "\n";
  std::ofstream items(dir + "/items.jsonl");
  std::ofstream questions(dir + "/questions.jsonl");
  for (std::size_t i = 0; i < f.items.size(); ++i) {
    const auto& it = f.items[i];
    nlohmann::json rec = {{"task_index", 0}, {"index", i}, {"task", f.task}, {"id", it.id}, {"gold", it.gold}};
    if (!it.question.empty()) {
      const nlohmann::json text = {{"task", f.task}, {"id", it.id}, {"question", it.question}, {"choices", it.choices}};
      if (it.text_in_record) {
        rec["question"] = it.question;
        rec["choices"] = it.choices;
      } else {
        questions << text.dump() << "\n";
      }
    }
    for (const auto& [name, m] : it.methods) {
      std::vector<double> probs(4, 0.1);
      probs[static_cast<std::size_t>(m.prediction)] = 0.7;
      nlohmann::json mr = {{"prediction", m.prediction}, {"letter_probs", probs}, {"seconds", 0.01}, {"flops", 1e6}};
      if (name != "base") {
        nlohmann::json d = nlohmann::json::object();
        if (name == "oracle") {
          d["upper_bound"] = true;
        } else {
          d["neighbours"] = {{{"id", "arc-e/17"}, {"source", "arc<easy>"}, {"similarity", 0.91}, {"weight", 0.5}},
                             {{"id", "arc-e/3"}, {"source", "arc-easy"}, {"similarity", 0.88}, {"weight", 0.3}},
                             {{"id", "obqa/9"}, {"source", "obqa"}, {"similarity", 0.80}, {"weight", 0.2}}};
        }
        if (name == "kernel") d["alpha"] = 0.3;
        if (name == "ngd" || name == "oracle") d["losses"] = {1.2, 0.9, 0.7};
        d["tail_reruns"] = name == "mode" ? 1 : 11;
        d["experts_before"] = experts_json(m.before);
        d["experts_after"] = experts_json(m.after);
        mr["details"] = d;
      }
      rec["methods"][name] = mr;
    }
    items << rec.dump() << "\n";
  }
}

}  // namespace c3po::report::testing
