// onebit native kernels: packed-bit GEMM (XNOR / AND popcount), float GEMM, epilogues.
//
// Layout conventions (see docs/format.md):
//  * binary activations are points-major rows of 64-bit words; bit j of word w is channel 64w + j,
//    +1 <-> 1, -1 <-> 0 (sign(0) = +1); padding bits past the channel count are 0.
//  * binary weights are re-packed at load into panels of NP = 32 output channels:
//    panel p, word w, lane j -> wp[(p * W + w) * 32 + j] (zero words for padded channels).
// Little-endian hosts only (the file format is little-endian too).
#pragma once

#include <cstddef>
#include <cstdint>

namespace onebit {

constexpr int NP = 32;    // output channels per weight panel
constexpr int MR = 6;     // rows per register tile (AVX-512 path)

// ISA_NEON: aarch64 Advanced SIMD (kernels_neon.h), the only vector ISA of an aarch64 build.
enum Isa : int { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512 = 2, ISA_NEON = 3 };

// Best ISA this CPU supports (x86: run-time check with __builtin_cpu_supports; aarch64: HWCAP_ASIMD).
int detect_isa();
const char* isa_name(int isa);

// pc[r * 32 + j] = popcount(X[r] op panel lane j) over W words, r < R <= MR; op = XOR or AND.
void pc_tile(int isa, bool and_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W,
             uint32_t* pc);

// Fused XNOR tile with integer threshold epilogue: bit(r, j) = (pc <= P[j]) ^ flip_j.
// or_mode: OR the 32-bit masks of all R rows into *ormask; else write one uint32 per row at
// out[r * ldo32].  AVX-512 only (the caller checks).
void thr_tile_avx512(bool or_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W,
                     const int64_t* P, uint32_t flip, uint32_t* out, size_t ldo32, uint32_t* ormask);

// Short rows (W <= SHORT_W words, e.g. K = 64 or 128): the panel's 32 channels x W words stay in registers
// while the rows stream past, so there is no per-tile epilogue or reload (AVX-512 only).
// thr_rows: out[r * ldo32] = mask of (pc <= P) for rows r < M.
// or_rows: the OR over rows of that mask, i.e. [min over rows of pc <= P]; it stops as soon as every channel
// of `valid` is set, since a max-pooled sign bit cannot change after that (the early exit of OR pooling).
constexpr int SHORT_W = 4;
void thr_rows_avx512(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                     uint32_t* out, size_t ldo32);
uint32_t or_rows_avx512(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                        uint32_t valid);

// The same two short-row kernels on AVX2 (vpshufb nibble popcount, 8 channels per pass over the rows).
void thr_rows_avx2(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                   uint32_t* out, size_t ldo32);
uint32_t or_rows_avx2(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                      uint32_t valid);

// Vector epilogue of a binary layer with a float affine (DAB's AND product, or XNOR without integer bounds):
// for rows i < R of a popcount tile pc[i * 32 + j] (32 channels from c0), value
//   AND:  v = mul·(4 pc − 2 px_i + ecnt) + rowc·(2 px_i − Kv) + add     XNOR: v = mul·(Kv − 2 pc) + add
// clamped to [lo, hi], bit = [v − off >= 0]; out[i] = the 32-channel mask (channels >= cmax are 0). The float
// operations and their order are those of the portable epilogue, so every ISA gives the same bits.
void affine_bits_avx512(bool and_mode, const uint32_t* pc, int R, const int32_t* px, const int32_t* ecnt,
                        const float* mul, const float* rowc, const float* add, int Kv, float lo, float hi, float off,
                        int cmax, uint32_t* out);

// z[r * N + n] = sum_k x[r * K + k] * wt[k * N + n]   (wt is K x N, i.e. W transposed).
void fgemm(int isa, const float* x, int R, int K, const float* wt, int N, float* z);

// out[w] |= packed bits (z[c] - off >= 0) for c < N (64 channels per word; sign(0) = +1).
void pack_ge(int isa, const float* z, int N, float off, uint64_t* out);

// Float layer straight to bits: bit(r, n) = [clamp(add[n] + sum_k x[r,k] * ws[k,n], lo, hi) - off >= 0]
// (ws = W^T with the per-channel scale folded in). Rows go to out + r * ldo words; with or_mode all
// rows are ORed into out[0 .. words).
void fbits(int isa, const float* x, int R, int K, const float* ws, const float* add, int N, float lo, float hi,
           float off, uint64_t* out, size_t ldo, bool or_mode);

// Rows of floats to packed sign bits: bit(r, c) = [mul[c] * x[r, c] + add[c] >= 0] (mul/add may be null: plain
// sign, sign(0) = +1). Rows go to out + r * ldo words; padding bits are 0.
void quant_rows(int isa, const float* x, int M, int C, const float* mul, const float* add, uint64_t* out, size_t ldo);

// Small float layer (K <= 4 inputs) with float output: y[r, n] = clamp(add[n] + sum_k x[r, k] * ws[k, n], lo, hi).
// Returns false when this ISA / shape has no special kernel (the caller then takes the GEMM path).
bool flinear_small(int isa, const float* x, int R, int K, const float* ws, const float* add, int N, float lo, float hi,
                   float* y);

// ISA-generic forms of the thresholded-XNOR kernels and the affine epilogue: the AVX-512, AVX2 or NEON kernel where
// this ISA has one, else a portable loop with the same contract (pc_tile, then the compare).
// thr_fast_path: a vector kernel exists for this ISA and row width (AVX-512: any W; AVX2: W <= SHORT_W; NEON: any W).
bool thr_fast_path(int isa, int W);
// thr_rows_avx512 / or_rows_avx512's contracts (W <= SHORT_W).
void thr_rows_isa(int isa, const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                  uint32_t* out, size_t ldo32);
uint32_t or_rows_isa(int isa, const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                     uint32_t valid);
// thr_tile_avx512's contract (R <= MR).
void thr_tile_isa(int isa, bool or_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W,
                  const int64_t* P, uint32_t flip, uint32_t* out, size_t ldo32, uint32_t* ormask);
// affine_bits_avx512's contract; affine_bits_vector: this ISA has a vector kernel for it (AVX-512, NEON).
bool affine_bits_vector(int isa);
void affine_bits_isa(int isa, bool and_mode, const uint32_t* pc, int R, const int32_t* px, const int32_t* ecnt,
                     const float* mul, const float* rowc, const float* add, int Kv, float lo, float hi, float off,
                     int cmax, uint32_t* out);

}  // namespace onebit
