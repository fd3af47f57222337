#include "remix/options.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <set>
#include <sstream>

#include "io/error.h"

namespace c3po::remix {

namespace {

int parse_int(const std::string& s, const std::string& field) {
  try {
    std::size_t used = 0;
    int v = std::stoi(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error("", field, "expected an integer, got \"" + s + "\"");
}

double parse_double(const std::string& s, const std::string& field) {
  try {
    std::size_t used = 0;
    double v = std::stod(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error("", field, "expected a number, got \"" + s + "\"");
}

}  // namespace

CriticalLayers CriticalLayers::parse(const std::string& spec) {
  CriticalLayers c;
  c.strict = true;
  const auto colon = spec.find(':');
  const std::string head = spec.substr(0, colon);
  if (head == "all" && colon == std::string::npos) {
    c.rule = Rule::All;
    return c;
  }
  if (head == "last" || head == "first" || head == "middle") {
    c.rule = head == "last" ? Rule::Last : head == "first" ? Rule::First : Rule::Middle;
    if (colon == std::string::npos) throw Error("", "layers", "\"" + spec + "\" needs a count, e.g. " + head + ":5");
    c.count = parse_int(spec.substr(colon + 1), "layers");
    if (c.count < 1) throw Error("", "layers", "the count must be at least 1");
    return c;
  }
  c.rule = Rule::List;
  std::stringstream ss(spec);
  std::string item;
  std::set<int> seen;
  while (std::getline(ss, item, ',')) {
    int v = parse_int(item, "layers");
    if (v < 0) throw Error("", "layers", "layer indices must be non-negative");
    if (seen.insert(v).second) c.list.push_back(v);
  }
  if (c.list.empty())
    throw Error("", "layers", "expected last:M, first:M, middle:M, all or a list like 11,13,15; got \"" + spec + "\"");
  std::sort(c.list.begin(), c.list.end());
  return c;
}

std::string CriticalLayers::to_string() const {
  switch (rule) {
    case Rule::Last: return "last:" + std::to_string(count);
    case Rule::First: return "first:" + std::to_string(count);
    case Rule::Middle: return "middle:" + std::to_string(count);
    case Rule::All: return "all";
    case Rule::List: {
      std::string s;
      for (std::size_t i = 0; i < list.size(); ++i) {
        if (i) s += ',';
        s += std::to_string(list[i]);
      }
      return s;
    }
  }
  return "?";
}

std::vector<int> CriticalLayers::resolve(int n) const {
  std::vector<int> out;
  if (strict && rule != Rule::All && rule != Rule::List && count > n)
    throw Error("", "layers",
                fmt::format("{} asks for {} MoE layers, but the model has {} (use all, or a count up to {})",
                            to_string(), count, n, n));
  const int m = std::min(count, n);
  switch (rule) {
    case Rule::Last:
      for (int i = n - m; i < n; ++i) out.push_back(i);
      break;
    case Rule::First:
      for (int i = 0; i < m; ++i) out.push_back(i);
      break;
    case Rule::Middle:
      for (int i = (n - m) / 2; i < (n - m) / 2 + m; ++i) out.push_back(i);
      break;
    case Rule::All:
      for (int i = 0; i < n; ++i) out.push_back(i);
      break;
    case Rule::List:
      for (int v : list) {
        if (v >= n)
          throw Error("", "layers", "MoE layer " + std::to_string(v) + " does not exist: the model has " +
                                          std::to_string(n) + " MoE layers (0.." + std::to_string(n - 1) + ")");
        out.push_back(v);
      }
      break;
  }
  return out;
}

RemixTokens RemixTokens::parse(const std::string& spec) {
  RemixTokens t;
  if (spec == "last") return t;
  if (spec == "all") {
    t.count = 0;
    return t;
  }
  if (spec.rfind("last:", 0) == 0) {
    t.count = parse_int(spec.substr(5), "tokens");
    if (t.count < 1) throw Error("", "tokens", "the count of last:J must be at least 1");
    return t;
  }
  throw Error("", "tokens", "expected last, last:J or all; got \"" + spec + "\"");
}

std::string RemixTokens::to_string() const {
  if (count == 0) return "all";
  if (count == 1) return "last";
  return "last:" + std::to_string(count);
}

KernelSpec KernelSpec::parse(const std::string& spec) {
  KernelSpec k;
  const auto colon = spec.find(':');
  const std::string head = spec.substr(0, colon);
  const bool has_arg = colon != std::string::npos;
  const double arg = has_arg ? parse_double(spec.substr(colon + 1), "kernel") : 0;
  if (head == "gaussian") {
    k.kind = KernelKind::Gaussian;
    if (has_arg) k.bandwidth = arg;
  } else if (head == "linear") {
    k.kind = KernelKind::Linear;
  } else if (head == "poly" || head == "polynomial") {
    k.kind = KernelKind::Polynomial;
    if (has_arg) k.degree = arg;
  } else if (head == "matern") {
    k.kind = KernelKind::Matern32;
    if (has_arg) k.bandwidth = arg;
  } else {
    throw Error("", "kernel", "unknown kernel \"" + head + "\" (expected gaussian[:sigma], linear, poly[:degree], matern[:length])");
  }
  if ((k.kind == KernelKind::Gaussian || k.kind == KernelKind::Matern32) && !(k.bandwidth > 0))
    throw Error("", "kernel", "the bandwidth must be positive");
  return k;
}

std::string KernelSpec::to_string() const {
  std::ostringstream s;
  switch (kind) {
    case KernelKind::Gaussian: s << "gaussian:" << bandwidth; break;
    case KernelKind::Linear: s << "linear"; break;
    case KernelKind::Polynomial: s << "poly:" << degree; break;
    case KernelKind::Matern32: s << "matern:" << bandwidth; break;
  }
  return s.str();
}

double KernelSpec::weight(double cosine) const {
  const double d = std::sqrt(std::max(0.0, 2.0 - 2.0 * cosine));  // Euclidean distance of unit vectors
  switch (kind) {
    case KernelKind::Gaussian: return std::exp(-d * d / (2 * bandwidth * bandwidth));
    case KernelKind::Linear: return std::max(0.0, cosine);
    case KernelKind::Polynomial: return std::pow(std::max(0.0, cosine + offset), degree);
    case KernelKind::Matern32: {
      const double r = std::sqrt(3.0) * d / bandwidth;
      return (1 + r) * std::exp(-r);
    }
  }
  return 0;
}

double OptimiserOptions::lr_at(int step) const {
  if (schedule == Schedule::Constant || steps <= 0) return lr;
  // As PyTorch's CosineAnnealingLR with T_max = steps: step 0 uses lr, the last step is just above lr_min.
  return lr_min + 0.5 * (lr - lr_min) * (1 + std::cos(std::numbers::pi * step / steps));
}

}  // namespace c3po::remix
