#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using c3po::Error;
using namespace c3po::io;

namespace {

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("c3po-st-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Builds a file by hand (independent of the writer): header JSON text, then raw data bytes.
std::string raw_file(const std::string& header, const std::string& data, uint64_t declared = 0) {
  uint64_t n = declared ? declared : header.size();
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + header + data;
}

void put(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Asserts that opening fails with a c3po::Error whose message names the file and contains `what`.
void expect_error(const std::string& path, const std::string& what) {
  try {
    SafetensorsFile f(path);
    FAIL() << "expected an error containing \"" << what << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

std::string f32_bytes(std::vector<float> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

}  // namespace

TEST(Safetensors, ReadsHandWrittenFileWithoutCopy) {
  TempDir dir;
  const auto path = dir.file("a.safetensors");
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}})";
  std::string data = f32_bytes({1.f, 2.f, 3.f, -4.5f});
  data += std::string("\x80\x3f\x00\x40\x40\x40", 6);  // bf16 1, 2, 3
  put(path, raw_file(header, data));

  SafetensorsFile f(path);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const auto* w = f.find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::F32);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 2}));
  float vals[4];
  std::memcpy(vals, w->data, 16);
  EXPECT_EQ(vals[3], -4.5f);
  const auto* b = f.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::BF16);
  EXPECT_EQ(b->nbytes, 6u);
  EXPECT_EQ(static_cast<uint8_t>(b->data[1]), 0x3f);
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(Safetensors, WriterRoundTripsAllDtypes) {
  TempDir dir;
  const auto path = dir.file("rt.safetensors");
  std::vector<uint8_t> bytes(64);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 1);
  std::vector<TensorData> ts;
  const DType all[] = {DType::BOOL, DType::U8,  DType::I8,  DType::U16, DType::I16,
                       DType::F16,  DType::BF16, DType::U32, DType::I32, DType::F32,
                       DType::U64,  DType::I64,  DType::F64};
  int i = 0;
  for (DType dt : all) {
    const int64_t n = 8 / static_cast<int64_t>(dtype_size(dt));
    ts.push_back({std::string("t") + std::to_string(i++) + dtype_name(dt), dt, {n},
                  bytes.data(), static_cast<std::size_t>(n) * dtype_size(dt)});
  }
  ts.push_back({"scalar", DType::F32, {}, bytes.data(), 4});
  ts.push_back({"empty", DType::F32, {0, 3}, bytes.data(), 0});
  write_safetensors(path, ts, {{"k", "v"}});

  SafetensorsFile f(path);
  ASSERT_EQ(f.tensors().size(), ts.size());
  EXPECT_EQ(f.metadata().at("k"), "v");
  for (const auto& t : ts) {
    const auto* v = f.find(t.name);
    ASSERT_NE(v, nullptr) << t.name;
    EXPECT_EQ(v->dtype, t.dtype);
    EXPECT_EQ(v->shape, t.shape);
    ASSERT_EQ(v->nbytes, t.nbytes);
    EXPECT_EQ(std::memcmp(v->data, t.data, t.nbytes), 0) << t.name;
  }
  // The data buffer starts 8-byte aligned, as the reference writer pads the header.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
  // No temporary files are left next to the output.
  EXPECT_EQ(std::distance(fs::directory_iterator(fs::path(path).parent_path()), {}), 1);
}

TEST(Safetensors, ShardedWriteAndCheckpointRead) {
  TempDir dir;
  std::vector<float> a(100, 1.5f), b(50, -2.f), c(10, 3.f);
  std::vector<TensorData> ts = {{"a", DType::F32, {10, 10}, a.data(), 400},
                                {"b", DType::F32, {50}, b.data(), 200},
                                {"c", DType::F32, {10}, c.data(), 40}};
  const auto out = dir.file("ckpt");
  write_safetensors_sharded(out, ts, 450);
  EXPECT_TRUE(fs::exists(out + "/model-00001-of-00002.safetensors"));
  EXPECT_TRUE(fs::exists(out + "/model-00002-of-00002.safetensors"));
  auto ck = Checkpoint::open(out);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ck.total_bytes(), 640u);
  float v;
  std::memcpy(&v, ck.get("b").data, 4);
  EXPECT_EQ(v, -2.f);
  EXPECT_NE(ck.get("a").file, ck.get("b").file);
  try {
    ck.get("missing.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.weight"), std::string::npos);
  }
}

TEST(Safetensors, CheckpointOpensSingleFileAndFolder) {
  TempDir dir;
  float x = 7.f;
  write_safetensors(dir.file("model.safetensors"), {{"x", DType::F32, {1}, &x, 4}});
  EXPECT_TRUE(Checkpoint::open(dir.file("")).has("x"));
  EXPECT_TRUE(Checkpoint::open(dir.file("model.safetensors")).has("x"));
  fs::remove(dir.file("model.safetensors"));
  EXPECT_THROW(Checkpoint::open(dir.file("")), Error);
  EXPECT_THROW(Checkpoint::open(dir.file("nothing-here")), Error);
}

TEST(SafetensorsErrors, TruncatedBelowHeaderLength) {
  TempDir dir;
  put(dir.file("t"), std::string("\x10\x00\x00", 3));
  expect_error(dir.file("t"), "truncated");
}

TEST(SafetensorsErrors, HeaderLengthPastEnd) {
  TempDir dir;
  put(dir.file("t"), raw_file("{}", "", 1000));
  expect_error(dir.file("t"), "runs past the end");
}

TEST(SafetensorsErrors, TruncatedData) {
  TempDir dir;
  put(dir.file("t"),
      raw_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", f32_bytes({1, 2})));
  expect_error(dir.file("t"), "outside the data buffer");
}

TEST(SafetensorsErrors, MalformedHeaderJson) {
  TempDir dir;
  put(dir.file("t"), raw_file(R"({"w":{"dtype":"F32",)", ""));
  expect_error(dir.file("t"), "malformed header JSON");
  put(dir.file("u"), raw_file(R"([1,2,3])", ""));
  expect_error(dir.file("u"), "expected a JSON object");
}

TEST(SafetensorsErrors, UnknownDtype) {
  TempDir dir;
  put(dir.file("t"),
      raw_file(R"({"w":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}})", f32_bytes({1})));
  expect_error(dir.file("t"), "unknown dtype \"F12\"");
}

TEST(SafetensorsErrors, OffsetsOutOfRange) {
  TempDir dir;
  put(dir.file("t"),
      raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", f32_bytes({1})));
  expect_error(dir.file("t"), "outside the data buffer");
  put(dir.file("u"),
      raw_file(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", f32_bytes({1})));
  expect_error(dir.file("u"), "begin is after end");
}

TEST(SafetensorsErrors, OverlappingOffsets) {
  TempDir dir;
  put(dir.file("t"), raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              f32_bytes({1, 2, 3})));
  expect_error(dir.file("t"), "overlaps");
}

TEST(SafetensorsErrors, GapAndTrailingBytes) {
  TempDir dir;
  put(dir.file("t"),
      raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", f32_bytes({1, 2})));
  expect_error(dir.file("t"), "gap");
  put(dir.file("u"),
      raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", f32_bytes({1, 2})));
  expect_error(dir.file("u"), "belong to no tensor");
}

TEST(SafetensorsErrors, ShapeDoesNotMatchByteLength) {
  TempDir dir;
  put(dir.file("t"),
      raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f32_bytes({1, 2})));
  expect_error(dir.file("t"), "needs 12 bytes but data_offsets span 8");
  put(dir.file("u"),
      raw_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", f32_bytes({1})));
  expect_error(dir.file("u"), "non-negative");
}

TEST(SafetensorsErrors, DuplicateNames) {
  TempDir dir;
  put(dir.file("t"), raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              f32_bytes({1, 2})));
  expect_error(dir.file("t"), "appears twice");
  float x = 0;
  EXPECT_THROW(write_safetensors(dir.file("dup"), {{"x", DType::F32, {1}, &x, 4},
                                                   {"x", DType::F32, {1}, &x, 4}}),
               Error);
  EXPECT_FALSE(fs::exists(dir.file("dup")));
}

TEST(SafetensorsErrors, MissingFields) {
  TempDir dir;
  put(dir.file("t"), raw_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", f32_bytes({1})));
  expect_error(dir.file("t"), "w.dtype");
  put(dir.file("u"), raw_file(R"({"w":{"dtype":"F32","shape":[1]}})", f32_bytes({1})));
  expect_error(dir.file("u"), "w.data_offsets");
}

TEST(SafetensorsErrors, IndexNamesMissingShard) {
  TempDir dir;
  float x = 1.f;
  write_safetensors(dir.file("model-00001-of-00002.safetensors"), {{"x", DType::F32, {1}, &x, 4}});
  write_json_file(dir.file("model.safetensors.index.json"),
                  {{"weight_map",
                    {{"x", "model-00001-of-00002.safetensors"},
                     {"y", "model-00002-of-00002.safetensors"}}}});
  try {
    Checkpoint::open(dir.file(""));
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("model-00002-of-00002.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("does not exist"), std::string::npos) << m;
    EXPECT_NE(m.find("model.safetensors.index.json"), std::string::npos) << m;
  }
  // A tensor the index places in a shard that does not hold it.
  write_json_file(dir.file("model.safetensors.index.json"),
                  {{"weight_map", {{"z", "model-00001-of-00002.safetensors"}}}});
  EXPECT_THROW(Checkpoint::open(dir.file("")), Error);
}

TEST(SafetensorsErrors, TensorInTwoShardsIsRefused) {
  TempDir dir;
  float a = 1.f, b = 2.f;
  write_safetensors(dir.file("model-00001-of-00002.safetensors"), {{"x", DType::F32, {1}, &a, 4}});
  write_safetensors(dir.file("model-00002-of-00002.safetensors"),
                    {{"x", DType::F32, {1}, &b, 4}, {"y", DType::F32, {1}, &b, 4}});
  write_json_file(dir.file("model.safetensors.index.json"),
                  {{"weight_map",
                    {{"x", "model-00001-of-00002.safetensors"}, {"y", "model-00002-of-00002.safetensors"}}}});
  try {
    Checkpoint::open(dir.file(""));
    FAIL() << "a tensor stored twice was accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("model-00002-of-00002.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("x"), std::string::npos) << m;
    EXPECT_NE(m.find("stored once"), std::string::npos) << m;
  }
}

TEST(SafetensorsErrors, EmptyFileAndMissingFile) {
  TempDir dir;
  put(dir.file("empty"), "");
  expect_error(dir.file("empty"), "truncated");
  expect_error(dir.file("absent"), "cannot open");
}
