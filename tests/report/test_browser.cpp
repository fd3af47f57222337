// The report in a real browser: headless Chromium loads the page from disk, its DOM holds every
// chart, nothing is blocked or fails to load, and a screenshot is produced. Chromium is required:
// a missing browser fails the test unless C3PO_NO_BROWSER=1.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "report/report.h"
#include "report/run_fixture.h"

namespace c3po::report {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + needle.size())) ++n;
  return n;
}

std::string find_browser() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':'))
    for (const char* name : {"chromium", "chromium-browser"}) {
      const fs::path candidate = fs::path(dir) / name;
      std::error_code ec;
      if (fs::is_regular_file(candidate, ec) && access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
  return "";
}

std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

class BrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* no_browser = std::getenv("C3PO_NO_BROWSER");
    if (no_browser && std::string(no_browser) == "1") GTEST_SKIP() << "C3PO_NO_BROWSER=1";
    browser_ = find_browser();
    ASSERT_FALSE(browser_.empty())
        << "chromium is not installed: install Debian's chromium (scripts/setup.sh --tests) to run the report's "
           "browser test, or set C3PO_NO_BROWSER=1 to skip it";
    dir_ = testing::make_temp_dir("c3po_report_browser_");
    testing::write_fixture(testing::make_fixture(), dir_);
    html_ = dir_ + "/report.html";
    write_report(dir_, html_, {});
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Runs the browser on the page with `extra` flags; stdout and stderr go to files. Returns the
  // exit status (124 when it timed out).
  int run_browser(const std::string& extra, const std::string& out, const std::string& err) {
    return run_browser_on(html_, extra, out, err);
  }
  int run_browser_on(const std::string& page, const std::string& extra, const std::string& out,
                     const std::string& err) {
    const std::string profile = testing::make_temp_dir("c3po_report_profile_");
    const std::string cmd = "timeout 180 " + shell_quoted(browser_) +
                            " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                            " --disable-background-networking --disable-component-update --disable-sync"
                            " --disable-dev-shm-usage --enable-logging=stderr --v=0 --user-data-dir=" +
                            shell_quoted(profile) + " " + extra + " " + shell_quoted("file://" + page) + " >" + shell_quoted(out) +
                            " 2>" + shell_quoted(err) + " </dev/null";
    const int status = std::system(cmd.c_str());
    fs::remove_all(profile);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Lines of the browser log that report a problem with the page.
  static std::vector<std::string> page_errors(const std::string& log) {
    std::vector<std::string> out;
    std::stringstream lines(log);
    std::string line;
    while (std::getline(lines, line))
      // The page has no scripts, so any console message (CSP violations are logged there) is a fault.
      for (const char* marker : {"Uncaught", "CONSOLE", "Content Security Policy", "Failed to load", "net::ERR_",
                                 "Refused to", "Not allowed to load"})
        if (line.find(marker) != std::string::npos) {
          out.push_back(line);
          break;
        }
    return out;
  }

  std::string browser_, dir_, html_;
};

TEST_F(BrowserTest, PageLoadsWithEveryChartAndNoErrors) {
  const std::string dom = dir_ + "/dom.html", log = dir_ + "/dom.log";
  ASSERT_EQ(run_browser("--dump-dom", dom, log), 0) << slurp(log);
  const std::string text = slurp(dom);
  ASSERT_NE(text.find("</html>"), std::string::npos) << "no DOM dumped; log:\n" << slurp(log);
  // 1 accuracy chart + 3 example heatmaps + 2 usage histograms, as parsed by the browser.
  EXPECT_EQ(count_of(text, "<svg "), 6u);
  EXPECT_EQ(count_of(text, "<rect class=\"bar"), 5u);
  EXPECT_EQ(count_of(text, "<tr data-task="), 5u);
  // The escaped question is text again in the DOM, not markup.
  EXPECT_NE(text.find("Which tag makes text &lt;b&gt;bold&lt;/b&gt;"), std::string::npos);
  EXPECT_EQ(text.find("<b>bold</b>"), std::string::npos);
  const auto errors = page_errors(slurp(log));
  EXPECT_TRUE(errors.empty()) << "browser reported:\n" << errors.front();
}

// The log check sees what a broken page would show: a failing script and a blocked load.
TEST_F(BrowserTest, ErrorCheckCatchesABrokenPage) {
  const std::string page = dir_ + "/broken.html", dom = dir_ + "/broken.dom", log = dir_ + "/broken.log";
  std::string html = slurp(html_);
  html.insert(html.find("</body>"), "<script>undefined_function();</script><img src=\"missing.png\">");
  std::ofstream(page) << html;
  ASSERT_EQ(run_browser_on(page, "--dump-dom", dom, log), 0) << slurp(log);
  EXPECT_GE(page_errors(slurp(log)).size(), 2u) << slurp(log);
}

TEST_F(BrowserTest, ScreenshotIsTaken) {
  const std::string shot = dir_ + "/report.png", out = dir_ + "/shot.out", log = dir_ + "/shot.log";
  ASSERT_EQ(run_browser("--screenshot=" + shell_quoted(shot) + " --window-size=1200,2400 --hide-scrollbars", out, log), 0)
      << slurp(log);
  const std::string png = slurp(shot);
  ASSERT_GE(png.size(), 8u) << "no screenshot; log:\n" << slurp(log);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // A blank 1200x2400 page compresses to a few kB; charts and tables make it far larger.
  EXPECT_GT(png.size(), 40000u);
  const auto errors = page_errors(slurp(log));
  EXPECT_TRUE(errors.empty()) << "browser reported:\n" << errors.front();
}

}  // namespace
}  // namespace c3po::report
