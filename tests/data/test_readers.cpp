// Readers on small hand-written files: malformed lines are reported with file, line and field,
// skip_bad skips and counts them, and file-level problems always throw.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "data/readers.h"
#include "data/registry.h"
#include "io/error.h"

namespace fs = std::filesystem;
using namespace c3po::data;
using c3po::Error;

namespace {

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("c3po-data-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string put(const std::string& name, const std::string& bytes) const {
    const auto p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

ReadOptions skipping(std::size_t max_messages = 5) {
  ReadOptions o;
  o.skip_bad = true;
  o.max_messages = max_messages;
  return o;
}

// Runs fn, expecting a c3po::Error whose message holds every one of `parts`.
template <class Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "expected a c3po::Error";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\n  missing: " << p;
  }
}

const std::string kArcGood =
    R"({"id":"q1","question":{"stem":"Which?","choices":[{"text":"a","label":"A"},{"text":"b","label":"B"},{"text":"c","label":"C"}]},"answerKey":"B"})";
const std::string kArcDigits =
    R"({"id":"q2","question":{"stem":"Num?","choices":[{"text":"w","label":"1"},{"text":"x","label":"2"},{"text":"y","label":"3"},{"text":"z","label":"4"}]},"answerKey":"4"})";

}  // namespace

TEST(Readers, ArcLabelsLettersOrDigits) {
  TempDir d;
  const auto f = d.put("arc.jsonl", kArcGood + "\n" + kArcDigits + "\n");
  const auto r = read_stem_choices_jsonl(f, "arc_easy", 3, 5);
  ASSERT_EQ(r.items.size(), 2u);
  EXPECT_EQ(r.items[0].gold, 1);
  EXPECT_EQ(r.items[0].choices, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(r.items[1].gold, 3);
  EXPECT_EQ(r.items[1].source, f + ":2");
  EXPECT_EQ(r.items[1].task, "arc_easy");
}

TEST(Readers, BadJsonLineThrowsWithLineOrIsSkipped) {
  TempDir d;
  const auto f = d.put("arc.jsonl", kArcGood + "\n{\"id\": \"broken\",\n" + kArcDigits + "\n");
  expect_error([&] { read_stem_choices_jsonl(f, "arc_easy", 3, 5); }, {f + ":2", "not valid JSON"});
  const auto r = read_stem_choices_jsonl(f, "arc_easy", 3, 5, skipping());
  EXPECT_EQ(r.items.size(), 2u);
  EXPECT_EQ(r.skipped, 1u);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_NE(r.messages[0].find(f + ":2"), std::string::npos);
}

TEST(Readers, MissingFieldNamesIt) {
  TempDir d;
  const auto f = d.put("arc.jsonl",
                       R"({"id":"q","question":{"stem":"S","choices":[{"text":"a","label":"A"},{"text":"b","label":"B"},{"text":"c","label":"C"}]}})" "\n");
  expect_error([&] { read_stem_choices_jsonl(f, "arc_easy", 3, 5); }, {f + ":1", "answerKey", "missing field"});
  const auto g = d.put("arc2.jsonl", R"({"id":"q","question":{"choices":[]},"answerKey":"A"})" "\n");
  expect_error([&] { read_stem_choices_jsonl(g, "arc_easy", 3, 5); }, {g + ":1", "question.stem", "missing"});
}

TEST(Readers, AnswerKeyNotAmongLabelsAndDuplicateLabels) {
  TempDir d;
  const auto f = d.put("a.jsonl",
                       R"({"id":"q","question":{"stem":"S","choices":[{"text":"a","label":"A"},{"text":"b","label":"B"},{"text":"c","label":"C"}]},"answerKey":"E"})" "\n");
  expect_error([&] { read_stem_choices_jsonl(f, "arc_easy", 3, 5); }, {f + ":1", "answerKey", "\"E\""});
  const auto g = d.put("b.jsonl",
                       R"({"id":"q","question":{"stem":"S","choices":[{"text":"a","label":"A"},{"text":"b","label":"A"},{"text":"c","label":"C"}]},"answerKey":"A"})" "\n");
  expect_error([&] { read_stem_choices_jsonl(g, "arc_easy", 3, 5); }, {g + ":1", "question.choices[1].label", "duplicate"});
}

TEST(Readers, WrongNumberOfChoices) {
  TempDir d;
  // CommonsenseQA needs exactly 5.
  const auto f = d.put("csqa.jsonl", kArcDigits + "\n");
  expect_error([&] { read_task("commonsense_qa", f); }, {f + ":1", "question.choices", "expected 5 choices, got 4"});
  // ARC: 3 to 5.
  const auto g = d.put("arc.jsonl",
                       R"({"id":"q","question":{"stem":"S","choices":[{"text":"a","label":"A"},{"text":"b","label":"B"}]},"answerKey":"A"})" "\n");
  expect_error([&] { read_task("arc_easy", g); }, {g + ":1", "expected 3 to 5 choices, got 2"});
  // MMLU: 6 columns.
  const auto m = d.put("anatomy_test.csv", "Q1?,a,b,c,d,A\nQ2?,a,b,c,B\n");
  expect_error([&] { read_mmlu(m); }, {m + ":2", "columns", "got 5"});
  // HellaSwag text form: 6 lines per item.
  const auto h = d.put("hs.txt", "Act: ctx\n1\ne0\ne1\ne2\ne3\nAct: ctx2\n0\ne0\n");
  expect_error([&] { read_hellaswag(h); }, {h + ":7", "incomplete item: 3 of 6 lines"});
  const auto r = read_hellaswag(h, skipping());
  EXPECT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.skipped, 1u);
}

TEST(Readers, LabelOutOfRange) {
  TempDir d;
  const auto piqa = d.put("valid.jsonl", R"({"goal":"g","sol1":"a","sol2":"b"})" "\n" R"({"goal":"h","sol1":"c","sol2":"d"})" "\n");
  const auto labels = d.put("valid-labels.lst", "1\n2\n");
  expect_error([&] { read_piqa(piqa, labels); }, {labels + ":2", "label 2 out of range 0..1"});
  const auto r = read_piqa(piqa, labels, skipping());
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].gold, 1);

  const auto hs = d.put("hs.jsonl",
                        R"({"ind":4,"activity_label":"A","ctx_a":"x.","ctx_b":"y","endings":["1","2","3","4"],"label":4})" "\n");
  expect_error([&] { read_hellaswag(hs); }, {hs + ":1", "label", "4 out of range 0..3"});

  const auto wg = d.put("wg.jsonl", R"({"qID":"a","sentence":"X _ y.","option1":"p","option2":"q","answer":"3"})" "\n");
  expect_error([&] { read_winogrande(wg, std::nullopt); }, {wg + ":1", "answer", "\"3\""});

  const auto siqa = d.put("dev.jsonl", R"({"context":"c","question":"q","answerA":"a","answerB":"b","answerC":"c"})" "\n");
  const auto siqa_labels = d.put("dev-labels.lst", "0\n");
  expect_error([&] { read_social_iqa(siqa, siqa_labels); }, {siqa_labels + ":1", "out of range 1..3"});

  const auto gen = d.put("g.jsonl", R"({"question":"q","choices":["a","b"],"answer":2})" "\n");
  expect_error([&] { read_generic(gen); }, {gen + ":1", "answer", "index 2 out of range for 2 choices"});
  const auto gen2 = d.put("g2.jsonl", R"({"question":"q","choices":["a","b"],"answer":"C"})" "\n");
  expect_error([&] { read_generic(gen2); }, {gen2 + ":1", "gold", "out of range"});

  const auto mm = d.put("x_test.csv", "Q?,a,b,c,d,E\n");
  expect_error([&] { read_mmlu(mm); }, {mm + ":1", "answer", "A-D"});
}

TEST(Readers, LabelsFileLengthMismatchAlwaysThrows) {
  TempDir d;
  const auto piqa = d.put("valid.jsonl", R"({"goal":"g","sol1":"a","sol2":"b"})" "\n" R"({"goal":"h","sol1":"c","sol2":"d"})" "\n");
  const auto shorter = d.put("short-labels.lst", "1\n");
  expect_error([&] { read_piqa(piqa, shorter, skipping()); }, {shorter, "1 labels for 2 data lines", "not aligned"});
  const auto longer = d.put("long-labels.lst", "1\n0\n1\n");
  expect_error([&] { read_piqa(piqa, longer, skipping()); }, {"3 labels for 2 data lines"});
  // The registry finds "<stem>-labels.lst" beside a data file, and refuses when it is missing.
  d.put("valid-labels.lst", "1\n0\n");
  const auto found = read_task("piqa", piqa);
  ASSERT_EQ(found.items.size(), 2u);
  EXPECT_EQ(found.items[1].gold, 0);
  const auto alone = d.put("other.jsonl", R"({"goal":"g","sol1":"a","sol2":"b"})" "\n");
  expect_error([&] { read_task("piqa", alone); }, {alone, "other-labels.lst"});
}

TEST(Readers, WinograndeLabelsFileMustAgree) {
  TempDir d;
  const auto wg = d.put("dev.jsonl", R"({"qID":"a","sentence":"X _ y.","option1":"p","option2":"q","answer":"2"})" "\n");
  const auto ok = d.put("dev-labels.lst", "2\n");
  const auto r = read_winogrande(wg, ok);
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].gold, 1);
  const auto bad = d.put("bad-labels.lst", "1\n");
  expect_error([&] { read_winogrande(wg, bad); }, {bad + ":1", "labels file says 1", "answer \"2\""});
  const auto noblank = d.put("nb.jsonl", R"({"qID":"a","sentence":"X y.","option1":"p","option2":"q","answer":"2"})" "\n");
  expect_error([&] { read_winogrande(noblank, std::nullopt); }, {noblank + ":1", "sentence", "blank"});
}

TEST(Readers, SkipBadKeepsOnlyTheFirstMessages) {
  TempDir d;
  std::string text;
  for (int i = 0; i < 7; ++i) text += "not json\n";
  text += kArcGood + "\n";
  const auto f = d.put("arc.jsonl", text);
  const auto r = read_stem_choices_jsonl(f, "arc_easy", 3, 5, skipping(3));
  EXPECT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.skipped, 7u);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_NE(r.messages[2].find(f + ":3"), std::string::npos);
}

TEST(Readers, EmptyLineAndNonObjectAreBad) {
  TempDir d;
  const auto f = d.put("arc.jsonl", kArcGood + "\n\n[1,2]\n" + kArcGood + "\n");
  expect_error([&] { read_stem_choices_jsonl(f, "arc_easy", 3, 5); }, {f + ":2", "empty line"});
  const auto r = read_stem_choices_jsonl(f, "arc_easy", 3, 5, skipping());
  EXPECT_EQ(r.items.size(), 2u);
  EXPECT_EQ(r.skipped, 2u);
  EXPECT_NE(r.messages[1].find("expected a JSON object"), std::string::npos);
}

TEST(Readers, CsvQuotingLikePythonCsv) {
  // Expected records written down by hand from RFC 4180 (and Python csv for the literal quote).
  const std::string text =
      "\"multi\nline, with comma\",\"say \"\"hi\"\"\",plain\r\n"
      "x\"y,\"\",last\n"
      "a,\"b\"c,d";
  const auto records = parse_csv(text, "t.csv");
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].line, 1u);
  EXPECT_EQ(records[0].fields, (std::vector<std::string>{"multi\nline, with comma", "say \"hi\"", "plain"}));
  EXPECT_EQ(records[1].line, 3u);
  EXPECT_EQ(records[1].fields, (std::vector<std::string>{"x\"y", "", "last"}));
  EXPECT_EQ(records[2].line, 4u);
  EXPECT_EQ(records[2].fields, (std::vector<std::string>{"a", "bc", "d"}));
  expect_error([&] { parse_csv("ok,1\n\"never closed,2\n3\n", "u.csv"); }, {"u.csv:2", "unterminated"});
}

TEST(Readers, MmluFolderSubjectsAndLineNumbers) {
  TempDir d;
  d.put("test/high_school_physics_test.csv", "\"Line one\nline two?\",a,b,c,d,C\nNext?,e,f,g,h,D\n");
  d.put("test/anatomy_test.csv", "Bone?,1,2,3,4,A\n");
  d.put("val/anatomy_val.csv", "V?,1,2,3,4,B\n");
  d.put("dev/anatomy_dev.csv", "D?,1,2,3,4,D\n");
  const auto r = read_task("mmlu", d.path());
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ(r.items[0].subject, "anatomy");
  EXPECT_EQ(r.items[1].subject, "high_school_physics");
  EXPECT_EQ(r.items[1].question, "Line one\nline two?");
  EXPECT_EQ(r.items[1].gold, 2);
  EXPECT_EQ(r.items[2].source, d.path() + "/test/high_school_physics_test.csv:3");
  EXPECT_EQ(r.items[2].id, "high_school_physics_test-1");
  EXPECT_EQ(read_task("mmlu", d.path(), "validation").items.at(0).gold, 1);
  EXPECT_EQ(read_task("mmlu", d.path(), "dev").items.at(0).gold, 3);
  const auto bad = d.put("x/chem_test.csv", "Q?,a,\xff\xfe,c,d,A\n");
  expect_error([&] { read_mmlu(bad); }, {bad + ":1", "UTF-8"});
}

TEST(Readers, BoolqLabelForms) {
  TempDir d;
  const auto f = d.put("val.jsonl",
                       R"({"question":"q1","passage":"p","idx":0,"label":true})" "\n"
                       R"({"question":"q2","passage":"p","idx":1,"label":"false"})" "\n"
                       R"({"question":"q3","passage":"p","idx":2,"label":1})" "\n"
                       R"({"question":"q4","passage":"p","idx":3,"label":"maybe"})" "\n");
  expect_error([&] { read_boolq(f); }, {f + ":4", "label", "\"maybe\""});
  const auto r = read_boolq(f, skipping());
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ(r.items[0].gold, 0);  // yes
  EXPECT_EQ(r.items[1].gold, 1);  // no
  EXPECT_EQ(r.items[2].gold, 0);
  EXPECT_EQ(r.items[1].id, "1");
  EXPECT_EQ(r.items[0].choices, (std::vector<std::string>{"yes", "no"}));
}

TEST(Readers, SciqElementLineNumbers) {
  TempDir d;
  const auto f = d.put("test.json",
                       "[\n  {\"question\": \"q0\", \"distractor1\": \"a\", \"distractor2\": \"b\",\n"
                       "   \"distractor3\": \"c\", \"correct_answer\": \"d\", \"support\": \"\"},\n"
                       "  {\"question\": \"q1 [x]\", \"distractor1\": \"a\", \"distractor2\": \"b\",\n"
                       "   \"distractor3\": \"c\", \"support\": \"s\"}\n]\n");
  expect_error([&] { read_sciq(f); }, {f + ":4", "correct_answer", "missing"});
  const auto r = read_sciq(f, skipping());
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].choices[r.items[0].gold], "d");
  const auto broken = d.put("broken.json", "[\n {\"question\": \"q\",\n  oops}\n]\n");
  expect_error([&] { read_sciq(broken); }, {broken + ":3", "not valid JSON"});
}

TEST(Readers, KnowRefTsvReconstruction) {
  TempDir d;
  const std::string header = "index\tsentence1\tsentence2\tlabel\tcandidate0\tcandidate1\n";
  // Multi-word candidates sharing a word: the blank must cover "the man" / "the old woman".
  const auto f = d.put("train.tsv", header +
                                        "0\tthe man saw the old woman and then the man\tleft .\t0\tthe man\tthe old woman\n"
                                        "0\tthe man saw the old woman and then the old woman\tleft .\t1\tthe man\tthe old woman\n");
  const auto r = read_knowref(f);
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].question, "the man saw the old woman and then _ left .");
  EXPECT_EQ(r.items[0].gold, 1);
  EXPECT_EQ(r.items[0].extra["blank"], 35);

  const auto three = d.put("three.tsv", header + "0\ta X\t.\t0\tX\tY\n0\ta Y\t.\t1\tX\tY\n0\ta Y\t.\t0\tX\tY\n");
  expect_error([&] { read_knowref(three); }, {three + ":2", "expected 2 rows with index 0, got 3"});
  const auto both = d.put("both.tsv", header + "0\ta X\t.\t1\tX\tY\n0\ta Y\t.\t1\tX\tY\n");
  expect_error([&] { read_knowref(both); }, {both + ":2", "exactly one"});
  const auto unrelated = d.put("unrel.tsv", header + "0\ta X\t.\t1\tX\tY\n0\tb Z\t.\t0\tX\tY\n");
  expect_error([&] { read_knowref(unrelated); }, {unrelated + ":2", "do not differ by exactly the two candidates"});
}

TEST(Readers, KnowRefJson) {
  TempDir d;
  const auto f = d.put("k.json",
                       R"([{"sentence_with_pronoun": "A met B and [he] smiled .", "candidate0": ["A"], "candidate1": ["B"], "correct_candidate": ["B"]},)" "\n"
                       R"({"sentence_with_pronoun": "A met B and [he] smiled .", "candidate0": "A", "candidate1": "B", "correct_candidate": "C"}])" "\n");
  expect_error([&] { read_knowref(f); }, {f + ":2", "correct_candidate", "neither candidate"});
  const auto r = read_knowref(f, skipping());
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].question, "A met B and _ smiled .");
  EXPECT_EQ(r.items[0].gold, 1);
  EXPECT_EQ(r.items[0].extra["pronoun"], "he");
}

TEST(Readers, GenericMapping) {
  const auto m = parse_generic_mapping("question=q.text,choices=opts,answer=label,id=uid");
  EXPECT_EQ(m.question, "q.text");
  EXPECT_EQ(m.choices, "opts");
  EXPECT_EQ(m.answer, "label");
  EXPECT_EQ(m.id, "uid");
  EXPECT_THROW(parse_generic_mapping("question"), Error);
  expect_error([] { parse_generic_mapping("quesiton=q"); }, {"unknown key \"quesiton\""});

  TempDir d;
  const auto f = d.put("g.jsonl",
                       R"({"uid": 7, "q": {"text": "Pick"}, "opts": ["x", "y", "z"], "label": "C"})" "\n"
                       R"({"uid": "u2", "q": {"text": "Again"}, "opts": ["x", "y"], "label": 1})" "\n"
                       R"({"uid": "u3", "q": {"text": "Str"}, "opts": ["x", "y"], "label": "0"})" "\n"
                       R"({"uid": "u4", "q": {}, "opts": ["x", "y"], "label": 0})" "\n");
  expect_error([&] { read_generic(f, m); }, {f + ":4", "q.text", "missing"});
  const auto r = read_generic(f, m, skipping());
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ(r.items[0].id, "7");
  EXPECT_EQ(r.items[0].gold, 2);
  EXPECT_EQ(r.items[1].gold, 1);
  EXPECT_EQ(r.items[2].gold, 0);
  EXPECT_EQ(r.items[0].question, "Pick");
  // Default mapping.
  const auto g = d.put("plain.jsonl", R"({"question": "Q", "choices": ["a", "b"], "answer": 0})" "\n");
  EXPECT_EQ(read_task("generic", g).items.at(0).choices.size(), 2u);
  expect_error([&] { read_task("generic", d.path()); }, {"one .jsonl file"});
}

TEST(Registry, TasksSplitsAndErrors) {
  std::vector<std::string> names;
  for (const auto& t : task_specs()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"mmlu", "arc_challenge", "arc_easy", "hellaswag", "piqa", "winogrande",
                                             "boolq", "commonsense_qa", "openbookqa", "sciq", "social_iqa", "knowref",
                                             "generic"}));
  expect_error([] { find_task("hellaswagg"); }, {"unknown task \"hellaswagg\"", "mmlu", "generic"});
  TempDir d;
  expect_error([&] { resolve_split_files("arc_easy", d.path(), "test"); }, {d.path(), "ARC-Easy-Test.jsonl"});
  expect_error([&] { resolve_split_files("boolq", d.path(), "test"); }, {"no split \"test\"", "validation, train"});
  expect_error([&] { resolve_split_files("boolq", d.path() + "/nope"); }, {"no such file or folder"});
  d.put("ARC-Easy/ARC-Easy-Dev.jsonl", kArcGood + "\n");
  const auto files = resolve_split_files("arc_easy", d.path(), "dev");
  ASSERT_EQ(files.data.size(), 1u);
  EXPECT_EQ(files.data[0], d.path() + "/ARC-Easy/ARC-Easy-Dev.jsonl");
  // The data folder itself: dataset folders one level down.
  const auto real = resolve_split_files("social_iqa", C3PO_SHARED_DIR "/data");
  EXPECT_EQ(fs::path(real.data.at(0)).filename(), "dev.jsonl");
  EXPECT_EQ(fs::path(real.labels).filename(), "dev-labels.lst");
}
