// Inputs found by the safetensors fuzz targets (fuzz/targets/), kept in data/fuzz/: each must end
// in a c3po::Error naming the file, never in another exception.
#include <gtest/gtest.h>

#include <string>

#include "io/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace {
const std::string kInputs = C3PO_SOURCE_DIR "/tests/io/data/fuzz/";
}

// A number beyond a double ("7E777") is nlohmann's out_of_range, not parse_error: it escaped
// read_json_file, and with it Checkpoint::open of a sharded folder, as a bare nlohmann exception.
TEST(FuzzInputs, NumberBeyondADoubleInTheShardIndex) {
  const std::string index = kInputs + "number-overflow/model.safetensors.index.json";
  try {
    c3po::io::Checkpoint::open(kInputs + "number-overflow");
    ADD_FAILURE() << "opened";
  } catch (const c3po::Error& e) {
    EXPECT_EQ(e.file(), index);
    EXPECT_NE(e.problem().find("malformed JSON: number overflow"), std::string::npos) << e.what();
  }
  EXPECT_THROW(c3po::io::read_json_file(index), c3po::Error);
}
