#pragma once
// Scoring helpers that need no model.
#include <cstddef>
#include <vector>

namespace c3po::data {

struct LoglikPrediction {
  int acc = -1;       // argmax of the log-likelihoods (first on ties, as numpy)
  int acc_norm = -1;  // argmax of ll / completion length
};

// lls[i] is the summed log-likelihood of request i; lengths as LoglikItem::norm_lengths.
LoglikPrediction predict_loglik(const std::vector<double>& lls, const std::vector<std::size_t>& lengths);

// Letter protocol: argmax over the option letters' logits (first on ties).
int predict_letter(const std::vector<double>& letter_logits);

struct Interval {
  double low = 0, high = 0;
};

// Wilson score interval for a binomial proportion correct/n (default z: 95%, two-sided).
Interval wilson_interval(std::size_t correct, std::size_t n, double z = 1.959963984540054);

}  // namespace c3po::data
