#include "data/prompt.h"

#include <fmt/format.h>

#include "data/text.h"
#include "io/error.h"

namespace c3po::data {
namespace {

void require_gold(const McItem& item) {
  if (item.choices.empty() || item.choices.size() > 26)
    throw Error(item.source, "choices", fmt::format("{} choices; expected 1 to 26", item.choices.size()));
  if (item.gold < 0 || static_cast<std::size_t>(item.gold) >= item.choices.size())
    throw Error(item.source, "gold", fmt::format("label index {} out of range", item.gold));
}

std::string extra_string(const McItem& item, const char* key) {
  const auto it = item.extra.find(key);
  if (it == item.extra.end() || !it->is_string())
    throw Error(item.source, std::string("extra.") + key, "missing (item not made by its reader?)");
  return it->get<std::string>();
}

// "A. c0\nB. c1\n..." lines followed by "Answer:".
std::string options_block(const std::vector<std::string>& choices) {
  std::string out;
  for (std::size_t i = 0; i < choices.size(); ++i)
    out += fmt::format("{}. {}\n", static_cast<char>('A' + i), choices[i]);
  return out + "Answer:";
}

std::string question_prompt(std::string_view question, const std::vector<std::string>& choices) {
  return fmt::format("Question: {}\n{}", question, options_block(choices));
}

std::vector<std::string> preprocessed(const std::vector<std::string>& v) {
  std::vector<std::string> out;
  for (const auto& s : v) out.push_back(hellaswag_preprocess(s));
  return out;
}

// The blank position in a WinoGrande/KnowRef sentence: lm-eval's s.index("_") for WinoGrande;
// KnowRef records where its pronoun was.
std::size_t blank_position(const McItem& item) {
  if (item.task == "knowref") {
    const auto it = item.extra.find("blank");
    if (it == item.extra.end() || !it->is_number_integer() || it->get<long long>() < 0)
      throw Error(item.source, "extra.blank", "missing (item not made by its reader?)");
    const auto b = static_cast<std::size_t>(it->get<long long>());
    if (b >= item.question.size() || item.question[b] != '_')
      throw Error(item.source, "extra.blank", "does not point at the \"_\" in the sentence");
    return b;
  }
  const auto b = item.question.find('_');
  if (b == std::string::npos) throw Error(item.source, "sentence", "no \"_\" blank");
  return b;
}

}  // namespace

std::string answer_letter(std::size_t index) {
  if (index >= 26) throw Error("", "answer letter", fmt::format("index {} beyond Z", index));
  return std::string(" ") + static_cast<char>('A' + index);
}

std::vector<std::string> answer_letters(std::size_t count) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < count; ++i) out.push_back(answer_letter(i));
  return out;
}

std::string mmlu_description(std::string_view subject) {
  std::string s(subject);
  for (auto& c : s)
    if (c == '_') c = ' ';
  return fmt::format("The following are multiple choice questions (with answers) about {}.\n\n", s);
}

std::string hellaswag_query(const McItem& item) {
  if (extra_string(item, "form") == "text") return hellaswag_preprocess(item.question);
  const std::string ctx = extra_string(item, "ctx_a") + " " + python_capitalize(extra_string(item, "ctx_b"));
  return hellaswag_preprocess(extra_string(item, "activity_label") + ": " + ctx);
}

std::string render_letter_prompt(const McItem& item) {
  require_gold(item);
  const std::string& t = item.task;
  if (t == "mmlu") {
    // Identical to the lm-eval MMLU 0-shot context, so letter accuracy is lm-eval's mmlu acc.
    return mmlu_description(item.subject) + python_strip(item.question) + "\n" + options_block(item.choices);
  }
  if (t == "hellaswag") return question_prompt(hellaswag_query(item), preprocessed(item.choices));
  if (t == "boolq")
    return fmt::format("{}\nQuestion: {}?\n{}", item.context, item.question, options_block(item.choices));
  if (t == "social_iqa")
    return question_prompt(item.context + " " + item.question, item.choices);
  if (t == "arc_challenge" || t == "arc_easy" || t == "piqa" || t == "winogrande" || t == "knowref" ||
      t == "commonsense_qa" || t == "openbookqa" || t == "sciq" || t == "generic")
    return question_prompt(item.question, item.choices);
  throw Error(item.source, "task", fmt::format("no letter rendering for task \"{}\"", t));
}

namespace {

// An item as lm-eval's task config sees it: description, doc_to_text, doc_to_choice, the gold
// index, and for partial scoring (WinoGrande) the shared continuation doc_to_target.
struct LmEvalDoc {
  std::string description;
  std::string text;                  // doc_to_text (partial scoring: unused, it is the gold index)
  std::vector<std::string> choices;  // doc_to_choice (partial scoring: the per-option contexts)
  int gold = -1;
  bool acc_norm = false;
  bool matches_lm_eval = true;
  bool partial = false;
  std::string target;  // partial scoring only
};

LmEvalDoc lm_eval_doc(const McItem& item) {
  require_gold(item);
  const std::string& t = item.task;
  LmEvalDoc d;
  d.choices = item.choices;
  d.gold = item.gold;
  if (t == "arc_challenge" || t == "arc_easy" || t == "generic" || t == "piqa") {
    d.text = fmt::format("Question: {}\nAnswer:", item.question);
    d.acc_norm = true;
  } else if (t == "openbookqa") {
    d.text = item.question;
    d.acc_norm = true;
  } else if (t == "hellaswag") {
    d.text = hellaswag_query(item);
    d.choices = preprocessed(item.choices);
    d.acc_norm = true;
    d.matches_lm_eval = extra_string(item, "form") != "text";
  } else if (t == "mmlu") {
    d.description = mmlu_description(item.subject);
    d.text = python_strip(item.question) + "\n" + options_block(item.choices);
    d.choices = {"A", "B", "C", "D"};
  } else if (t == "commonsense_qa") {
    // lm-eval's template is fixed at five options A-E.
    if (item.choices.size() != 5) throw Error(item.source, "choices", "commonsense_qa needs 5 choices");
    d.text = fmt::format("Question: {}\n{}", python_strip(item.question), options_block(item.choices));
    d.choices = {"A", "B", "C", "D", "E"};
  } else if (t == "boolq") {
    // lm-eval choices are ["no", "yes"]; ours show yes first.
    d.text = fmt::format("{}\nQuestion: {}?\nAnswer:", item.context, item.question);
    d.choices = {"no", "yes"};
    d.gold = item.gold == 0 ? 1 : 0;
  } else if (t == "sciq") {
    d.text = fmt::format("{}\nQuestion: {}\nAnswer:", python_lstrip(item.context), item.question);
    d.choices = {extra_string(item, "distractor1"), extra_string(item, "distractor2"),
                 extra_string(item, "distractor3"), extra_string(item, "correct_answer")};
    d.gold = 3;
    d.acc_norm = true;
  } else if (t == "social_iqa") {
    d.text = fmt::format("Q: {} {}\nA:", item.context, item.question);
  } else if (t == "winogrande" || t == "knowref") {
    // Partial scoring: one context per option, the shared rest of the sentence as continuation.
    if (item.choices.size() != 2) throw Error(item.source, "choices", "expected 2 options");
    const std::size_t b = blank_position(item);
    const std::string before = item.question.substr(0, b);
    d.partial = true;
    d.target = python_strip(std::string_view(item.question).substr(b + 1));
    d.choices = {before + item.choices[0], before + item.choices[1]};
    d.matches_lm_eval = t == "winogrande";
  } else {
    throw Error(item.source, "task", fmt::format("no log-likelihood rendering for task \"{}\"", t));
  }
  return d;
}

}  // namespace

std::string render_fewshot_example(const McItem& shot) {
  const LmEvalDoc d = lm_eval_doc(shot);
  const auto& gold = d.choices[static_cast<std::size_t>(d.gold)];
  return d.partial ? gold + " " + d.target : d.text + " " + gold;
}

LoglikItem render_loglik_with_demonstrations(const McItem& item, const std::vector<McItem>& shots) {
  const LmEvalDoc d = lm_eval_doc(item);
  std::string prefix = d.description;
  for (const auto& shot : shots) prefix += render_fewshot_example(shot) + "\n\n";
  LoglikItem out;
  for (const auto& c : d.choices) {
    if (d.partial) out.requests.push_back({prefix + c, " " + d.target});
    else out.requests.push_back({prefix + d.text, " " + c});
    out.norm_lengths.push_back(code_point_count(c));
  }
  out.gold = d.gold;
  out.reports_acc_norm = d.acc_norm;
  out.matches_lm_eval = d.matches_lm_eval;
  return out;
}

LoglikItem render_loglik(const McItem& item, const std::vector<McItem>& shots) {
  for (const auto& shot : shots)
    if (shot.task != item.task)
      throw Error(shot.source, "task", fmt::format("a {} example cannot be a shot for {}", shot.task, item.task));
  return render_loglik_with_demonstrations(item, shots);
}

std::string render_letter_demonstration(const McItem& shot) {
  if (shot.gold < 0 || static_cast<std::size_t>(shot.gold) >= shot.choices.size())
    throw Error(origin(shot), "gold", "a demonstration needs its gold answer");
  return render_letter_prompt(shot) + answer_letter(static_cast<std::size_t>(shot.gold));
}

LoglikRequest encode_pair_split(const LoglikRequest& request) {
  const std::string trimmed = python_rstrip(request.context);
  const std::size_t moved = request.context.size() - trimmed.size();
  if (moved == 0) return request;
  return {trimmed, request.context.substr(trimmed.size()) + request.continuation};
}

}  // namespace c3po::data
