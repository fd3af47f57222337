#include <gtest/gtest.h>

#include <cmath>

#include "io/error.h"
#include "remix/options.h"

using namespace c3po::remix;

TEST(CriticalLayers, ResolvesEveryRule) {
  EXPECT_EQ(CriticalLayers{}.resolve(16), (std::vector<int>{11, 12, 13, 14, 15}));  // default last 5
  EXPECT_EQ(CriticalLayers::parse("first:3").resolve(16), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(CriticalLayers::parse("middle:4").resolve(16), (std::vector<int>{6, 7, 8, 9}));
  EXPECT_EQ(CriticalLayers::parse("middle:3").resolve(4), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(CriticalLayers::parse("all").resolve(3), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(CriticalLayers::parse("9,2,2,5").resolve(16), (std::vector<int>{2, 5, 9}));
  EXPECT_EQ(CriticalLayers{}.resolve(4), (std::vector<int>{0, 1, 2, 3}));  // the default takes what there is
  EXPECT_EQ(CriticalLayers::parse("last:2").to_string(), "last:2");
}

TEST(CriticalLayers, RejectsBadSpecs) {
  EXPECT_THROW(CriticalLayers::parse("last"), c3po::Error);
  EXPECT_THROW(CriticalLayers::parse("last:0"), c3po::Error);
  EXPECT_THROW(CriticalLayers::parse("sideways:3"), c3po::Error);
  EXPECT_THROW(CriticalLayers::parse("1,x"), c3po::Error);
  EXPECT_THROW(CriticalLayers::parse("3,20").resolve(16), c3po::Error);
  // A count the user wrote must fit the model, like a listed layer.
  EXPECT_THROW(CriticalLayers::parse("last:99").resolve(16), c3po::Error);
  EXPECT_THROW(CriticalLayers::parse("first:5").resolve(4), c3po::Error);
  EXPECT_THROW(CriticalLayers::parse("middle:17").resolve(16), c3po::Error);
  EXPECT_EQ(CriticalLayers::parse("last:16").resolve(16).size(), 16u);
}

TEST(RemixTokens, ParsesLastLastJAndAll) {
  EXPECT_EQ(RemixTokens{}.count, 1);  // default: the last token, as the paper
  EXPECT_EQ(RemixTokens{}.to_string(), "last");
  EXPECT_EQ(RemixTokens::parse("last").count, 1);
  EXPECT_EQ(RemixTokens::parse("last:1").to_string(), "last");
  EXPECT_EQ(RemixTokens::parse("last:4").count, 4);
  EXPECT_EQ(RemixTokens::parse("last:4").to_string(), "last:4");
  EXPECT_TRUE(RemixTokens::parse("all").all());
  EXPECT_EQ(RemixTokens::parse("all").count, 0);
  EXPECT_EQ(RemixTokens::parse("all").to_string(), "all");
  for (const char* bad : {"last:0", "last:-2", "last:", "first:3", "3", "every", "last:x"}) {
    try {
      RemixTokens::parse(bad);
      ADD_FAILURE() << bad << " accepted";
    } catch (const c3po::Error& e) {
      EXPECT_EQ(e.field(), "tokens") << bad;
    }
  }
}

TEST(Kernels, HandComputedValues) {
  KernelSpec g;  // Gaussian, sigma 0.5
  EXPECT_DOUBLE_EQ(g.weight(1.0), 1.0);
  EXPECT_NEAR(g.weight(0.0), std::exp(-4.0), 1e-12);  // d^2 = 2, 2 sigma^2 = 0.5
  EXPECT_NEAR(KernelSpec::parse("gaussian:1").weight(0.5), std::exp(-0.5), 1e-12);
  EXPECT_DOUBLE_EQ(KernelSpec::parse("linear").weight(0.3), 0.3);
  EXPECT_DOUBLE_EQ(KernelSpec::parse("linear").weight(-0.3), 0.0);
  EXPECT_NEAR(KernelSpec::parse("poly:3").weight(0.5), 1.5 * 1.5 * 1.5, 1e-12);
  const double r = std::sqrt(3.0) * 1.0 / 0.5;  // cos 0.5 -> d = 1
  EXPECT_NEAR(KernelSpec::parse("matern").weight(0.5), (1 + r) * std::exp(-r), 1e-12);
  EXPECT_THROW(KernelSpec::parse("cubic"), c3po::Error);
  EXPECT_THROW(KernelSpec::parse("gaussian:-1"), c3po::Error);
}

TEST(Schedule, CosineAnnealingLikePyTorch) {
  OptimiserOptions o;  // 10 steps, 1e-2 -> 1e-5
  EXPECT_DOUBLE_EQ(o.lr_at(0), 1e-2);
  EXPECT_NEAR(o.lr_at(5), 1e-5 + 0.5 * (1e-2 - 1e-5), 1e-15);
  EXPECT_NEAR(o.lr_at(9), 1e-5 + 0.5 * (1e-2 - 1e-5) * (1 + std::cos(M_PI * 0.9)), 1e-15);
  o.schedule = Schedule::Constant;
  EXPECT_DOUBLE_EQ(o.lr_at(7), 1e-2);
}
