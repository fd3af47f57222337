// Python string semantics. Expected values come from CPython 3.11 itself (the committed table
// python_capitalize_table.tsv, made by gen_python_case_table.py, and the literals below, each
// printed by /usr/bin/python3 with the lm-eval preprocess re-typed from hellaswag/utils.py).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "data/text.h"
#include "io/error.h"

using namespace c3po::data;

namespace {

std::string utf8(std::u32string_view s) {
  std::string out;
  for (char32_t c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

std::u32string hex_seq(const std::string& s) {
  std::u32string out;
  std::istringstream in(s);
  std::string h;
  while (in >> h) out.push_back(static_cast<char32_t>(std::stoul(h, nullptr, 16)));
  return out;
}

}  // namespace

TEST(PythonText, CapitalizeMatchesCPythonOnEveryCodePoint) {
  std::ifstream in(C3PO_SOURCE_DIR "/tests/data/python_capitalize_table.tsv");
  ASSERT_TRUE(in) << "missing python_capitalize_table.tsv";
  std::map<char32_t, std::pair<std::u32string, std::u32string>> table;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string cp, first, later;
    std::getline(fields, cp, '\t');
    std::getline(fields, first, '\t');
    std::getline(fields, later, '\t');
    table[static_cast<char32_t>(std::stoul(cp, nullptr, 16))] = {hex_seq(first), hex_seq(later)};
  }
  ASSERT_GT(table.size(), 2500u);
  int mismatches = 0;
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (c >= 0xD800 && c < 0xE000) continue;
    const auto it = table.find(c);
    const std::u32string self(1, c);
    const std::string want_first = utf8(it == table.end() ? self : it->second.first);
    const std::string want_later = "A" + utf8(it == table.end() ? self : it->second.second);
    const std::string got_first = python_capitalize(utf8(self));
    const std::string got_later = python_capitalize("A" + utf8(self));
    if (got_first != want_first || got_later != want_later) {
      if (++mismatches <= 10) ADD_FAILURE() << std::hex << "U+" << static_cast<unsigned>(c);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(PythonText, CapitalizeWholeStrings) {
  EXPECT_EQ(python_capitalize("hELLO wORLD"), "Hello world");
  EXPECT_EQ(python_capitalize("élan ÉCOLE"), "Élan école");
  EXPECT_EQ(python_capitalize("ǆEMO"), "ǅemo");       // titlecase, not uppercase
  EXPECT_EQ(python_capitalize("ßtraße"), "Sstraße");   // full titlecase mapping
  EXPECT_EQ(python_capitalize("ﬁNAL"), "Final");
  EXPECT_EQ(python_capitalize("İSTANBUL"), "İstanbul");
  EXPECT_EQ(python_capitalize(""), "");
  // Final sigma rule (CPython handle_capital_sigma).
  EXPECT_EQ(python_capitalize("ΑΣ"), "Ας");
  EXPECT_EQ(python_capitalize("ΑΣΑ"), "Ασα");
  EXPECT_EQ(python_capitalize("Σ"), "Σ");
  EXPECT_EQ(python_capitalize("AΣ."), "Aς.");
  EXPECT_EQ(python_capitalize("A'Σ"), "A'ς");
  EXPECT_EQ(python_capitalize("AΣ'A"), "Aσ'a");
  EXPECT_EQ(python_capitalize("ΌΣΟΣ ΣΑΣ"), "Όσος σας");
  EXPECT_EQ(python_capitalize("aΣ\u0301b"), "Aσ\u0301b");
}

TEST(PythonText, CodePointsAndValidity) {
  EXPECT_EQ(code_point_count("héllo"), 5u);
  EXPECT_EQ(code_point_count("日本"), 2u);
  EXPECT_EQ(code_point_count("\xF0\x9F\x98\x80"), 1u);  // U+1F600
  EXPECT_EQ(code_point_count(""), 0u);
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_FALSE(is_valid_utf8("\xC3"));              // truncated
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate U+D800
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_THROW(code_point_count("\xFF"), c3po::Error);
  EXPECT_THROW(python_capitalize("ok\xC3"), c3po::Error);
}

TEST(PythonText, StripUsesPythonWhitespace) {
  EXPECT_EQ(python_strip("\u00a0 x y \u3000\n"), "x y");
  EXPECT_EQ(python_strip("\x1c" "a" "\x1f"), "a");  // str.isspace() is true for U+001C..U+001F
  EXPECT_EQ(python_strip("\u200bz\u200b"), "\u200bz\u200b");  // zero-width space is not
  EXPECT_EQ(python_lstrip("  a  "), "a  ");
  EXPECT_EQ(python_rstrip("  a \u2029"), "  a");
  EXPECT_EQ(python_strip("   "), "");
}

TEST(PythonText, ReplaceIsOnePass) {
  EXPECT_EQ(replace_all("a   b", "  ", " "), "a  b");
  EXPECT_EQ(replace_all("a    b", "  ", " "), "a  b");
  EXPECT_EQ(replace_all("xx", "x", "xx"), "xxxx");
  EXPECT_EQ(replace_all("abc", "d", "e"), "abc");
}

TEST(PythonText, BracketRemovalIsNonGreedyAndLineBound) {
  EXPECT_EQ(remove_bracketed("a [b] c [d\ne] f"), "a  c [d\ne] f");
  EXPECT_EQ(remove_bracketed("[[x]]"), "]");
  EXPECT_EQ(remove_bracketed("[]"), "");
  EXPECT_EQ(remove_bracketed("a]b[c"), "a]b[c");
  EXPECT_EQ(remove_bracketed("[a][b]c"), "c");
}

TEST(PythonText, HellaswagPreprocess) {
  EXPECT_EQ(hellaswag_preprocess("a [b] c [d\ne] f"), "a c [d\ne] f");
  EXPECT_EQ(hellaswag_preprocess("a   b"), "a  b");
  EXPECT_EQ(hellaswag_preprocess("x [title] y [step] z  [substeps]  w"), "x. y z  w");
  EXPECT_EQ(hellaswag_preprocess("\u00a0 lead [title]"), "lead. ");
  EXPECT_EQ(hellaswag_preprocess(
                "  Removing ice from car: [header] Then, the man writes over the snow covering the window "
                "of a car, and a woman wearing winter clothes smiles. [title] Then   "),
            "Removing ice from car: Then, the man writes over the snow covering the window of a car, and a "
            "woman wearing winter clothes smiles.. Then");
}
