#pragma once
// The report's charts as standalone inline SVG strings (no scripts, no external references, no
// element ids, so any number of them can share one page). Labels are escaped here.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace c3po::report {

struct AccuracyBar {
  std::string label;
  double accuracy = 0;                  // in [0, 1]
  std::optional<double> low, high;      // 95% interval, drawn as a whisker
  bool upper_bound = false;             // the oracle: drawn hatched-outline and footnoted
};

// Vertical bars on a 0-100% axis (ticks every 20%, gridlines), one per method, interval
// whiskers, value above each bar. Bars are <rect class="bar"> whose height is accuracy * plot
// height exactly (to two decimals).
std::string accuracy_chart(const std::string& title, const std::vector<AccuracyBar>& bars);

// Plot geometry of accuracy_chart, for readers that check it.
inline constexpr double kAccuracyPlotHeight = 240.0;

struct HeatmapPanel {
  std::string title;
  // cells[row][column]: the weight, or nullopt where the expert is not in that panel's top list.
  std::vector<std::vector<std::optional<double>>> cells;
};

// Rows = critical MoE layers, columns = experts, one panel per pathway (before, after ...) stacked
// vertically so an expert is one column through all of them; all
// panels on one colour scale from 0 to the largest weight shown, with a legend. Every cell is a
// <rect class="cell"> (class "cell empty" when the expert is outside the top list) with a
// <title> tooltip.
std::string expert_heatmap(const std::vector<int>& layers, const std::vector<int>& experts,
                           const std::vector<HeatmapPanel>& panels);

struct UsageSeries {
  std::string label;                  // e.g. "base" or "after ngd"
  std::vector<std::size_t> counts;    // per expert: items that have it in their top-k
};

// Grouped bars per expert (one colour per series, at most 4 series), y axis of counts with
// integer ticks, legend. Bars are <rect class="usage s<series index>">.
std::string usage_histogram(const std::string& title, const std::vector<UsageSeries>& series);

// The colour of weight / max_weight in [0, 1] on the heatmap scale, "#rrggbb".
std::string heat_colour(double t);

}  // namespace c3po::report
