#include "data/readers.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "data/text.h"
#include "io/error.h"
#include "io/hash.h"
#include "io/files.h"

namespace c3po::data {

void ReadResult::append(ReadResult&& other) {
  items.insert(items.end(), std::make_move_iterator(other.items.begin()),
               std::make_move_iterator(other.items.end()));
  skipped += other.skipped;
  for (auto& m : other.messages) messages.push_back(std::move(m));
  files.insert(files.end(), other.files.begin(), other.files.end());
}

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string read_text_file(const std::string& path) {
  io::require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "", "cannot open for reading");
  std::string text(static_cast<std::size_t>(fs::file_size(path)), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.gcount() != static_cast<std::streamsize>(text.size())) throw Error(path, "", "read failed");
  return text;
}

struct Line {
  std::size_t number;  // 1-based
  std::string_view text;
};

// Lines without their "\n" or "\r\n"; a final newline does not start another line.
std::vector<Line> split_lines(std::string_view text) {
  std::vector<Line> lines;
  std::size_t start = 0, number = 1;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back({number++, line});
    start = end + 1;
  }
  return lines;
}

std::string where(const std::string& path, std::size_t line) {
  return fmt::format("{}:{}", path, line);
}

std::string file_stem(const std::string& path) { return fs::path(path).stem().string(); }

// Collects malformed items: throws the first one unless skip_bad.
class BadItems {
 public:
  BadItems(ReadResult& result, const ReadOptions& options) : result_(result), options_(options) {}
  void report(const Error& e) {
    if (!options_.skip_bad) throw e;
    ++result_.skipped;
    if (result_.messages.size() < options_.max_messages) result_.messages.push_back(e.what());
  }
  // Runs fn; a c3po::Error from it is a malformed item.
  template <class Fn>
  void guard(Fn&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      report(e);
    }
  }

 private:
  ReadResult& result_;
  const ReadOptions& options_;
};

json parse_json_object(std::string_view text, const std::string& at) {
  if (text.empty()) throw Error(at, "", "empty line, expected a JSON object");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(at, "", "not valid JSON: " + io::json_error_text(e));
  }
  if (!j.is_object()) throw Error(at, "", "expected a JSON object");
  return j;
}

// A JSON value for an error message, cut short: a misplaced object can be large.
std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', true);  // ASCII, so cutting keeps it valid
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

const json& member(const json& obj, const std::string& key, const std::string& at,
                   const std::string& shown) {
  if (!obj.is_object()) throw Error(at, shown, "expected a JSON object");
  auto it = obj.find(key);
  if (it == obj.end()) throw Error(at, shown, "missing field");
  return *it;
}

std::string string_member(const json& obj, const std::string& key, const std::string& at,
                          const std::string& shown, bool allow_empty = false) {
  const json& v = member(obj, key, at, shown);
  if (!v.is_string()) throw Error(at, shown, fmt::format("expected a string, got {}", brief(v)));
  std::string s = v.get<std::string>();
  if (!allow_empty && s.empty()) throw Error(at, shown, "empty string");
  return s;
}

void require_utf8(std::string_view text, const std::string& at) {
  if (!is_valid_utf8(text)) throw Error(at, "", "not valid UTF-8");
}

void check_choices(const McItem& item, const std::string& at) {
  if (item.choices.size() < 2)
    throw Error(at, "choices", fmt::format("expected at least 2 choices, got {}", item.choices.size()));
  for (std::size_t i = 0; i < item.choices.size(); ++i)
    if (item.choices[i].empty()) throw Error(at, fmt::format("choices[{}]", i), "empty choice");
  if (item.gold < 0 || static_cast<std::size_t>(item.gold) >= item.choices.size())
    throw Error(at, "gold", fmt::format("label index {} out of range for {} choices", item.gold,
                                        item.choices.size()));
}

void check_label_count(const std::string& data_path, std::size_t data_lines,
                       const std::string& labels_path, std::size_t label_lines) {
  if (data_lines != label_lines)
    throw Error(labels_path, "line count",
                fmt::format("{} labels for {} data lines in {}: the files are not aligned",
                            label_lines, data_lines, data_path));
}

int parse_small_int(std::string_view s, const std::string& at, const std::string& field, int lo,
                    int hi) {
  const std::string t = python_strip(s);
  if (t.empty() || t.size() > 3 || !std::all_of(t.begin(), t.end(), [](char c) {
        return c >= '0' && c <= '9';
      }))
    throw Error(at, field, fmt::format("expected an integer {}..{}, got \"{}\"", lo, hi, s));
  const int v = std::stoi(t);
  if (v < lo || v > hi)
    throw Error(at, field, fmt::format("label {} out of range {}..{}", v, lo, hi));
  return v;
}

// Line numbers of the elements of a top-level JSON array (a light scan: strings and nesting).
std::vector<std::size_t> array_element_lines(std::string_view text) {
  std::vector<std::size_t> lines;
  std::size_t line = 1;
  int depth = 0;
  bool in_string = false, escape = false, expect_element = false;
  for (char c : text) {
    if (c == '\n') ++line;
    if (in_string) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (depth == 1 && expect_element && !std::isspace(static_cast<unsigned char>(c)) && c != ']') {
      lines.push_back(line);
      expect_element = false;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      ++depth;
      if (depth == 1) expect_element = true;
    } else if (c == ']' || c == '}') --depth;
    else if (c == ',' && depth == 1) expect_element = true;
  }
  return lines;
}

// Parses a file holding one JSON array; returns the elements with their line numbers.
std::vector<std::pair<std::size_t, json>> read_json_array(const std::string& path) {
  const std::string text = read_text_file(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    // byte offset -> line for the message
    const std::size_t upto = std::min<std::size_t>(e.byte, text.size());
    const std::size_t line = 1 + std::count(text.begin(), text.begin() + upto, '\n');
    throw Error(where(path, line), "", "not valid JSON: " + io::json_error_text(e));
  } catch (const json::exception& e) {
    // Not a parse_error, so no position: a number beyond a double ("7E777", out_of_range.406).
    throw Error(path, "", "not valid JSON: " + io::json_error_text(e));
  }
  if (!j.is_array()) throw Error(path, "", "expected one JSON array of items");
  const auto lines = array_element_lines(text);
  std::vector<std::pair<std::size_t, json>> out;
  out.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i)
    out.emplace_back(i < lines.size() ? lines[i] : 0, std::move(j[i]));
  return out;
}

// Index of `key` among `labels`, where labels are "A".."Z" or "1".."9" as ARC ships them.
int label_index(const std::vector<std::string>& labels, std::string_view key, const std::string& at,
                const std::string& field) {
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] == key) return static_cast<int>(i);
  throw Error(at, field, fmt::format("answer \"{}\" is not one of the choice labels", key));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// CSV

std::vector<CsvRecord> parse_csv(std::string_view text, const std::string& path, char delimiter) {
  std::vector<CsvRecord> records;
  std::size_t i = 0, line = 1;
  const std::size_t n = text.size();
  while (i < n) {
    CsvRecord rec;
    rec.line = line;
    std::string field;
    bool record_done = false;
    while (!record_done) {
      field.clear();
      if (i < n && text[i] == '"') {
        const std::size_t quote_line = line;
        ++i;
        while (true) {
          if (i >= n) throw Error(where(path, quote_line), "quoting", "unterminated quoted field");
          const char c = text[i];
          if (c == '"') {
            if (i + 1 < n && text[i + 1] == '"') {
              field.push_back('"');
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (c == '\n') ++line;
          field.push_back(c);
          ++i;
        }
      }
      // Unquoted text, or what follows a closing quote: up to the delimiter or the line end.
      // A quote here is kept as a literal character, as Python's csv module (strict=False) and
      // pandas read it; the real MMLU val files rely on that.
      while (i < n && text[i] != delimiter && text[i] != '\n') {
        if (text[i] == '\r' && (i + 1 == n || text[i + 1] == '\n')) {
          ++i;
          continue;
        }
        field.push_back(text[i]);
        ++i;
      }
      rec.fields.push_back(field);
      if (i >= n) {
        record_done = true;
      } else if (text[i] == delimiter) {
        ++i;
      } else {  // '\n'
        ++i;
        ++line;
        record_done = true;
      }
    }
    records.push_back(std::move(rec));
  }
  return records;
}

// ---------------------------------------------------------------------------------------------
// MMLU

namespace {

// "<subject>_<split>.csv" -> subject; the split suffix is the last "_" part.
std::string mmlu_subject(const std::string& path) {
  const std::string stem = file_stem(path);
  const auto cut = stem.rfind('_');
  if (cut == std::string::npos || cut == 0)
    throw Error(path, "file name", "expected \"<subject>_<split>.csv\" (e.g. abstract_algebra_test.csv)");
  return stem.substr(0, cut);
}

ReadResult read_mmlu_file(const std::string& path, const ReadOptions& options) {
  ReadResult result;
  result.files.push_back(path);
  const std::string subject = mmlu_subject(path);
  const std::string stem = file_stem(path);
  const std::string text = read_text_file(path);
  const auto records = parse_csv(text, path, ',');
  BadItems bad(result, options);
  std::size_t index = 0;
  for (const auto& rec : records) {
    const std::size_t row = index++;
    bad.guard([&] {
      const std::string at = where(path, rec.line);
      if (rec.fields.size() != 6)
        throw Error(at, "columns",
                    fmt::format("expected 6 columns (question,A,B,C,D,answer), got {}", rec.fields.size()));
      for (const auto& f : rec.fields) require_utf8(f, at);
      McItem item;
      item.id = fmt::format("{}-{}", stem, row);
      item.task = "mmlu";
      item.subject = subject;
      item.source = at;
      item.question = rec.fields[0];
      if (item.question.empty()) throw Error(at, "question", "empty");
      item.choices.assign(rec.fields.begin() + 1, rec.fields.begin() + 5);
      const std::string& answer = rec.fields[5];
      if (answer.size() != 1 || answer[0] < 'A' || answer[0] > 'D')
        throw Error(at, "answer", fmt::format("expected a letter A-D, got \"{}\"", answer));
      item.gold = answer[0] - 'A';
      check_choices(item, at);
      result.items.push_back(std::move(item));
    });
  }
  return result;
}

}  // namespace

ReadResult read_mmlu(const std::string& path, const ReadOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return read_mmlu_file(path, options);
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(path))
    if (entry.is_regular_file() && entry.path().extension() == ".csv")
      files.push_back(entry.path().string());
  if (files.empty()) throw Error(path, "", "no .csv files in this folder");
  std::sort(files.begin(), files.end());
  ReadResult result;
  for (const auto& f : files) result.append(read_mmlu_file(f, options));
  return result;
}

// ---------------------------------------------------------------------------------------------
// ARC / OpenBookQA / CommonsenseQA (same jsonl layout)

namespace {

McItem stem_choices_item(const json& j, const std::string& task, std::size_t min_choices,
                         std::size_t max_choices, const std::string& at) {
  McItem item;
  item.task = task;
  item.source = at;
  item.id = string_member(j, "id", at, "id");
  const json& q = member(j, "question", at, "question");
  item.question = string_member(q, "stem", at, "question.stem");
  const json& choices = member(q, "choices", at, "question.choices");
  if (!choices.is_array()) throw Error(at, "question.choices", "expected an array");
  if (choices.size() < min_choices || choices.size() > max_choices)
    throw Error(at, "question.choices",
                min_choices == max_choices
                    ? fmt::format("expected {} choices, got {}", min_choices, choices.size())
                    : fmt::format("expected {} to {} choices, got {}", min_choices, max_choices,
                                  choices.size()));
  std::vector<std::string> labels;
  for (std::size_t i = 0; i < choices.size(); ++i) {
    const std::string f = fmt::format("question.choices[{}]", i);
    item.choices.push_back(string_member(choices[i], "text", at, f + ".text"));
    std::string label = string_member(choices[i], "label", at, f + ".label");
    if (std::find(labels.begin(), labels.end(), label) != labels.end())
      throw Error(at, f + ".label", fmt::format("duplicate label \"{}\"", label));
    labels.push_back(std::move(label));
  }
  // lm-eval: choices.label.index(answerKey) (OpenBookQA: answerKey.lstrip()).
  const std::string key = python_lstrip(string_member(j, "answerKey", at, "answerKey"));
  item.gold = label_index(labels, key, at, "answerKey");
  item.extra["labels"] = labels;
  if (q.contains("question_concept") && q["question_concept"].is_string())
    item.extra["question_concept"] = q["question_concept"];
  check_choices(item, at);
  return item;
}

template <class Fn>
ReadResult read_jsonl(const std::string& path, const ReadOptions& options, Fn&& make_item) {
  ReadResult result;
  result.files.push_back(path);
  const std::string text = read_text_file(path);
  BadItems bad(result, options);
  const auto lines = split_lines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    bad.guard([&] {
      const std::string at = where(path, lines[i].number);
      const json j = parse_json_object(lines[i].text, at);
      McItem item = make_item(j, at, i);
      result.items.push_back(std::move(item));
    });
  }
  return result;
}

}  // namespace

ReadResult read_stem_choices_jsonl(const std::string& path, const std::string& task,
                                   std::size_t min_choices, std::size_t max_choices,
                                   const ReadOptions& options) {
  return read_jsonl(path, options, [&](const json& j, const std::string& at, std::size_t) {
    return stem_choices_item(j, task, min_choices, max_choices, at);
  });
}

// ---------------------------------------------------------------------------------------------
// HellaSwag

namespace {

int int_or_digit_string(const json& v, const std::string& at, const std::string& field, int lo, int hi) {
  if (v.is_number_integer()) {
    const auto x = v.get<long long>();
    if (x < lo || x > hi) throw Error(at, field, fmt::format("label {} out of range {}..{}", x, lo, hi));
    return static_cast<int>(x);
  }
  if (v.is_string()) return parse_small_int(v.get<std::string>(), at, field, lo, hi);
  throw Error(at, field, fmt::format("expected an integer, got {}", brief(v)));
}

ReadResult read_hellaswag_jsonl(const std::string& path, const ReadOptions& options) {
  const std::string stem = file_stem(path);
  return read_jsonl(path, options, [&](const json& j, const std::string& at, std::size_t index) {
    McItem item;
    item.task = "hellaswag";
    item.source = at;
    item.id = j.contains("ind") && j["ind"].is_number_integer()
                  ? std::to_string(j["ind"].get<long long>())
                  : fmt::format("{}-{}", stem, index);
    const std::string activity = string_member(j, "activity_label", at, "activity_label");
    const std::string ctx_a = string_member(j, "ctx_a", at, "ctx_a", true);
    const std::string ctx_b = string_member(j, "ctx_b", at, "ctx_b", true);
    const json& endings = member(j, "endings", at, "endings");
    if (!endings.is_array() || endings.size() != 4)
      throw Error(at, "endings", "expected an array of 4 strings");
    for (std::size_t k = 0; k < 4; ++k) {
      if (!endings[k].is_string()) throw Error(at, fmt::format("endings[{}]", k), "expected a string");
      item.choices.push_back(endings[k].get<std::string>());
    }
    item.gold = int_or_digit_string(member(j, "label", at, "label"), at, "label", 0, 3);
    item.question = activity + ": " + ctx_a + " " + ctx_b;
    item.extra = {{"form", "jsonl"}, {"activity_label", activity}, {"ctx_a", ctx_a}, {"ctx_b", ctx_b}};
    check_choices(item, at);
    return item;
  });
}

ReadResult read_hellaswag_text(const std::string& path, const ReadOptions& options) {
  ReadResult result;
  result.files.push_back(path);
  const std::string text = read_text_file(path);
  const auto lines = split_lines(text);
  const std::string stem = file_stem(path);
  BadItems bad(result, options);
  for (std::size_t first = 0; first < lines.size(); first += 6) {
    bad.guard([&] {
      const std::string at = where(path, lines[first].number);
      if (first + 6 > lines.size())
        throw Error(at, "item", fmt::format("incomplete item: {} of 6 lines (query, label, 4 endings)",
                                            lines.size() - first));
      for (std::size_t k = 0; k < 6; ++k) require_utf8(lines[first + k].text, where(path, lines[first + k].number));
      McItem item;
      item.task = "hellaswag";
      item.source = at;
      item.id = fmt::format("{}-{}", stem, first / 6);
      item.question = std::string(lines[first].text);
      if (item.question.empty()) throw Error(at, "query", "empty line");
      item.gold = parse_small_int(lines[first + 1].text, where(path, lines[first + 1].number), "label", 0, 3);
      for (std::size_t k = 2; k < 6; ++k) item.choices.emplace_back(lines[first + k].text);
      item.extra = {{"form", "text"}};
      check_choices(item, at);
      result.items.push_back(std::move(item));
    });
  }
  return result;
}

}  // namespace

ReadResult read_hellaswag(const std::string& path, const ReadOptions& options) {
  io::require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "", "no such file");
  const int first = in.peek();
  return first == '{' ? read_hellaswag_jsonl(path, options) : read_hellaswag_text(path, options);
}

// ---------------------------------------------------------------------------------------------
// PIQA, Social IQa, WinoGrande (jsonl + labels file)

namespace {

// Reads a jsonl file and its aligned labels file; make_item gets the label line.
template <class Fn>
ReadResult read_jsonl_with_labels(const std::string& path, const std::string& labels_path,
                                  const ReadOptions& options, Fn&& make_item) {
  ReadResult result;
  result.files.push_back(path);
  result.files.push_back(labels_path);
  const std::string text = read_text_file(path);
  const std::string labels_text = read_text_file(labels_path);
  const auto lines = split_lines(text);
  const auto labels = split_lines(labels_text);
  check_label_count(path, lines.size(), labels_path, labels.size());
  BadItems bad(result, options);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    bad.guard([&] {
      const std::string at = where(path, lines[i].number);
      const json j = parse_json_object(lines[i].text, at);
      result.items.push_back(make_item(j, at, i, labels[i].text, where(labels_path, labels[i].number)));
    });
  }
  return result;
}

}  // namespace

ReadResult read_piqa(const std::string& path, const std::string& labels_path,
                     const ReadOptions& options) {
  const std::string stem = file_stem(path);
  return read_jsonl_with_labels(
      path, labels_path, options,
      [&](const json& j, const std::string& at, std::size_t index, std::string_view label,
          const std::string& label_at) {
        McItem item;
        item.task = "piqa";
        item.source = at;
        item.id = fmt::format("{}-{}", stem, index);
        item.question = string_member(j, "goal", at, "goal");
        item.choices = {string_member(j, "sol1", at, "sol1"), string_member(j, "sol2", at, "sol2")};
        item.gold = parse_small_int(label, label_at, "label", 0, 1);
        check_choices(item, at);
        return item;
      });
}

ReadResult read_social_iqa(const std::string& path, const std::string& labels_path,
                           const ReadOptions& options) {
  const std::string stem = file_stem(path);
  return read_jsonl_with_labels(
      path, labels_path, options,
      [&](const json& j, const std::string& at, std::size_t index, std::string_view label,
          const std::string& label_at) {
        McItem item;
        item.task = "social_iqa";
        item.source = at;
        item.id = fmt::format("{}-{}", stem, index);
        item.context = string_member(j, "context", at, "context");
        item.question = string_member(j, "question", at, "question");
        item.choices = {string_member(j, "answerA", at, "answerA"),
                        string_member(j, "answerB", at, "answerB"),
                        string_member(j, "answerC", at, "answerC")};
        item.gold = parse_small_int(label, label_at, "label", 1, 3) - 1;
        check_choices(item, at);
        return item;
      });
}

namespace {

McItem winogrande_item(const json& j, const std::string& at) {
  McItem item;
  item.task = "winogrande";
  item.source = at;
  item.id = string_member(j, "qID", at, "qID");
  item.question = string_member(j, "sentence", at, "sentence");
  if (item.question.find('_') == std::string::npos)
    throw Error(at, "sentence", "no \"_\" blank in the sentence");
  item.choices = {string_member(j, "option1", at, "option1"),
                  string_member(j, "option2", at, "option2")};
  const std::string answer = string_member(j, "answer", at, "answer", true);
  if (answer != "1" && answer != "2")
    throw Error(at, "answer", fmt::format("expected \"1\" or \"2\", got \"{}\"", answer));
  item.gold = answer == "1" ? 0 : 1;
  check_choices(item, at);
  return item;
}

}  // namespace

ReadResult read_winogrande(const std::string& path, const std::optional<std::string>& labels_path,
                           const ReadOptions& options) {
  if (!labels_path)
    return read_jsonl(path, options, [&](const json& j, const std::string& at, std::size_t) {
      return winogrande_item(j, at);
    });
  return read_jsonl_with_labels(
      path, *labels_path, options,
      [&](const json& j, const std::string& at, std::size_t, std::string_view label,
          const std::string& label_at) {
        McItem item = winogrande_item(j, at);
        const int from_labels = parse_small_int(label, label_at, "label", 1, 2) - 1;
        if (from_labels != item.gold)
          throw Error(label_at, "label",
                      fmt::format("labels file says {} but {} says answer \"{}\"", from_labels + 1,
                                  at, item.gold + 1));
        return item;
      });
}

// ---------------------------------------------------------------------------------------------
// BoolQ

ReadResult read_boolq(const std::string& path, const ReadOptions& options) {
  const std::string stem = file_stem(path);
  return read_jsonl(path, options, [&](const json& j, const std::string& at, std::size_t index) {
    McItem item;
    item.task = "boolq";
    item.source = at;
    item.id = j.contains("idx") && j["idx"].is_number_integer()
                  ? std::to_string(j["idx"].get<long long>())
                  : fmt::format("{}-{}", stem, index);
    item.question = string_member(j, "question", at, "question");
    item.context = string_member(j, "passage", at, "passage");
    const json& label = member(j, "label", at, "label");
    bool answer;
    if (label.is_boolean()) {
      answer = label.get<bool>();
    } else if (label.is_string() && (label == "true" || label == "false")) {
      answer = label == "true";
    } else if (label.is_number_integer() && (label == 0 || label == 1)) {
      answer = label == 1;
    } else {
      throw Error(at, "label", fmt::format("expected true/false (boolean, \"true\"/\"false\" or 0/1), got {}",
                                           brief(label)));
    }
    // Letter protocol shows "A. yes / B. no".
    item.choices = {"yes", "no"};
    item.gold = answer ? 0 : 1;
    return item;
  });
}

// ---------------------------------------------------------------------------------------------
// OpenBookQA

namespace {

// "(A) x (B) y (C) z (D) w" -> {x, y, z, w}
std::vector<std::string> split_obqa_choices(const std::string& s, const std::string& at) {
  if (s.rfind("(A) ", 0) != 0) throw Error(at, "Choices", "expected \"(A) ... (B) ... (C) ... (D) ...\"");
  // A choice text that itself holds a marker makes the split ambiguous (OpenBookQA train 12-1145
  // has "... eggs (D) baby birds ..." as option C); the jsonl form has no such problem.
  for (const char* marker : {" (A) ", " (B) ", " (C) ", " (D) "}) {
    const std::size_t first = s.find(marker);
    const bool again = first != std::string::npos && s.find(marker, first + 1) != std::string::npos;
    if (again || (marker[2] == 'A' && first != std::string::npos))
      throw Error(at, "Choices",
                  fmt::format("\"{}\" occurs more than once, so the options cannot be told apart "
                              "(read the .jsonl form of this file instead)",
                              std::string_view(marker).substr(1, 3)));
  }
  std::vector<std::string> out;
  std::size_t start = 4;
  for (char letter : std::string("BCD")) {
    const std::string marker = fmt::format(" ({}) ", letter);
    const std::size_t hit = s.find(marker, start);
    if (hit == std::string::npos)
      throw Error(at, "Choices", fmt::format("no \"({})\" option", letter));
    out.push_back(s.substr(start, hit - start));
    start = hit + marker.size();
  }
  out.push_back(s.substr(start));
  return out;
}

ReadResult read_openbookqa_tsv(const std::string& path, const ReadOptions& options) {
  ReadResult result;
  result.files.push_back(path);
  const std::string text = read_text_file(path);
  const auto lines = split_lines(text);
  if (lines.empty()) throw Error(path, "header", "empty file");
  const std::string expected_header = "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key";
  if (lines[0].text != expected_header)
    throw Error(where(path, 1), "header", "expected \"" + expected_header + "\" (tab-separated)");
  BadItems bad(result, options);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    bad.guard([&] {
      const std::string at = where(path, lines[i].number);
      require_utf8(lines[i].text, at);
      std::vector<std::string> cols;
      std::string_view rest = lines[i].text;
      while (true) {
        const auto tab = rest.find('\t');
        cols.emplace_back(rest.substr(0, tab));
        if (tab == std::string_view::npos) break;
        rest.remove_prefix(tab + 1);
      }
      if (cols.size() != 5) throw Error(at, "columns", fmt::format("expected 5 tab-separated columns, got {}", cols.size()));
      McItem item;
      item.task = "openbookqa";
      item.source = at;
      item.id = cols[0];
      if (item.id.empty()) throw Error(at, "ID", "empty");
      item.question = cols[1];
      if (item.question.empty()) throw Error(at, "Question Stem", "empty");
      item.choices = split_obqa_choices(cols[2], at);
      const std::string key = python_strip(cols[4]);
      if (key.size() != 1 || key[0] < 'A' || key[0] > 'D')
        throw Error(at, "Answer Key", fmt::format("expected A-D, got \"{}\"", cols[4]));
      item.gold = key[0] - 'A';
      item.extra["labels"] = {"A", "B", "C", "D"};
      check_choices(item, at);
      result.items.push_back(std::move(item));
    });
  }
  return result;
}

}  // namespace

ReadResult read_openbookqa(const std::string& path, const ReadOptions& options) {
  if (fs::path(path).extension() == ".tsv") return read_openbookqa_tsv(path, options);
  return read_stem_choices_jsonl(path, "openbookqa", 4, 4, options);
}

// ---------------------------------------------------------------------------------------------
// SciQ

ReadResult read_sciq(const std::string& path, const ReadOptions& options) {
  ReadResult result;
  result.files.push_back(path);
  const auto elements = read_json_array(path);
  const std::string stem = file_stem(path);
  BadItems bad(result, options);
  for (std::size_t i = 0; i < elements.size(); ++i) {
    bad.guard([&] {
      const std::string at = where(path, elements[i].first);
      const json& j = elements[i].second;
      McItem item;
      item.task = "sciq";
      item.source = at;
      item.id = fmt::format("{}-{}", stem, i);
      item.question = string_member(j, "question", at, "question");
      item.context = string_member(j, "support", at, "support", true);
      const std::string d1 = string_member(j, "distractor1", at, "distractor1");
      const std::string d2 = string_member(j, "distractor2", at, "distractor2");
      const std::string d3 = string_member(j, "distractor3", at, "distractor3");
      const std::string correct = string_member(j, "correct_answer", at, "correct_answer");
      // The release has no order; lm-eval uses [d1, d2, d3, correct] (gold always last), which
      // would teach a letter-protocol reference store "D". The letter order puts the correct
      // answer at a position fixed by a hash of the question (reproducible, ~uniform).
      const auto pos = static_cast<std::size_t>(io::fnv1a64(item.question) % 4);
      item.choices = {d1, d2, d3};
      item.choices.insert(item.choices.begin() + static_cast<std::ptrdiff_t>(pos), correct);
      item.gold = static_cast<int>(pos);
      item.extra = {{"distractor1", d1}, {"distractor2", d2}, {"distractor3", d3}, {"correct_answer", correct}};
      check_choices(item, at);
      result.items.push_back(std::move(item));
    });
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// KnowRef

namespace {

std::string one_string(const json& obj, const std::string& key, const std::string& at) {
  const json& v = member(obj, key, at, key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array() && v.size() == 1 && v[0].is_string()) return v[0].get<std::string>();
  throw Error(at, key, "expected a string or a 1-element list of strings");
}

McItem knowref_json_item(const json& j, const std::string& at, const std::string& id) {
  McItem item;
  item.task = "knowref";
  item.source = at;
  item.id = id;
  const std::string s = string_member(j, "sentence_with_pronoun", at, "sentence_with_pronoun");
  const auto open = s.find('[');
  const auto close = s.find(']', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos || close == open + 1 ||
      s.find('[', open + 1) != std::string::npos)
    throw Error(at, "sentence_with_pronoun", "expected exactly one \"[pronoun]\"");
  item.question = s.substr(0, open) + "_" + s.substr(close + 1);
  const std::string c0 = one_string(j, "candidate0", at);
  const std::string c1 = one_string(j, "candidate1", at);
  const std::string correct = one_string(j, "correct_candidate", at);
  if (c0.empty() || c1.empty()) throw Error(at, "candidate0/candidate1", "empty candidate");
  if (c0 == c1) throw Error(at, "candidate0/candidate1", fmt::format("both candidates are \"{}\"", c0));
  if (correct != c0 && correct != c1)
    throw Error(at, "correct_candidate", fmt::format("\"{}\" is neither candidate", correct));
  item.choices = {c0, c1};
  item.gold = correct == c0 ? 0 : 1;
  item.extra = {{"blank", open}, {"pronoun", s.substr(open + 1, close - open - 1)}};
  return item;
}

std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string join_words(const std::vector<std::string>& w, std::size_t b, std::size_t e) {
  std::string out;
  for (std::size_t k = b; k < e; ++k) {
    if (!out.empty()) out += ' ';
    out += w[k];
  }
  return out;
}

// Finds p with s0 = P + c0 + S and s1 = P + c1 + S (word level); returns false if none.
bool find_substitution(const std::vector<std::string>& s0, const std::vector<std::string>& s1,
                       const std::vector<std::string>& c0, const std::vector<std::string>& c1,
                       std::size_t& p) {
  if (s0.size() < c0.size() || s1.size() < c1.size()) return false;
  if (s0.size() - c0.size() != s1.size() - c1.size()) return false;
  const std::size_t rest = s0.size() - c0.size();
  for (p = 0; p <= rest; ++p) {
    if (p > 0 && s0[p - 1] != s1[p - 1]) return false;
    if (!std::equal(c0.begin(), c0.end(), s0.begin() + p)) continue;
    if (!std::equal(c1.begin(), c1.end(), s1.begin() + p)) continue;
    if (std::equal(s0.begin() + p + c0.size(), s0.end(), s1.begin() + p + c1.size())) return true;
  }
  return false;
}

ReadResult read_knowref_tsv(const std::string& path, const ReadOptions& options) {
  ReadResult result;
  result.files.push_back(path);
  const std::string text = read_text_file(path);
  const auto lines = split_lines(text);
  const std::string expected_header = "index\tsentence1\tsentence2\tlabel\tcandidate0\tcandidate1";
  if (lines.empty() || lines[0].text != expected_header)
    throw Error(where(path, 1), "header", "expected \"" + expected_header + "\" (tab-separated)");
  struct Row {
    std::size_t line;
    std::vector<std::string> cols;
  };
  std::vector<Row> rows;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    Row r{lines[i].number, {}};
    std::string_view rest = lines[i].text;
    while (true) {
      const auto tab = rest.find('\t');
      r.cols.emplace_back(rest.substr(0, tab));
      if (tab == std::string_view::npos) break;
      rest.remove_prefix(tab + 1);
    }
    rows.push_back(std::move(r));
  }
  const std::string stem = file_stem(path);
  BadItems bad(result, options);
  for (std::size_t i = 0; i < rows.size();) {
    // An item is the run of rows sharing one index; it must be exactly two rows.
    std::size_t e = i + 1;
    while (e < rows.size() && !rows[e].cols.empty() && !rows[i].cols.empty() &&
           rows[e].cols[0] == rows[i].cols[0])
      ++e;
    bad.guard([&] {
      const std::string at = where(path, rows[i].line);
      for (std::size_t k = i; k < e; ++k) {
        require_utf8(lines[rows[k].line - 1].text, where(path, rows[k].line));
        if (rows[k].cols.size() != 6)
          throw Error(where(path, rows[k].line), "columns",
                      fmt::format("expected 6 tab-separated columns, got {}", rows[k].cols.size()));
      }
      if (e - i != 2)
        throw Error(at, "index", fmt::format("expected 2 rows with index {}, got {}", rows[i].cols[0], e - i));
      const auto& r0 = rows[i].cols;
      const auto& r1 = rows[i + 1].cols;
      if (r0[4] != r1[4] || r0[5] != r1[5])
        throw Error(at, "candidate0/candidate1", "the two rows name different candidates");
      const std::string c0 = r0[4], c1 = r0[5];
      if (c0.empty() || c1.empty()) throw Error(at, "candidate0/candidate1", "empty candidate");
      if (c0 == c1) throw Error(at, "candidate0/candidate1", fmt::format("both candidates are \"{}\"", c0));
      const int l0 = parse_small_int(r0[3], at, "label", 0, 1);
      const int l1 = parse_small_int(r1[3], where(path, rows[i + 1].line), "label", 0, 1);
      if (l0 + l1 != 1) throw Error(at, "label", "expected exactly one of the two rows labelled 1");
      const auto w0 = words(r0[1] + " " + r0[2]);
      const auto w1 = words(r1[1] + " " + r1[2]);
      const auto wc0 = words(c0), wc1 = words(c1);
      // Which row substitutes which candidate: try both orders.
      std::size_t p = 0;
      bool row0_is_c0 = true;
      if (!find_substitution(w0, w1, wc0, wc1, p)) {
        row0_is_c0 = false;
        if (!find_substitution(w0, w1, wc1, wc0, p))
          throw Error(at, "sentence1/sentence2",
                      "the two rows do not differ by exactly the two candidates");
      }
      const auto& first = w0;
      const std::size_t first_len = row0_is_c0 ? wc0.size() : wc1.size();
      std::string prefix = join_words(first, 0, p);
      std::string suffix = join_words(first, p + first_len, first.size());
      McItem item;
      item.task = "knowref";
      item.source = at;
      item.id = fmt::format("{}-{}", stem, r0[0]);
      item.question = prefix + (prefix.empty() ? "" : " ") + "_" + (suffix.empty() ? "" : " ") + suffix;
      item.choices = {c0, c1};
      const bool row0_correct = l0 == 1;
      item.gold = (row0_correct == row0_is_c0) ? 0 : 1;
      item.extra = {{"blank", prefix.size() + (prefix.empty() ? 0 : 1)}};
      result.items.push_back(std::move(item));
    });
    i = e;
  }
  return result;
}

}  // namespace

ReadResult read_knowref(const std::string& path, const ReadOptions& options) {
  if (fs::path(path).extension() == ".tsv") return read_knowref_tsv(path, options);
  ReadResult result;
  result.files.push_back(path);
  const auto elements = read_json_array(path);
  const std::string stem = file_stem(path);
  BadItems bad(result, options);
  for (std::size_t i = 0; i < elements.size(); ++i) {
    bad.guard([&] {
      const std::string at = where(path, elements[i].first);
      result.items.push_back(knowref_json_item(elements[i].second, at, fmt::format("{}-{}", stem, i)));
    });
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Generic multiple-choice jsonl

GenericMapping parse_generic_mapping(std::string_view spec) {
  GenericMapping m;
  std::string_view rest = spec;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view part = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (part.empty()) continue;
    const auto eq = part.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == part.size())
      throw Error("", "field mapping", fmt::format("\"{}\": expected key=field", part));
    const std::string key(part.substr(0, eq));
    const std::string value(part.substr(eq + 1));
    if (key == "question") m.question = value;
    else if (key == "choices") m.choices = value;
    else if (key == "answer") m.answer = value;
    else if (key == "id") m.id = value;
    else if (key == "context") m.context = value;
    else
      throw Error("", "field mapping",
                  fmt::format("unknown key \"{}\" (expected question, choices, answer, id, context)", key));
  }
  return m;
}

namespace {

const json& dotted(const json& j, const std::string& path, const std::string& at) {
  const json* cur = &j;
  std::size_t start = 0;
  while (true) {
    const auto dot = path.find('.', start);
    const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object() || !cur->contains(key)) throw Error(at, path, "missing field");
    cur = &(*cur)[key];
    if (dot == std::string::npos) return *cur;
    start = dot + 1;
  }
}

}  // namespace

ReadResult read_generic(const std::string& path, const GenericMapping& mapping,
                        const ReadOptions& options) {
  const std::string stem = file_stem(path);
  return read_jsonl(path, options, [&](const json& j, const std::string& at, std::size_t index) {
    McItem item;
    item.task = "generic";
    item.source = at;
    if (!mapping.id.empty()) {
      const json& id = dotted(j, mapping.id, at);
      item.id = id.is_string() ? id.get<std::string>() : id.dump();
    } else {
      item.id = fmt::format("{}-{}", stem, index);
    }
    const json& q = dotted(j, mapping.question, at);
    if (!q.is_string() || q.get<std::string>().empty())
      throw Error(at, mapping.question, "expected a non-empty string");
    item.question = q.get<std::string>();
    if (!mapping.context.empty()) {
      const json& c = dotted(j, mapping.context, at);
      if (!c.is_string()) throw Error(at, mapping.context, "expected a string");
      item.context = c.get<std::string>();
    }
    const json& choices = dotted(j, mapping.choices, at);
    if (!choices.is_array()) throw Error(at, mapping.choices, "expected an array of strings");
    if (choices.size() > 26)
      throw Error(at, mapping.choices, fmt::format("{} choices; at most 26 (A-Z)", choices.size()));
    for (std::size_t k = 0; k < choices.size(); ++k) {
      if (!choices[k].is_string())
        throw Error(at, fmt::format("{}[{}]", mapping.choices, k), "expected a string");
      item.choices.push_back(choices[k].get<std::string>());
    }
    const json& answer = dotted(j, mapping.answer, at);
    if (answer.is_number_integer()) {
      const auto v = answer.get<long long>();
      if (v < 0 || v >= static_cast<long long>(item.choices.size()))
        throw Error(at, mapping.answer,
                    fmt::format("answer index {} out of range for {} choices", v, item.choices.size()));
      item.gold = static_cast<int>(v);
    } else if (answer.is_string()) {
      const std::string a = python_strip(answer.get<std::string>());
      if (a.size() == 1 && a[0] >= 'A' && a[0] <= 'Z') {
        item.gold = a[0] - 'A';
      } else if (!a.empty() && a.size() <= 3 && std::all_of(a.begin(), a.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        item.gold = std::stoi(a);
      } else {
        throw Error(at, mapping.answer, fmt::format("expected an index or a letter A-Z, got \"{}\"", a));
      }
    } else {
      throw Error(at, mapping.answer, fmt::format("expected an index or a letter, got {}", brief(answer)));
    }
    check_choices(item, at);
    return item;
  });
}

}  // namespace c3po::data
