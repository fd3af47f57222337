#pragma once
// Prompt rendering for the two scoring protocols.
//
// Letter protocol (method.md section 3): one prompt per item ending in "Answer:"; the model's
// logits for the answer-letter tokens " A", " B", ... at the last position decide. Renderings
// (format kLetterPromptFormat), options always "A. <choice>\n" lines then "Answer:":
//   mmlu            lm-eval's own MMLU prompt: description line, question.strip(), options
//   arc_*, openbookqa, commonsense_qa, sciq, piqa (goal), generic
//                   "Question: <question>\n" + options
//   hellaswag       "Question: <lm-eval query>\n" + preprocessed endings
//   winogrande, knowref
//                   "Question: <sentence with _>\n" + the two names
//   social_iqa      "Question: <context> <question>\n" + options
//   boolq           "<passage>\nQuestion: <question>?\nA. yes\nB. no\nAnswer:"
// SciQ shows the support passage only in the log-likelihood protocol (lm-eval's template): the
// letter prompt is kept like ARC's, whose references SciQ serves.
//
// Log-likelihood protocol: the (context, continuation) requests lm-evaluation-harness builds for
// the task at 0 shots (evaluation.md section 3), scored by summed log-probabilities.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "data/item.h"

namespace c3po::data {

// Recorded by the reference store; bump whenever any letter rendering changes.
inline constexpr std::string_view kLetterPromptFormat = "c3po-letter-v1";

// " A", " B", ... (the letter as it follows "Answer:"); index must be < 26.
std::string answer_letter(std::size_t index);
std::vector<std::string> answer_letters(std::size_t count);

// The letter-protocol prompt of an item (ends with "Answer:", no trailing space).
std::string render_letter_prompt(const McItem& item);

// One lm-eval request. `context` is description + doc_to_text; `continuation` is
// target_delimiter + choice (" " + choice).
struct LoglikRequest {
  std::string context;
  std::string continuation;
};

struct LoglikItem {
  std::vector<LoglikRequest> requests;  // one per choice
  int gold = -1;                        // index into requests
  // lm-eval's completion_len for acc_norm: code points of each doc_to_choice string (no leading
  // space). For WinoGrande (and KnowRef) these are the per-choice contexts, as in lm-eval.
  std::vector<std::size_t> norm_lengths;
  bool reports_acc_norm = false;  // whether lm-eval's task lists acc_norm
  // false where the result cannot equal lm-eval's: the HellaSwag 6-line text form has no
  // ctx_a/ctx_b split (so no ctx_b.capitalize()), and KnowRef is not an lm-eval task.
  bool matches_lm_eval = true;
};

// The lm-eval requests of an item (as built, before _encode_pair). With shots (items of the same
// task, chosen by the caller: lm-eval's MMLU takes the first k of the subject's dev split) the
// context is description + (example + "\n\n") per shot + doc_to_text, as lm-eval's
// fewshot_context builds it.
LoglikItem render_loglik(const McItem& item, const std::vector<McItem>& shots = {});

// The same with in-context demonstrations that may come from other tasks (c3po's icl baseline,
// docs/method.md section 6): each demonstration is rendered in its own task's lm-eval form.
LoglikItem render_loglik_with_demonstrations(const McItem& item, const std::vector<McItem>& demonstrations);

// One solved letter-protocol example: the item's letter prompt followed by its gold letter
// ("...Answer: B").
std::string render_letter_demonstration(const McItem& shot);

// One solved example as lm-eval writes it into a few-shot context: doc_to_text + " " + the gold
// choice (WinoGrande: the gold option's context + " " + the rest of the sentence).
std::string render_fewshot_example(const McItem& shot);

// lm-eval _encode_pair: trailing whitespace of the context moves to the front of the
// continuation. Tokenise context and context+continuation of the result.
LoglikRequest encode_pair_split(const LoglikRequest& request);

// lm-eval MMLU description line: "The following are multiple choice questions (with answers)
// about <subject with '_' -> ' '>.\n\n".
std::string mmlu_description(std::string_view subject);

// HellaSwag query (lm-eval utils.py): preprocess(activity_label + ": " + ctx_a + " " +
// ctx_b.capitalize()) for the jsonl form; preprocess(line 1) for the text form.
std::string hellaswag_query(const McItem& item);

}  // namespace c3po::data
