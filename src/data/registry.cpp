#include "data/registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>

#include "io/error.h"

namespace c3po::data {
namespace {

namespace fs = std::filesystem;

// Canonical split name: "test", "validation", "train", or a WinoGrande/MMLU-specific one.
std::string canonical_split(std::string_view split) {
  if (split == "val" || split == "dev" || split == "valid" || split == "validation") return "validation";
  return std::string(split);
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// The first of `names` that exists under path or under path/<dataset folder>.
std::string find_first(const std::string& path, const std::vector<std::string>& folders,
                       const std::vector<std::string>& names, std::string_view task, std::string_view split) {
  std::vector<fs::path> tried;
  for (const auto& n : names) tried.push_back(fs::path(path) / n);
  for (const auto& f : folders)
    for (const auto& n : names) tried.push_back(fs::path(path) / f / n);
  for (const auto& p : tried)
    if (is_file(p)) return p.string();
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  throw Error(path, "split",
              fmt::format("no {} file for task {} in this folder (looked for {}, also under {})", split, task,
                          list, fmt::format("{}/", fmt::join(folders, "/, "))));
}

std::string labels_beside(const std::string& data) {
  const fs::path p(data);
  return (p.parent_path() / (p.stem().string() + "-labels.lst")).string();
}

void check_split(const TaskSpec& spec, const std::string& split) {
  if (std::find(spec.splits.begin(), spec.splits.end(), split) == spec.splits.end())
    throw Error("", "split",
                fmt::format("task {} has no split \"{}\" (known: {})", spec.name, split, fmt::join(spec.splits, ", ")));
}

SplitFiles mmlu_files(const std::string& path, const std::string& split) {
  const std::string folder_name = split == "validation" ? "val" : split;  // official data.tar layout
  const std::string suffix = "_" + folder_name + ".csv";
  std::vector<fs::path> dirs = {fs::path(path) / folder_name, fs::path(path) / "mmlu" / folder_name,
                                fs::path(path) / "data" / folder_name, fs::path(path)};
  for (const auto& d : dirs) {
    if (!is_dir(d)) continue;
    SplitFiles out;
    for (const auto& e : fs::directory_iterator(d)) {
      const std::string name = e.path().filename().string();
      if (e.is_regular_file() && name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        out.data.push_back(e.path().string());
    }
    if (out.data.empty()) continue;
    std::sort(out.data.begin(), out.data.end());
    return out;
  }
  throw Error(path, "split",
              fmt::format("no MMLU {} files (*{}) in this folder or its {}/, mmlu/{}/, data/{}/", split, suffix,
                          folder_name, folder_name, folder_name));
}

}  // namespace

const std::vector<TaskSpec>& task_specs() {
  static const std::vector<TaskSpec> specs = {
      {"mmlu", "test", {"test", "validation", "dev"}, "acc"},
      {"arc_challenge", "test", {"test", "validation", "train"}, "acc, acc_norm"},
      {"arc_easy", "test", {"test", "validation", "train"}, "acc, acc_norm"},
      {"hellaswag", "validation", {"validation", "train"}, "acc, acc_norm"},
      {"piqa", "validation", {"validation", "train"}, "acc, acc_norm"},
      {"winogrande",
       "validation",
       {"validation", "train", "train_xl", "train_l", "train_m", "train_s", "train_xs", "train_debiased"},
       "acc"},
      {"boolq", "validation", {"validation", "train"}, "acc"},
      {"commonsense_qa", "validation", {"validation", "train"}, "acc"},
      {"openbookqa", "test", {"test", "validation", "train"}, "acc, acc_norm"},
      {"sciq", "test", {"test", "validation", "train"}, "acc, acc_norm"},
      {"social_iqa", "validation", {"validation", "train"}, "acc"},
      {"knowref", "test", {"test", "validation", "train"}, "acc (c3po's reading; not an lm-eval task)"},
      {"generic", "", {}, "acc, acc_norm"},
  };
  return specs;
}

const TaskSpec& find_task(std::string_view name) {
  for (const auto& s : task_specs())
    if (s.name == name) return s;
  std::vector<std::string> names;
  for (const auto& s : task_specs()) names.push_back(s.name);
  throw Error("", "task", fmt::format("unknown task \"{}\" (known: {})", name, fmt::join(names, ", ")));
}

SplitFiles resolve_split_files(std::string_view task, const std::string& path, std::string_view split_in) {
  const TaskSpec& spec = find_task(task);
  const std::string t = spec.name;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path, "", "no such file or folder");

  if (is_file(path)) {
    SplitFiles out{{path}, ""};
    if (t == "piqa" || t == "social_iqa") {
      out.labels = labels_beside(path);
      if (!is_file(out.labels))
        throw Error(path, "labels", fmt::format("{} items need the labels file {}", t, out.labels));
    } else if (t == "winogrande" && is_file(labels_beside(path))) {
      out.labels = labels_beside(path);
    }
    return out;
  }
  if (t == "generic") throw Error(path, "", "task generic reads one .jsonl file, not a folder");

  if (t == "mmlu" && split_in == "dev") return mmlu_files(path, "dev");  // the few-shot split, not val
  const std::string split = canonical_split(split_in.empty() ? std::string_view(spec.default_split) : split_in);
  check_split(spec, split);
  if (t == "mmlu") return mmlu_files(path, split);

  const auto one = [&](std::vector<std::string> folders, std::vector<std::string> names) {
    return SplitFiles{{find_first(path, folders, names, t, split)}, ""};
  };
  const auto with_labels = [&](std::vector<std::string> folders, std::vector<std::string> names, bool required) {
    SplitFiles out = one(std::move(folders), std::move(names));
    const std::string labels = labels_beside(out.data[0]);
    if (is_file(labels)) out.labels = labels;
    else if (required) throw Error(out.data[0], "labels", fmt::format("no labels file {}", labels));
    return out;
  };

  if (t == "arc_challenge" || t == "arc_easy") {
    const std::string set = t == "arc_challenge" ? "ARC-Challenge" : "ARC-Easy";
    const std::string part = split == "test" ? "Test" : split == "train" ? "Train" : "Dev";
    const std::string name = set + "-" + part + ".jsonl";
    return one({set, "arc/" + set, "ARC-V1-Feb2018-2/" + set}, {name});
  }
  if (t == "hellaswag") {
    if (split == "train") return one({"data", "hellaswag"}, {"hellaswag_train.jsonl"});
    return one({"data", "hellaswag"}, {"hellaswag_val.jsonl", "hellaswag_val_full.txt"});
  }
  if (t == "piqa") return with_labels({"piqa", "data"}, {split == "train" ? "train.jsonl" : "valid.jsonl"}, true);
  if (t == "social_iqa")
    return with_labels({"socialiqa", "socialiqa-train-dev"}, {split == "train" ? "train.jsonl" : "dev.jsonl"}, true);
  if (t == "winogrande") {
    std::vector<std::string> names;
    if (split == "validation") names = {"dev.jsonl"};
    else if (split == "train") names = {"train_xl.jsonl", "train_l.jsonl", "train_m.jsonl", "train_s.jsonl", "train_xs.jsonl"};
    else names = {split + ".jsonl"};
    return with_labels({"winogrande", "winogrande_1.1", "data"}, names, false);
  }
  if (t == "boolq") return one({"boolq", "BoolQ"}, {split == "train" ? "train.jsonl" : "val.jsonl"});
  if (t == "commonsense_qa")
    return one({"commonsenseqa", "CommonsenseQA"}, {split == "train" ? "train_rand_split.jsonl" : "dev_rand_split.jsonl"});
  if (t == "openbookqa") {
    const std::string base = split == "validation" ? "dev" : split;
    return one({"openbookqa-jsonl", "openbookqa", "Main", "Data/Main"}, {base + ".jsonl", base + ".tsv"});
  }
  if (t == "sciq") {
    const std::string base = split == "validation" ? "valid" : split;
    return one({"sciq", "SciQ dataset-2 3"}, {base + ".json"});
  }
  if (t == "knowref") {
    if (split == "test") return one({"knowref", "Knowref_dataset"}, {"knowref_test.json"});
    const std::string base = split == "train" ? "train.tsv" : "dev.tsv";
    return one({"data", "knowref/data"}, {base});
  }
  throw Error(path, "task", fmt::format("no file layout known for task {}", t));
}

ReadResult read_task(std::string_view task, const std::string& path, std::string_view split,
                     const ReadOptions& options, const GenericMapping& mapping) {
  const SplitFiles files = resolve_split_files(task, path, split);
  const std::string t = find_task(task).name;
  if (t == "mmlu") {
    ReadResult result;
    for (const auto& f : files.data) result.append(read_mmlu(f, options));
    return result;
  }
  const std::string& f = files.data.at(0);
  if (t == "arc_challenge" || t == "arc_easy") return read_stem_choices_jsonl(f, t, 3, 5, options);
  if (t == "commonsense_qa") return read_stem_choices_jsonl(f, t, 5, 5, options);
  if (t == "openbookqa") return read_openbookqa(f, options);
  if (t == "hellaswag") return read_hellaswag(f, options);
  if (t == "piqa") return read_piqa(f, files.labels, options);
  if (t == "social_iqa") return read_social_iqa(f, files.labels, options);
  if (t == "winogrande")
    return read_winogrande(f, files.labels.empty() ? std::nullopt : std::optional<std::string>(files.labels), options);
  if (t == "boolq") return read_boolq(f, options);
  if (t == "sciq") return read_sciq(f, options);
  if (t == "knowref") return read_knowref(f, options);
  if (t == "generic") return read_generic(f, mapping, options);
  throw Error(path, "task", fmt::format("no reader for task {}", t));
}

}  // namespace c3po::data
