// lib/distributed on one process: the band split (a pure function of the layout) and the error
// agreement of collectively() on MPI_COMM_SELF. The multi-rank runs are tests/apps/test_mpi.cpp.
#include <doctest/doctest.h>
#include <mpi.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "emergent/distributed/collective.hpp"
#include "emergent/distributed/kernels.hpp"

using emergent::distributed::assign_bands;
using Eigen::Index;

namespace {
double entries(Index n1, Index n2, bool symmetric, Index band_rows, Index b) {
  const Index r0 = b * band_rows, rows = std::min(band_rows, n1 - r0);
  return static_cast<double>(rows) * static_cast<double>(symmetric ? n2 - r0 : n2);
}
}  // namespace

TEST_CASE("assign_bands: every open band to one rank, loads within one band of the average, deterministic") {
  for (const bool symmetric : {true, false})
    for (const Index n1 : {1, 63, 64, 640, 1000, 8000})
      for (const int ranks : {1, 2, 3, 4, 7, 64}) {
        CAPTURE(symmetric);
        CAPTURE(n1);
        CAPTURE(ranks);
        const Index n2 = symmetric ? n1 : 333, band_rows = 64;
        const Index bands = (n1 + band_rows - 1) / band_rows;
        std::vector<char> done(static_cast<std::size_t>(bands), 0);
        for (Index b = 0; b < bands; b += 3) done[b] = n1 > 64;  // some bands already written
        const std::vector<int> owner = assign_bands(n1, n2, symmetric, band_rows, done, ranks);
        REQUIRE(static_cast<Index>(owner.size()) == bands);
        std::vector<double> load(static_cast<std::size_t>(ranks), 0.0);
        double largest = 0, total = 0;
        for (Index b = 0; b < bands; ++b) {
          if (done[b]) {
            CHECK(owner[b] == -1);
            continue;
          }
          REQUIRE(owner[b] >= 0);
          REQUIRE(owner[b] < ranks);
          const double e = entries(n1, n2, symmetric, band_rows, b);
          load[owner[b]] += e;
          largest = std::max(largest, e);
          total += e;
        }
        CHECK(*std::max_element(load.begin(), load.end()) <= total / ranks + largest);
        CHECK(assign_bands(n1, n2, symmetric, band_rows, done, ranks) == owner);
      }
  CHECK_THROWS_AS(assign_bands(10, 10, true, 0, {}, 1), std::invalid_argument);
  CHECK_THROWS_AS(assign_bands(10, 10, true, 64, {0, 0}, 1), std::invalid_argument);
  CHECK_THROWS_AS(assign_bands(10, 10, true, 64, {0}, 0), std::invalid_argument);
}

TEST_CASE("default_band_rows: whole tiles, about 8 bands per rank, between 32 and 256 bands") {
  for (const int ranks : {1, 2, 4, 16, 64}) {
    CAPTURE(ranks);
    const Index target = std::clamp(8 * ranks, 32, 256);
    for (const Index n : {1, 64, 65, 8000, 16384, 100000, 1000000}) {
      CAPTURE(n);
      const Index rows = emergent::distributed::default_band_rows(n, ranks);
      CHECK(rows % 64 == 0);
      CHECK(rows >= 64);
      const Index bands = (n + rows - 1) / rows;
      CHECK(bands <= target);
      if (n >= 64 * 2 * target) CHECK(bands >= target / 2);  // not needlessly tall
    }
  }
}

TEST_CASE("collectively: a throw becomes the agreed error of its category; success passes") {
  int flag = 0;
  MPI_Initialized(&flag);
  if (!flag) MPI_Init(nullptr, nullptr);
  using namespace emergent::distributed;
  CHECK_NOTHROW(collectively(MPI_COMM_SELF, [] {}));
  try {
    collectively(MPI_COMM_SELF, [] { throw std::invalid_argument("bad x"); });
    FAIL("no throw");
  } catch (const CollectiveInvalidArgument& e) {
    CHECK(std::string(e.what()) == "bad x");  // one rank: no rank prefix
    CHECK(e.failing_rank() == 0);
    CHECK(is_agreed(e));
  }
  try {
    collectively(MPI_COMM_SELF, [] { throw std::bad_alloc(); });
    FAIL("no throw");
  } catch (const CollectiveError& e) {
    CHECK(e.kind() == FailureKind::OutOfMemory);
  }
  CHECK(!is_agreed(std::runtime_error("x")));
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
