// The planner: a validated graph (graph.h) and a point count N become the engine's plan (engine.h): one
// buffer per value, one record per op with the tensors in the engine's form. What depends on N is
// resolved here: EMA-max offsets δ*(n) of the rows pooled together, and for an XNOR layer with bit output
// and a float affine the integer popcount bounds of its sign for that offset.
#pragma once

#include <cstdint>
#include <vector>

#include "engine.h"
#include "graph.h"

namespace onebit {

struct Plan {
    std::vector<BufSpec> bufs;
    std::vector<Rec> recs;
    int output = 0;
};

// Throws std::invalid_argument (naming the file and the op) where a rule has no value for this N
// (BiPointNet's official EMA offsets exist only for their point counts) or a channel is not monotone.
Plan make_plan(const Graph& g, int64_t n_points);

// δ*(n) = Φ⁻¹(0.5^(1/n)) (BiPointNet's EMA-max offset), through the upper tail for precision at large n;
// the same double as Python's -NormalDist().inv_cdf(-expm1(log(0.5) / n)).
double ema_offset(int64_t n);

// Integer threshold of bit = [clamp(s·dot + c, lo, hi) − offset ≥ 0] over the XNOR dots {−k, −k+2, …, k}
// (each evaluated in float32, as the float epilogue would): dot ≥ tau (flip 0) or dot ≤ tau (flip 1).
// Returns false when the bit is not monotone in the dot.
bool threshold(float s, float c, float lo, float hi, float offset, int64_t k, int64_t& tau, uint8_t& flip);
// The engine's form: bit = (popcount(x xor w) ≤ P) xor flip, P in [−1, k].
int64_t popcount_bound(int64_t tau, uint8_t flip, int64_t k);

}  // namespace onebit
