// Building blocks of the binary layers (linear.cpp), shared by the interpreter and the kernel test entry
// points of the Python binding: flips folded into the weights, the thresholded-XNOR vector paths, OR
// pooling with early exit and channel compaction, duplicate-row compaction.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "engine.h"
#include "kernels.h"

namespace onebit {

// A negative-slope channel (bit = [pc > P], "flip") is stored with its weight bits complemented over the
// K valid bits, so its bit becomes [pc' <= K − P − 1]; neg[n] = 1 marks it.
void fold_flips(uint64_t* w, int N, int W, int K, int64_t* P, const uint8_t* flip, uint8_t* neg);

// The vector paths of a thresholded XNOR layer exist for this ISA and row width (kernels.h).
inline bool has_fast_path(int isa, int W) { return thr_fast_path(isa, W); }

// channels of panel p that exist (the last panel may be partial)
inline uint32_t panel_valid(int N, int p) {
    const int c = std::min(NP, N - p * NP);
    return c >= 32 ? 0xFFFFFFFFu : ((1u << c) - 1);
}

// Thresholded bits of rows [r0, r1) for every panel (vector paths).
void thr_layer(int isa, const uint64_t* X, size_t ldx, int r0, int r1, const uint64_t* wp, int W, int panels,
               const int64_t* P, uint32_t* out32, size_t ldo32);
// OR pooling of one panel over rows [r0, r1) with the early exit (vector paths).
uint32_t or_panel(int isa, const uint64_t* X, size_t ldx, int r0, int r1, const uint64_t* wpp, int W, const int64_t* P,
                  uint32_t valid);
// OR pooling of a short-row layer with compaction of the still-unset channels; panels split over threads.
void or_pool_compact(int isa, const uint64_t* wp0, const int64_t* P0, int N, int W, const uint64_t* X, size_t ldx, int M,
                     uint32_t* out, int threads);
// Compact duplicate rows of a bit buffer in place (first occurrences, in order); returns the unique count.
int dedup_rows(uint64_t* rows, int M, int ld);
// Weights (N, W) re-packed into panels of NP channels.
avec<uint64_t> pack_panels(const uint64_t* w, int N, int W);

}  // namespace onebit
