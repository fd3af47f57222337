#pragma once
// Reading JSON files with errors that name the file and the field.
#include <nlohmann/json.hpp>
#include <string>

namespace c3po::io {

// Parses a whole JSON file; a missing file or a syntax error is a c3po::Error naming it.
nlohmann::json read_json_file(const std::string& path);

// Writes JSON to path through a temporary file and a rename, so no half-written file remains.
void write_json_file(const std::string& path, const nlohmann::json& value, int indent = 2);

// Writes bytes to path atomically (temporary file in the same folder, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace c3po::io
