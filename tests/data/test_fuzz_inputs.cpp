// Inputs found by the readers fuzz target (fuzz/targets/readers.cpp), kept in fuzz/ beside this
// file: each must end in a c3po::Error naming the file, never in another exception.
#include <gtest/gtest.h>

#include <string>

#include "data/readers.h"
#include "io/error.h"

using namespace c3po::data;

namespace {
const std::string kInputs = C3PO_SOURCE_DIR "/tests/data/fuzz/";
}

// "7E777" is a number beyond a double: nlohmann reports it as out_of_range, not parse_error, and
// the JSON-array readers (KnowRef, SciQ) let it escape as a bare nlohmann exception.
TEST(FuzzInputs, NumberBeyondADoubleInAJsonArrayFile) {
  const std::string path = kInputs + "number-overflow.json";
  for (auto read : {&read_knowref, &read_sciq}) {
    try {
      read(path, {});
      ADD_FAILURE() << "read";
    } catch (const c3po::Error& e) {
      EXPECT_EQ(e.file(), path);
      EXPECT_NE(e.problem().find("not valid JSON: number overflow"), std::string::npos) << e.what();
    }
  }
}
