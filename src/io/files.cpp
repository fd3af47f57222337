#include "io/files.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "io/error.h"

namespace c3po::io {

void require_regular_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(path, "", std::string("cannot open: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error(path, "", "is a folder, expected a file");
  if (!S_ISREG(st.st_mode))
    throw Error(path, "", "is not a regular file (a pipe, socket or device cannot be read as input)");
}

std::string json_error_text(const nlohmann::json::exception& e) {
  std::string s = e.what();
  // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error while parsing ..."
  if (const auto close = s.find("] "); s.rfind("[json.exception.", 0) == 0 && close != std::string::npos)
    s = s.substr(close + 2);
  if (s.rfind("parse error ", 0) == 0) s = s.substr(12);
  return s;
}

}  // namespace c3po::io
