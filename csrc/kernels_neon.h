// onebit NEON kernels (aarch64 Advanced SIMD, baseline on every ARMv8-A core: no run-time feature beyond
// HWCAP_ASIMD is needed). Same contracts as the x86 kernels of kernels.h; kernels.cpp dispatches to them for
// ISA_NEON. Built only on aarch64 (kernels_neon.cpp is an empty translation unit elsewhere).
//
// Bit-exactness: the integer kernels give the portable results bit for bit. The float kernels perform the
// AVX-512 kernels' operations in the same order: fgemm / fbits / flinear_small accumulate with fused
// multiply-adds (vfmaq_f32 rounds once, as vfmadd does) in k order starting from 0 or the bias; pack_ge,
// quant_rows and the affine epilogue multiply and add separately. The build must not contract a * b + c
// (GCC's default on aarch64 is -ffp-contract=fast: build with -ffp-contract=off, as the x86 build does).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace onebit {
#if defined(__aarch64__)

// pc[r * 32 + j] = popcount(X[r] op panel lane j) over W words (r < R <= MR): 8 channels x R rows per pass,
// byte counts (vcnt) summed in bytes for up to 31 words, then widened.
void pc_tile_neon(bool and_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W, uint32_t* pc);

// Thresholded XNOR tile (thr_tile_avx512's contract): bit(r, j) = (pc <= P[j]) ^ flip_j, or the OR over rows.
void thr_tile_neon(bool or_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W, const int64_t* P,
                   uint32_t flip, uint32_t* out, size_t ldo32, uint32_t* ormask);

// Short rows (W <= SHORT_W): thr_rows_avx512 / or_rows_avx512's contracts; the panel's words stay in
// registers (32 channels per pass for W = 1, 16 for W = 2, 8 for W = 3, 4) while the rows stream past.
void thr_rows_neon(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P, uint32_t* out,
                   size_t ldo32);
uint32_t or_rows_neon(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                      uint32_t valid);

// affine_bits_avx512's contract and operations (separate multiply and add, then clamp, subtract, compare).
void affine_bits_neon(bool and_mode, const uint32_t* pc, int R, const int32_t* px, const int32_t* ecnt,
                      const float* mul, const float* rowc, const float* add, int Kv, float lo, float hi, float off,
                      int cmax, uint32_t* out);

void fgemm_neon(const float* x, int R, int K, const float* wt, int N, float* z);
void pack_ge_neon(const float* z, int N, float off, uint64_t* out);
void fbits_neon(const float* x, int R, int K, const float* ws, const float* add, int N, float lo, float hi, float off,
                uint64_t* out, size_t ldo, bool or_mode);
void quant_rows_neon(const float* x, int M, int C, const float* mul, const float* add, uint64_t* out, size_t ldo);
bool flinear_small_neon(const float* x, int R, int K, const float* ws, const float* add, int N, float lo, float hi,
                        float* y);

#endif  // __aarch64__
}  // namespace onebit
