#include "data/scoring.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "io/error.h"

namespace c3po::data {
namespace {

int first_argmax(const std::vector<double>& v, const char* field) {
  if (v.empty()) throw Error("", field, "no values");
  int best = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) throw Error("", field, fmt::format("value {} is NaN", i));
    if (v[i] > v[static_cast<std::size_t>(best)]) best = static_cast<int>(i);
  }
  return best;
}

}  // namespace

LoglikPrediction predict_loglik(const std::vector<double>& lls, const std::vector<std::size_t>& lengths) {
  if (lls.size() != lengths.size())
    throw Error("", "completion lengths",
                fmt::format("{} lengths for {} log-likelihoods", lengths.size(), lls.size()));
  std::vector<double> normed(lls.size());
  for (std::size_t i = 0; i < lls.size(); ++i) {
    if (lengths[i] == 0) throw Error("", "completion lengths", fmt::format("length {} is 0", i));
    normed[i] = lls[i] / static_cast<double>(lengths[i]);
  }
  return {first_argmax(lls, "log-likelihoods"), first_argmax(normed, "log-likelihoods")};
}

int predict_letter(const std::vector<double>& letter_logits) {
  return first_argmax(letter_logits, "letter logits");
}

Interval wilson_interval(std::size_t correct, std::size_t n, double z) {
  if (n == 0) throw Error("", "n", "Wilson interval of zero items");
  if (correct > n) throw Error("", "correct", fmt::format("{} correct out of {}", correct, n));
  const double nn = static_cast<double>(n);
  const double p = static_cast<double>(correct) / nn;
  const double z2 = z * z;
  const double denom = 1.0 + z2 / nn;
  const double center = (p + z2 / (2.0 * nn)) / denom;
  const double half = z / denom * std::sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn));
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

}  // namespace c3po::data
