#pragma once
// Readers for benchmark files in the form their authors ship them. Every reader reports a
// malformed item as c3po::Error("<path>:<line>", field, problem); with ReadOptions::skip_bad the
// item is skipped and counted instead. Problems with a whole file (missing, unreadable, a labels
// file whose line count differs from the data) always throw: the items cannot be trusted then.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/item.h"

namespace c3po::data {

// MMLU: headerless RFC-4180 CSV "question,A,B,C,D,answer-letter"; subject from the file name
// "<subject>_<split>.csv". path is one file or a folder of them (read in name order).
ReadResult read_mmlu(const std::string& path, const ReadOptions& options = {});

// ARC / OpenBookQA / CommonsenseQA jsonl: {"id","question":{"stem","choices":[{"text","label"}]},
// "answerKey"}; labels letters or digits; choice count must lie in [min_choices, max_choices].
ReadResult read_stem_choices_jsonl(const std::string& path, const std::string& task,
                                   std::size_t min_choices, std::size_t max_choices,
                                   const ReadOptions& options = {});

// HellaSwag: the original jsonl (activity_label, ctx_a, ctx_b, endings, label) or the
// 6-lines-per-item text form (query, label, 4 endings); chosen by the file's first byte.
ReadResult read_hellaswag(const std::string& path, const ReadOptions& options = {});

// PIQA jsonl {"goal","sol1","sol2"} with an aligned labels file (0/1).
ReadResult read_piqa(const std::string& path, const std::string& labels_path,
                     const ReadOptions& options = {});

// WinoGrande jsonl {"qID","sentence","option1","option2","answer"}; if labels_path is given its
// lines must agree with "answer".
ReadResult read_winogrande(const std::string& path, const std::optional<std::string>& labels_path,
                           const ReadOptions& options = {});

// BoolQ jsonl {"question","passage","idx","label"}; label a JSON boolean, "true"/"false" or 0/1.
ReadResult read_boolq(const std::string& path, const ReadOptions& options = {});

// OpenBookQA: the official jsonl or the TSV form (header ID, Question Stem, Choices,
// Complete Question, Answer Key); chosen by the extension.
ReadResult read_openbookqa(const std::string& path, const ReadOptions& options = {});

// SciQ: one JSON array of {"question","distractor1..3","correct_answer","support"}.
ReadResult read_sciq(const std::string& path, const ReadOptions& options = {});

// Social IQa jsonl {"context","question","answerA..C"} with an aligned labels file (1/2/3).
ReadResult read_social_iqa(const std::string& path, const std::string& labels_path,
                           const ReadOptions& options = {});

// KnowRef: knowref_test.json / val.json (JSON array, "[pronoun]" in sentence_with_pronoun,
// correct_candidate) or the WSC-trick TSV (two rows per item); chosen by the extension.
// Read as WinoGrande items (the task it serves as reference for): question = the sentence with
// its pronoun replaced by "_", choices = {candidate0, candidate1}, gold = the correct candidate
// (never correct_candidate_idx, which follows mention order); extra.blank = byte offset of "_".
// From the TSV the sentence is rebuilt from the two substituted rows (word-level: the rows must
// differ by exactly the two candidates). Items with identical candidates or more than one
// bracketed pronoun are malformed (knowref_test.json has one of each: read it with skip_bad).
ReadResult read_knowref(const std::string& path, const ReadOptions& options = {});

// Field mapping of the generic multiple-choice JSONL; a field may be a dotted path ("q.stem").
struct GenericMapping {
  std::string question = "question";
  std::string choices = "choices";
  std::string answer = "answer";
  std::string id;       // optional
  std::string context;  // optional
};
// Parses "question=q,choices=opts,answer=label[,id=..][,context=..]" (keys may be omitted).
GenericMapping parse_generic_mapping(std::string_view spec);

// Generic jsonl: question string, choices array of strings, answer an index (number or digit
// string) or a letter ("A".."Z").
ReadResult read_generic(const std::string& path, const GenericMapping& mapping = {},
                        const ReadOptions& options = {});

// RFC-4180 CSV: fields separated by `delimiter`, optional double quotes ("" inside quotes is
// one quote), CRLF or LF record ends, newlines allowed inside quotes.
struct CsvRecord {
  std::size_t line = 0;  // 1-based line where the record starts
  std::vector<std::string> fields;
};
// A quote inside an unquoted field, or text after a closing quote, is kept literally (as Python's
// csv module reads it). An unterminated quoted field is a c3po::Error("<path>:<line>", ...);
// `path` only names the input.
std::vector<CsvRecord> parse_csv(std::string_view text, const std::string& path,
                                 char delimiter = ',');

}  // namespace c3po::data
