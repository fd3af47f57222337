#pragma once
// Text and number formatting for the report page: everything that reaches HTML or SVG goes
// through escape(), and numbers are printed with fixed precision so equal input gives equal bytes.
#include <optional>
#include <string>
#include <string_view>

namespace c3po::report {

// &, <, >, " and ' as entities; safe in element content and in double- or single-quoted attributes.
std::string escape(std::string_view text);

// 0.5234 -> "52.3%"; nullopt -> "-".
std::string percent(std::optional<double> share, int decimals = 1);
// +0.031 -> "+3.1 pp" (percentage points); nullopt -> "-".
std::string signed_points(std::optional<double> change, int decimals = 1);
// 1.23e9 -> "1.23 G", 4.5e5 -> "450 k"; nullopt -> "-".
std::string si_number(std::optional<double> value);
// Choice index -> "A", "B", ...; past "Z" the 1-based number.
std::string choice_letter(int index);
// SVG coordinate: fixed two decimals, "-0.00" printed as "0.00".
std::string coord(double v);

}  // namespace c3po::report
