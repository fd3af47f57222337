#pragma once
// The one exception type of c3po: every error names where it happened (file), what (field) and
// what was expected, so that a user can fix the input without reading the code.
#include <stdexcept>
#include <string>

namespace c3po {

class Error : public std::runtime_error {
 public:
  Error(std::string file, std::string field, std::string problem)
      : std::runtime_error(format(file, field, problem)),
        file_(std::move(file)),
        field_(std::move(field)),
        problem_(std::move(problem)) {}

  const std::string& file() const { return file_; }
  const std::string& field() const { return field_; }
  const std::string& problem() const { return problem_; }

 private:
  static std::string format(const std::string& file, const std::string& field,
                            const std::string& problem) {
    std::string s;
    if (!file.empty()) s += file + ": ";
    if (!field.empty()) s += field + ": ";
    return s + problem;
  }
  std::string file_, field_, problem_;
};

}  // namespace c3po
