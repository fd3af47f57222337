#include "eval/report.h"

#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "data/scoring.h"
#include "io/error.h"

namespace c3po::eval {
namespace {

nlohmann::json interval_json(std::size_t correct, std::size_t n) {
  const data::Interval iv = data::wilson_interval(correct, n);
  return nlohmann::json::array({iv.low, iv.high});
}

const nlohmann::json& method_record(const nlohmann::json& record, const std::string& method, const std::string& where) {
  if (!record.contains("methods") || !record["methods"].contains(method))
    throw Error(where, "methods." + method, "missing from the item record");
  return record["methods"][method];
}

int int_field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer()) throw Error(where, key, "expected an integer");
  return j[key].get<int>();
}

}  // namespace

TaskSummary summarize(const EvalTask& task) {
  return {task.request, task.items.size(), task.available, task.skipped};
}

nlohmann::json to_json(const TaskSummary& t) {
  return {{"task", t.request.task},   {"data", t.request.data},     {"split", t.request.split},
          {"items", t.items},         {"available", t.available},   {"skipped", t.skipped}};
}

TaskSummary task_summary_from_json(const nlohmann::json& j, const std::string& where) {
  try {
    TaskSummary t;
    t.request = {j.at("task").get<std::string>(), j.at("data").get<std::string>(), j.at("split").get<std::string>()};
    t.items = j.at("items").get<std::size_t>();
    t.available = j.at("available").get<std::size_t>();
    t.skipped = j.at("skipped").get<std::size_t>();
    return t;
  } catch (const nlohmann::json::exception&) {
    throw Error(where, "info.tasks", "expected {task, data, split, items, available, skipped} for every task");
  }
}

nlohmann::json build_results(const ReportInput& in, const std::vector<EvalTask>& tasks,
                             const std::vector<std::vector<nlohmann::json>>& records) {
  std::vector<TaskSummary> summaries;
  for (const auto& t : tasks) summaries.push_back(summarize(t));
  return build_results(in, summaries, records);
}

nlohmann::json build_results(const ReportInput& in, const std::vector<TaskSummary>& tasks,
                             const std::vector<std::vector<nlohmann::json>>& records) {
  nlohmann::json out_tasks = nlohmann::json::array();
  const std::string protocol = in.settings.value("protocol", "");
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    const auto& recs = records.at(t);
    const std::size_t n = recs.size();
    const std::string where = tasks[t].request.task + " (" + tasks[t].request.data + ")";
    if (n != tasks[t].items) throw Error(where, "records", "not every item has a record");

    std::vector<int> gold(n);
    std::size_t truncated = 0;
    for (std::size_t i = 0; i < n; ++i) {
      gold[i] = int_field(recs[i], "gold", where);
      truncated += recs[i].value("truncated", false);
    }

    // Predictions of every method, base first.
    std::vector<std::vector<int>> pred(in.methods.size(), std::vector<int>(n));
    for (std::size_t m = 0; m < in.methods.size(); ++m)
      for (std::size_t i = 0; i < n; ++i)
        pred[m][i] = int_field(method_record(recs[i], in.methods[m], where), "prediction", where);
    auto correct_of = [&](std::size_t m) {
      std::size_t c = 0;
      for (std::size_t i = 0; i < n; ++i) c += pred[m][i] == gold[i];
      return c;
    };
    const double acc_base = static_cast<double>(correct_of(0)) / static_cast<double>(n);
    std::optional<double> acc_oracle;
    for (std::size_t m = 0; m < in.methods.size(); ++m)
      if (in.methods[m] == "oracle") acc_oracle = static_cast<double>(correct_of(m)) / static_cast<double>(n);

    nlohmann::json methods = nlohmann::json::array();
    for (std::size_t m = 0; m < in.methods.size(); ++m) {
      const std::size_t correct = correct_of(m);
      const double acc = static_cast<double>(correct) / static_cast<double>(n);
      std::size_t wrong_to_right = 0, right_to_wrong = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const bool base_right = pred[0][i] == gold[i], right = pred[m][i] == gold[i];
        wrong_to_right += !base_right && right;
        right_to_wrong += base_right && !right;
      }
      double seconds = 0, flops = 0;
      bool timed = true;
      std::size_t norm_correct = 0;
      bool has_norm = true;
      for (std::size_t i = 0; i < n; ++i) {
        const auto& mr = method_record(recs[i], in.methods[m], where);
        if (mr.contains("seconds") && mr["seconds"].is_number()) seconds += mr["seconds"].get<double>();
        else timed = false;
        if (mr.contains("flops") && mr["flops"].is_number()) flops += mr["flops"].get<double>();
        if (mr.contains("prediction_norm")) norm_correct += int_field(mr, "prediction_norm", where) == gold[i];
        else has_norm = false;
      }
      nlohmann::json row = {{"method", in.methods[m]},
                            {"n", n},
                            {"correct", correct},
                            {"acc", acc},
                            {"acc_interval", interval_json(correct, n)}};
      if (has_norm) {
        row["acc_norm"] = static_cast<double>(norm_correct) / static_cast<double>(n);
        row["acc_norm_interval"] = interval_json(norm_correct, n);
      }
      row["change_vs_base"] = acc - acc_base;
      row["flips"] = {{"wrong_to_right", wrong_to_right}, {"right_to_wrong", right_to_wrong}};
      if (acc_oracle)
        row["gap_closed"] = *acc_oracle == acc_base ? nlohmann::json(nullptr)
                                                    : nlohmann::json((acc - acc_base) / (*acc_oracle - acc_base));
      row["seconds_per_item"] = timed ? nlohmann::json(seconds / static_cast<double>(n)) : nlohmann::json(nullptr);
      row["flops_per_item"] = flops / static_cast<double>(n);
      methods.push_back(row);
    }
    out_tasks.push_back({{"task", tasks[t].request.task},
                         {"data", tasks[t].request.data},
                         {"split", tasks[t].request.split},
                         {"protocol", protocol},
                         {"n", n},
                         {"available", tasks[t].available},
                         {"skipped", tasks[t].skipped},
                         {"truncated", truncated},
                         {"methods", methods}});
  }
  return {{"c3po_version", in.c3po_version},
          {"model", in.model},
          {"settings", in.settings},
          {"tasks", out_tasks}};
}

std::string markdown_table(const nlohmann::json& results) {
  std::string s =
      "| task | method | n | acc | 95% CI | acc_norm | vs base | flips +/- | gap closed | s/item | GFLOP/item |\n"
      "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|\n";
  auto pct = [](double v) { return fmt::format("{:.2f}", 100.0 * v); };
  for (const auto& t : results.at("tasks")) {
    for (const auto& m : t.at("methods")) {
      const auto& iv = m.at("acc_interval");
      const bool is_base = m.at("method") == "base";
      s += fmt::format(
          "| {} | {} | {} | {} | {}-{} | {} | {} | {} | {} | {} | {} |\n", t.at("task").get<std::string>(),
          m.at("method").get<std::string>(), m.at("n").get<std::size_t>(), pct(m.at("acc").get<double>()),
          pct(iv[0].get<double>()), pct(iv[1].get<double>()),
          m.contains("acc_norm") ? pct(m["acc_norm"].get<double>()) : std::string("-"),
          is_base ? std::string("-") : fmt::format("{:+.2f}", 100.0 * m.at("change_vs_base").get<double>()),
          is_base ? std::string("-")
                  : fmt::format("+{}/-{}", m["flips"]["wrong_to_right"].get<std::size_t>(),
                                m["flips"]["right_to_wrong"].get<std::size_t>()),
          m.contains("gap_closed") && m["gap_closed"].is_number() ? fmt::format("{:.2f}", m["gap_closed"].get<double>())
                                                                   : std::string("-"),
          m["seconds_per_item"].is_number() ? fmt::format("{:.4f}", m["seconds_per_item"].get<double>())
                                            : std::string("-"),
          fmt::format("{:.4g}", m.at("flops_per_item").get<double>() / 1e9));
    }
  }
  return s;
}

}  // namespace c3po::eval
