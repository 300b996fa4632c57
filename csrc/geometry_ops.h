// onebit native geometric ops for point models (DGCNN, PointNet++): kNN, farthest point sampling,
// ball query, gathers / groupings of float or packed-bit rows, pooling over row groups, concat.
//
// Every op works on one cloud (the engine runs clouds in parallel) and reproduces the torch
// reference in onebit.geometry index for index (docs/format.md, "Geometric ops"):
//  * squared distances of <= 4 coordinates are Σ_c (a_c − b_c)² accumulated in channel order in
//    float32 (the build targets baseline x86-64 without FMA contraction, as torch's elementwise ops);
//  * wider features (kNN only): candidates by ‖a‖² + ‖b‖² − 2 a·b in float32, re-ranked by the exact
//    distance in double (the neighbours of exact arithmetic, as torch in float64);
//  * ties: kNN orders by (distance, index), FPS takes the lowest index among equal maxima, ball
//    query takes points in index order and an empty ball takes the nearest point (lowest index).
// Index rows are int32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace onebit {
namespace geo {

// k nearest rows of x (N rows, row stride ld) to every row, over channels [0, C): idx (N, k), ordered by
// (squared distance, index). C <= 4: exact channel-ordered float32 sum; else float GEMM-form candidates
// (isa picks fgemm) re-ranked by the exact distance in double. threads > 1: rows split over OpenMP threads.
void knn(int isa, const float* x, int N, int ld, int C, int k, int32_t* idx, int threads = 1);

// Farthest point sampling over channels [0, C) of x (N rows): S indices, idx[0] = start.
void fps(const float* x, int N, int ld, int C, int S, int start, int32_t* idx);

// Ball query: for each of the S centres (rows of ctr, stride ldc, channels [0, C)), the first K rows of
// xyz (N rows, stride ldx) with squared distance < r2 in index order, padded with the first found;
// none inside: the nearest row fills the whole row of idx (S, K).
void ball_query(const float* xyz, int N, int ldx, const float* ctr, int S, int ldc, int C, float r2, int K,
                int32_t* idx, int threads = 1);

// out row r = x row idx[r] (R rows): float rows of C values (strides ldx, ldo) or packed rows of W words.
void gather_f(const float* x, int ldx, int C, const int32_t* idx, int R, float* out, int ldo);
void gather_b(const uint64_t* x, int W, const int32_t* idx, int R, uint64_t* out);

// DGCNN edge features, row (i, t) with j = idx[i*k + t] (N*k rows):
//   float: [x_j − x_i ‖ x_i] (2C values); bits: [x_j >= x_i ‖ x_i >= 0] (2C bits, sign(0) = +1).
void edge_f(const float* x, int N, int ld, int C, const int32_t* idx, int k, float* out);
void edge_b(int isa, const float* x, int N, int ld, int C, const int32_t* idx, int k, uint64_t* out, int ldo);

// PointNet++ grouping, row (s, t) with j = idx[s*K + t] (S*K rows), coordinates [0, D) of xyz / ctr:
//   float: [xyz_j − ctr_s ‖ f_j] (D + F values); bits: [xyz_j >= ctr_s ‖ sign(f_j)] (D + F bits),
//   features float (fF, stride ldf) or packed bits (fB, stride ldf words) or none (F = 0).
void group_f(const float* xyz, int ldx, const float* ctr, int ldc, int D, const float* fF, int ldf, int F,
             const int32_t* idx, int S, int K, float* out);
void group_b(const float* xyz, int ldx, const float* ctr, int ldc, int D, const float* fF, const uint64_t* fB,
             int ldf, int F, const int32_t* idx, int S, int K, uint64_t* out, int ldo);

// Pool consecutive groups of g rows of x (rows, C): max (then − off) or mean (accumulated in double).
void pool_groups(const float* x, int rows, int C, int g, bool avg, float off, float* out);

// dst bits [bit, bit + n) = src bits [0, n) (dst bits past them untouched; dst must be zeroed first).
void put_bits(uint64_t* dst, int bit, const uint64_t* src, int n);

}  // namespace geo
}  // namespace onebit
