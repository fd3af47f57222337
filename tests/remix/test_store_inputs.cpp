// Reference stores found by the store fuzz target (fuzz/targets/store.cpp), kept as regression
// inputs in data/fuzz/ (made by data/fuzz/make_inputs.py, each with a true checksum): every one is
// either read correctly or refused with a c3po::Error naming the file and the tensor.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "io/error.h"
#include "remix/store.h"

using c3po::remix::ReferenceStore;

namespace {

const std::string kInputs = C3PO_SOURCE_DIR "/tests/remix/data/fuzz/";

// The c3po::Error opening `name` raises (fails the test if it opens).
c3po::Error open_error(const std::string& name) {
  try {
    ReferenceStore::open(kInputs + name);
  } catch (const c3po::Error& e) {
    return e;
  }
  ADD_FAILURE() << name << " opened";
  return c3po::Error("", "", "");
}

}  // namespace

// A valid store whose item_offsets start off 8-byte alignment (4 references: byte 804 of the
// data) was read in place through a misaligned int64 pointer (UBSan: undefined behaviour).
TEST(StoreInputs, UnalignedOffsetsAreRead) {
  const auto store = ReferenceStore::open(kInputs + "unaligned-offsets.store");
  ASSERT_EQ(store.size(), 4);
  for (int64_t i = 0; i < store.size(); ++i) {
    const auto item = store.item(i);
    EXPECT_FALSE(item.id.empty());
    EXPECT_EQ(item.task, "generic");
    EXPECT_GE(item.choices.size(), 2u);
  }
  EXPECT_EQ(store.find("generic", store.item(3).id), 3);
}

// Offsets that do not rise: item 0 was read from its start up to 2^40 bytes on, past the end of
// the mapped file (`c3po remix` quoted bytes from beyond the file in its error).
TEST(StoreInputs, OffsetsPastTheEndAreRefused) {
  const auto e = open_error("offsets-past-end.store");
  EXPECT_EQ(e.file(), kInputs + "offsets-past-end.store");
  EXPECT_EQ(e.field(), "item_offsets");
  EXPECT_NE(e.problem().find("must rise"), std::string::npos) << e.what();
}

// A tensor of another dtype: F64 offsets were refused as "store: unsupported tensor type" (no file
// named), F32 sources with a NaN as "names a dataset outside the recorded list".
TEST(StoreInputs, WrongDtypesAreRefused) {
  auto e = open_error("offsets-f64.store");
  EXPECT_EQ(e.field(), "item_offsets");
  EXPECT_NE(e.problem().find("has dtype F64, expected I64"), std::string::npos) << e.what();
  e = open_error("source-f32.store");
  EXPECT_EQ(e.field(), "source");
  EXPECT_NE(e.problem().find("has dtype F32, expected I32"), std::string::npos) << e.what();
}

// An item whose gold is a number beyond a double ("7E777"): nlohmann reports it as out_of_range,
// not parse_error, and item() let it escape as a bare nlohmann exception.
TEST(StoreInputs, ItemWithANumberBeyondADouble) {
  const std::string path = kInputs + "item-number-overflow.store";
  const auto store = ReferenceStore::open(path);
  try {
    store.item(0);
    ADD_FAILURE() << "item 0 read";
  } catch (const c3po::Error& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_EQ(e.field(), "items");
  }
  EXPECT_NO_THROW(store.item(1));
}
