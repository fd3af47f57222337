#pragma once
// Checks every input file passes before it is opened: a FIFO, a device or a directory in place of
// an input would block the read or fail obscurely, so it is refused by name first.
#include <string>

#include <nlohmann/json.hpp>

namespace c3po::io {

// c3po::Error naming `path` when it does not exist or is not a regular file (symlinks followed).
void require_regular_file(const std::string& path);

// A JSON parse error in c3po's words: "line L, column C: what was wrong" without the library's
// "[json.exception.parse_error.101]" prefix.
std::string json_error_text(const nlohmann::json::exception& e);

}  // namespace c3po::io
