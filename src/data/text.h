#pragma once
// Text operations with Python's exact semantics, because lm-evaluation-harness builds its prompts
// with Python string methods and our prompts must match theirs byte for byte.
#include <cstddef>
#include <string>
#include <string_view>

namespace c3po::data {

// True if utf8 is well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
bool is_valid_utf8(std::string_view utf8);

// Functions taking "utf8" throw c3po::Error(field "text") on malformed UTF-8.

// Python len(): number of Unicode code points.
std::size_t code_point_count(std::string_view utf8);

// Python str.isspace() for one code point.
bool is_python_whitespace(char32_t c);

// Python str.strip() / lstrip() / rstrip() with no argument (Unicode whitespace).
std::string python_strip(std::string_view utf8);
std::string python_lstrip(std::string_view utf8);
std::string python_rstrip(std::string_view utf8);

// Python str.capitalize() (3.8+): first code point to its full titlecase mapping, the rest to their
// full lowercase mapping (including the Final_Sigma rule).
std::string python_capitalize(std::string_view utf8);

// Python str.replace(from, to): non-overlapping, left to right, a single pass.
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);

// Python re.sub(r"\[.*?\]", "", text): removes each shortest "[...]" whose inside has no '\n'
// ('.' does not match a newline without re.DOTALL).
std::string remove_bracketed(std::string_view text);

// lm-evaluation-harness hellaswag/utils.py preprocess(): strip, " [title]" -> ". ", remove
// "[...]", then one pass of "  " -> " ".
std::string hellaswag_preprocess(std::string_view text);

}  // namespace c3po::data
