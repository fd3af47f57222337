#include "report/html.h"

#include <fmt/format.h>

#include <cmath>

namespace c3po::report {

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string percent(std::optional<double> share, int decimals) {
  if (!share || !std::isfinite(*share)) return "-";
  return fmt::format("{:.{}f}%", 100.0 * *share, decimals);
}

std::string signed_points(std::optional<double> change, int decimals) {
  if (!change || !std::isfinite(*change)) return "-";
  // Rounds to zero -> "+0.0": no "-0.0" in the table.
  const double scaled = 100.0 * *change;
  const double unit = std::pow(10.0, -decimals);
  if (std::fabs(scaled) < unit / 2) return fmt::format("+{:.{}f} pp", 0.0, decimals);
  return fmt::format("{:+.{}f} pp", scaled, decimals);
}

std::string si_number(std::optional<double> value) {
  if (!value || !std::isfinite(*value)) return "-";
  const double v = *value, a = std::fabs(v);
  static constexpr const char* kPrefixes[] = {"", " k", " M", " G", " T", " P"};
  int p = 0;
  double scaled = v;
  while (std::fabs(scaled) >= 1000.0 && p < 5) {
    scaled /= 1000.0;
    ++p;
  }
  if (a == 0) return "0";
  return fmt::format("{:.3g}{}", scaled, kPrefixes[p]);
}

std::string choice_letter(int index) {
  if (index >= 0 && index < 26) return std::string(1, static_cast<char>('A' + index));
  return std::to_string(index + 1);
}

std::string coord(double v) {
  std::string s = fmt::format("{:.2f}", v);
  if (s == "-0.00") s = "0.00";
  return s;
}

}  // namespace c3po::report
