#include "io/json_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "io/error.h"
#include "io/files.h"

namespace c3po::io {

nlohmann::json read_json_file(const std::string& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "", "cannot open (missing or unreadable)");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(path, "", "malformed JSON at " + json_error_text(e));
  } catch (const nlohmann::json::exception& e) {
    // Not a parse_error: a number beyond a double ("7E777", out_of_range.406).
    throw Error(path, "", "malformed JSON: " + json_error_text(e));
  }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  std::random_device rd;
  std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path, "", std::string("cannot create: ") + std::strerror(errno));
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(path, "", std::string("write failed: ") + std::strerror(err));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw Error(path, "", "cannot flush to disk");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw Error(path, "", std::string("cannot rename into place: ") + std::strerror(err));
  }
}

void write_json_file(const std::string& path, const nlohmann::json& value, int indent) {
  write_file_atomic(path, value.dump(indent) + "\n");
}

}  // namespace c3po::io
