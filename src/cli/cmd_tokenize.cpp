// `c3po tokenize`: token ids of texts (or texts of ids) with a tokenizer.json, as Hugging Face's
// tokenizers gives them.
#include <fmt/core.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "io/error.h"
#include "tokenizer/tokenizer.h"

namespace c3po::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer, text, file;
  bool no_special = false, decode = false, skip_special = false;
};

std::vector<std::int32_t> parse_ids(const std::string& json_text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception&) {
    throw Error(where, "", "expected a JSON array of token ids, got: " + json_text);
  }
  if (!j.is_array()) throw Error(where, "", "expected a JSON array of token ids, got: " + json_text);
  std::vector<std::int32_t> ids;
  for (std::size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_number_integer() || j[i].get<std::int64_t>() < INT32_MIN || j[i].get<std::int64_t>() > INT32_MAX)
      throw Error(where, "[" + std::to_string(i) + "]", "expected an integer token id, got " + j[i].dump());
    ids.push_back(j[i].get<std::int32_t>());
  }
  return ids;
}

int run_tokenize(const TokenizeOptions& o) {
  const auto tok = tokenizer::Tokenizer::load(o.tokenizer);
  auto encode_line = [&](const std::string& text) {
    return nlohmann::json(tok.encode(text, !o.no_special)).dump();
  };
  if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) throw Error(o.file, "", "cannot open the file");
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      try {
        if (o.decode) {
          // A decoded text may hold newlines: one JSON string per line keeps the output line-aligned.
          fmt::print("{}\n", nlohmann::json(tok.decode(parse_ids(line, o.file), o.skip_special)).dump());
        } else {
          fmt::print("{}\n", encode_line(line));
        }
      } catch (const Error& e) {
        throw Error(o.file, "line " + std::to_string(number), e.what());
      }
    }
    return 0;
  }
  if (o.decode) fmt::print("{}\n", tok.decode(parse_ids(o.text, "--text"), o.skip_special));
  else fmt::print("{}\n", encode_line(o.text));
  return 0;
}

}  // namespace

void add_tokenize_commands(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand(
      "tokenize",
      "Print the token ids of a text as a JSON array (the ids Hugging Face tokenizers gives), or with --decode "
      "the text of a JSON array of ids");
  auto o = std::make_shared<TokenizeOptions>();
  cmd->add_option("--tokenizer", o->tokenizer,
                  "a tokenizer.json, or a model folder holding one (a tokenizer_config.json beside it sets "
                  "add_bos_token/add_eos_token)")
      ->required();
  auto* text = cmd->add_option("--text", o->text, "the text to encode (with --decode: a JSON array of ids)");
  auto* file = cmd->add_option("--file", o->file,
                               "a file with one text per line (the newline is not part of the text); prints one "
                               "JSON array per line (with --decode: one JSON string per line)");
  text->excludes(file);
  cmd->add_flag("--no-special", o->no_special,
                "do not add the special tokens of the post-processor (BOS/EOS, [CLS]/[SEP]); special tokens "
                "written in the text are still recognised");
  cmd->add_flag("--decode", o->decode, "decode ids to text instead of encoding text");
  cmd->add_flag("--skip-special", o->skip_special, "with --decode: leave out special tokens");
  cmd->callback([&action, o, text, file] {
    if (text->count() == 0 && file->count() == 0) throw CLI::RequiredError("--text or --file");
    action = [o] { return run_tokenize(*o); };
  });
}

}  // namespace c3po::cli
