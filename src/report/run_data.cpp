#include "report/run_data.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/error.h"
#include "io/files.h"
#include "io/json_file.h"

namespace c3po::report {
namespace {

using nlohmann::json;

// Typed access to one JSON object; `file` and `prefix` name the place in errors.
class Fields {
 public:
  Fields(const json& j, std::string file, std::string prefix)
      : j_(j), file_(std::move(file)), prefix_(std::move(prefix)) {
    if (!j_.is_object()) throw Error(file_, prefix_.empty() ? "(top level)" : prefix_, "expected a JSON object");
  }

  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  std::string field(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  const std::string& file() const { return file_; }

  const json& required(const char* key) const {
    const json* v = find(key);
    if (!v) throw Error(file_, field(key), "missing");
    return *v;
  }
  std::string string(const char* key) const {
    const json& v = required(key);
    if (!v.is_string()) throw Error(file_, field(key), "expected a string");
    return v.get<std::string>();
  }
  std::optional<std::string> optional_string(const char* key) const {
    const json* v = find(key);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string()) throw Error(file_, field(key), "expected a string");
    return v->get<std::string>();
  }
  double number(const char* key) const {
    const json& v = required(key);
    return as_number(v, field(key));
  }
  std::optional<double> optional_number(const char* key) const {
    const json* v = find(key);
    if (!v || v->is_null()) return std::nullopt;
    return as_number(*v, field(key));
  }
  long long integer(const char* key) const { return as_integer(required(key), field(key)); }
  std::optional<long long> optional_integer(const char* key) const {
    const json* v = find(key);
    if (!v || v->is_null()) return std::nullopt;
    return as_integer(*v, field(key));
  }
  std::size_t count(const char* key) const { return as_count(required(key), field(key)); }
  std::optional<std::size_t> optional_count(const char* key) const {
    const json* v = find(key);
    if (!v || v->is_null()) return std::nullopt;
    return as_count(*v, field(key));
  }
  const json& array(const char* key) const {
    const json& v = required(key);
    if (!v.is_array()) throw Error(file_, field(key), "expected an array");
    return v;
  }
  const json* optional_array(const char* key) const {
    const json* v = find(key);
    if (!v || v->is_null()) return nullptr;
    if (!v->is_array()) throw Error(file_, field(key), "expected an array");
    return v;
  }
  std::vector<double> optional_numbers(const char* key) const {
    std::vector<double> out;
    if (const json* a = optional_array(key))
      for (std::size_t i = 0; i < a->size(); ++i) out.push_back(as_number((*a)[i], fmt::format("{}[{}]", field(key), i)));
    return out;
  }

  double as_number(const json& v, const std::string& name) const {
    if (!v.is_number()) throw Error(file_, name, "expected a number");
    const double d = v.get<double>();
    if (!std::isfinite(d)) throw Error(file_, name, "expected a finite number");
    return d;
  }
  long long as_integer(const json& v, const std::string& name) const {
    if (!v.is_number_integer()) throw Error(file_, name, "expected an integer");
    return v.get<long long>();
  }
  std::size_t as_count(const json& v, const std::string& name) const {
    if (!v.is_number_integer() || v.get<long long>() < 0) throw Error(file_, name, "expected a non-negative integer");
    return v.get<std::size_t>();
  }

 private:
  const json& j_;
  std::string file_, prefix_;
};

std::string read_text(const std::string& path) {
  io::require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "", "cannot open the file");
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw Error(path, "", "read failed");
  return s.str();
}

// Non-blank lines of a JSON-lines file, each parsed, with its 1-based line number.
std::vector<std::pair<std::size_t, json>> read_json_lines(const std::string& path) {
  const std::string text = read_text(path);
  std::vector<std::pair<std::size_t, json>> out;
  std::size_t start = 0, number = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++number;
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) throw Error(path, fmt::format("line {}", number), "not valid JSON");
    out.emplace_back(number, std::move(j));
  }
  return out;
}

MethodResult read_method_result(const Fields& f, std::size_t task_n) {
  MethodResult m;
  m.method = f.string("method");
  m.n = f.optional_count("n").value_or(task_n);
  f.required("acc");
  m.accuracy = f.optional_number("acc");
  if (m.accuracy && (*m.accuracy < 0 || *m.accuracy > 1))
    throw Error(f.file(), f.field("acc"), "expected a share in [0, 1]");
  if (const json* iv = f.optional_array("acc_interval")) {
    if (iv->size() != 2) throw Error(f.file(), f.field("acc_interval"), "expected [low, high]");
    m.interval_low = f.as_number((*iv)[0], f.field("acc_interval[0]"));
    m.interval_high = f.as_number((*iv)[1], f.field("acc_interval[1]"));
    if (*m.interval_low > *m.interval_high)
      throw Error(f.file(), f.field("acc_interval"), "expected low <= high");
  }
  m.change_vs_base = f.optional_number("change_vs_base");
  if (const json* flips = f.find("flips"); flips && !flips->is_null()) {
    Fields ff(*flips, f.file(), f.field("flips"));
    m.wrong_to_right = ff.optional_count("wrong_to_right");
    m.right_to_wrong = ff.optional_count("right_to_wrong");
  }
  m.gap_closed = f.optional_number("gap_closed");
  m.seconds_per_item = f.optional_number("seconds_per_item");
  m.flops_per_item = f.optional_number("flops_per_item");
  m.upper_bound = m.method == "oracle";
  return m;
}

std::vector<LayerExperts> read_experts(const Fields& details, const char* key) {
  std::vector<LayerExperts> out;
  const json* layers = details.optional_array(key);
  if (!layers) return out;
  for (std::size_t l = 0; l < layers->size(); ++l) {
    Fields lf((*layers)[l], details.file(), fmt::format("{}[{}]", details.field(key), l));
    LayerExperts le;
    le.moe_layer = static_cast<int>(lf.count("moe_layer"));
    const json& experts = lf.array("experts");
    for (std::size_t e = 0; e < experts.size(); ++e) {
      Fields ef(experts[e], details.file(), fmt::format("{}[{}].experts[{}]", details.field(key), l, e));
      ExpertWeight w;
      w.expert = static_cast<int>(ef.count("expert"));
      w.weight = ef.number("weight");
      le.experts.push_back(w);
    }
    out.push_back(std::move(le));
  }
  return out;
}

MethodAnswer read_answer(const Fields& f) {
  MethodAnswer a;
  a.prediction = static_cast<int>(f.integer("prediction"));
  a.letter_probs = f.optional_numbers("letter_probs");
  const json* d = f.find("details");
  if (!d || d->is_null()) return a;
  Fields df(*d, f.file(), f.field("details"));
  if (const json* ub = df.find("upper_bound")) {
    if (!ub->is_boolean()) throw Error(f.file(), df.field("upper_bound"), "expected true or false");
    a.upper_bound = ub->get<bool>();
  }
  if (const json* nb = df.optional_array("neighbours")) {
    a.neighbours.emplace();
    for (std::size_t i = 0; i < nb->size(); ++i) {
      Fields nf((*nb)[i], f.file(), fmt::format("{}[{}]", df.field("neighbours"), i));
      Neighbour n;
      n.id = nf.string("id");
      // "task" since the typed trace; "source" in runs written before it.
      n.task = nf.optional_string("task").value_or(nf.optional_string("source").value_or(""));
      n.similarity = nf.optional_number("similarity");
      n.weight = nf.optional_number("weight");
      a.neighbours->push_back(std::move(n));
    }
  }
  // "alpha" is a number per item; anything else (a setting echoed as text) is not shown.
  if (const json* al = df.find("alpha"); al && al->is_number()) a.alpha = df.as_number(*al, df.field("alpha"));
  a.losses = df.optional_numbers("losses");
  a.tail_reruns = df.optional_integer("tail_reruns");
  a.experts_before = read_experts(df, "experts_before");
  a.experts_after = read_experts(df, "experts_after");
  return a;
}

std::string question_key(const std::string& task, const std::string& id) { return task + '\x1f' + id; }

struct QuestionText {
  std::string question;
  std::vector<std::string> choices;
};

QuestionText read_question(const Fields& f) {
  QuestionText q;
  q.question = f.string("question");
  const json& choices = f.array("choices");
  for (std::size_t i = 0; i < choices.size(); ++i) {
    if (!choices[i].is_string()) throw Error(f.file(), fmt::format("{}[{}]", f.field("choices"), i), "expected a string");
    q.choices.push_back(choices[i].get<std::string>());
  }
  return q;
}

}  // namespace

RunData read_run(const std::string& run_dir, const std::string& questions_file) {
  namespace fs = std::filesystem;
  RunData run;
  run.run_dir = run_dir;
  const std::string results_path = (fs::path(run_dir) / "results.json").string();
  const std::string items_path = (fs::path(run_dir) / "items.jsonl").string();
  const std::string questions_path =
      questions_file.empty() ? (fs::path(run_dir) / "questions.jsonl").string() : questions_file;

  const json results = io::read_json_file(results_path);
  const Fields top(results, results_path, "");
  run.c3po_version = top.optional_string("c3po_version").value_or("");
  if (const json* model = top.find("model"); model && !model->is_null()) {
    const Fields mf(*model, results_path, "model");
    run.model_path = mf.optional_string("path").value_or("");
    run.model_fingerprint = mf.optional_string("fingerprint").value_or("");
    run.model_type = mf.optional_string("model_type").value_or("");
  }
  const json& tasks = top.array("tasks");
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    const Fields tf(tasks[t], results_path, fmt::format("tasks[{}]", t));
    TaskResult tr;
    tr.task = tf.string("task");
    tr.data = tf.optional_string("data").value_or("");
    tr.split = tf.optional_string("split").value_or("");
    tr.protocol = tf.optional_string("protocol").value_or("");
    tr.n = tf.optional_count("n").value_or(0);
    const json& methods = tf.array("methods");
    for (std::size_t m = 0; m < methods.size(); ++m)
      tr.methods.push_back(read_method_result(Fields(methods[m], results_path, fmt::format("tasks[{}].methods[{}]", t, m)), tr.n));
    for (const auto& m : tr.methods)
      if (std::find(run.method_order.begin(), run.method_order.end(), m.method) == run.method_order.end())
        run.method_order.push_back(m.method);
    run.tasks.push_back(std::move(tr));
  }

  std::map<std::string, QuestionText> questions;           // by (task, id)
  std::map<std::string, std::vector<std::string>> by_id;    // id -> keys of its lines
  if (!questions_file.empty() || fs::exists(questions_path)) {
    for (auto& [line, j] : read_json_lines(questions_path)) {
      const Fields qf(j, questions_path, fmt::format("line {}", line));
      const std::string id = qf.string("id");
      const std::string key = question_key(qf.optional_string("task").value_or(""), id);
      if (questions.emplace(key, read_question(qf)).second) by_id[id].push_back(key);  // first line wins
    }
  }
  auto text_of = [&](const std::string& task, const std::string& id) -> const QuestionText* {
    if (auto it = questions.find(question_key(task, id)); it != questions.end()) return &it->second;
    auto ids = by_id.find(id);
    if (ids != by_id.end() && ids->second.size() == 1) return &questions.at(ids->second.front());
    return nullptr;
  };

  std::map<std::pair<std::size_t, std::size_t>, ItemRecord> items;
  std::set<std::string> extra_methods;
  for (auto& [line, j] : read_json_lines(items_path)) {
    const Fields rf(j, items_path, fmt::format("line {}", line));
    ItemRecord r;
    r.task_index = rf.count("task_index");
    r.index = rf.count("index");
    if (r.task_index >= run.tasks.size())
      throw Error(items_path, rf.field("task_index"),
                  fmt::format("{} names no task of results.json ({} tasks)", r.task_index, run.tasks.size()));
    if (items.count({r.task_index, r.index})) continue;  // as in the run folder: the first line of a key wins
    r.task = rf.optional_string("task").value_or(run.tasks[r.task_index].task);
    r.id = rf.optional_string("id").value_or(fmt::format("{}#{}", r.task, r.index));
    r.gold = static_cast<int>(rf.integer("gold"));
    if (rf.find("question")) {
      QuestionText q = read_question(rf);
      r.question = std::move(q.question);
      r.choices = std::move(q.choices);
    } else if (const QuestionText* q = text_of(r.task, r.id)) {
      r.question = q->question;
      r.choices = q->choices;
    }
    const json& methods = rf.required("methods");
    if (!methods.is_object()) throw Error(items_path, rf.field("methods"), "expected an object of methods");
    for (const auto& [name, value] : methods.items()) {
      const Fields mf(value, items_path, rf.field("methods." + name));
      MethodAnswer a = read_answer(mf);
      if (!r.choices.empty()) {
        if (a.prediction < 0 || a.prediction >= static_cast<int>(r.choices.size()))
          throw Error(items_path, mf.field("prediction"),
                      fmt::format("{} is not a choice index of item {} ({} choices)", a.prediction, r.id,
                                  r.choices.size()));
        if (!a.letter_probs.empty() && a.letter_probs.size() != r.choices.size())
          throw Error(items_path, mf.field("letter_probs"),
                      fmt::format("{} values for {} choices", a.letter_probs.size(), r.choices.size()));
      }
      if (std::find(run.method_order.begin(), run.method_order.end(), name) == run.method_order.end())
        extra_methods.insert(name);
      r.methods.emplace(name, std::move(a));
    }
    if (!r.choices.empty() && (r.gold < 0 || r.gold >= static_cast<int>(r.choices.size())))
      throw Error(items_path, rf.field("gold"),
                  fmt::format("{} is not a choice index of item {} ({} choices)", r.gold, r.id, r.choices.size()));
    items.emplace(std::make_pair(r.task_index, r.index), std::move(r));
  }
  for (const auto& m : extra_methods) run.method_order.push_back(m);
  // base first, whatever results.json said.
  if (auto it = std::find(run.method_order.begin(), run.method_order.end(), "base"); it != run.method_order.end())
    std::rotate(run.method_order.begin(), it, it + 1);
  for (auto& [key, r] : items) run.items.push_back(std::move(r));

  std::set<std::string> upper_bound_methods;
  for (const auto& r : run.items)
    for (const auto& [name, a] : r.methods)
      if (a.upper_bound) upper_bound_methods.insert(name);
  for (auto& t : run.tasks)
    for (auto& m : t.methods)
      if (upper_bound_methods.count(m.method)) m.upper_bound = true;
  return run;
}

}  // namespace c3po::report
