// ISA-specific kernels. Only the functions carrying a target attribute use AVX2 / AVX-512
// encodings; the build itself targets baseline x86-64, and dispatch happens at run time.
#include "kernels.h"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#define ONEBIT_X86 1
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq")))
#define T256 __attribute__((target("avx2,fma,popcnt")))
#endif
#if defined(__aarch64__)
#include "kernels_neon.h"
#define ONEBIT_NEON 1
#if defined(__linux__)
#include <sys/auxv.h>
#endif
#endif

namespace onebit {

int detect_isa() {
#if ONEBIT_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vpopcntdq"))
        return ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("fma"))
        return ISA_AVX2;
#endif
#if ONEBIT_NEON
#if defined(__linux__) && defined(HWCAP_ASIMD)
    if (!(getauxval(AT_HWCAP) & HWCAP_ASIMD)) return ISA_SCALAR;
#endif
    return ISA_NEON;
#endif
    return ISA_SCALAR;
}

const char* isa_name(int isa) {
    switch (isa) {
        case ISA_AVX512: return "avx512";
        case ISA_AVX2: return "avx2";
        case ISA_NEON: return "neon";
        default: return "scalar";
    }
}

// ---------------------------------------------------------------- portable path
static inline uint32_t popc64_portable(uint64_t v) {
    // SWAR popcount: portable C, no popcnt instruction assumed
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return static_cast<uint32_t>((v * 0x0101010101010101ULL) >> 56);
}

template <bool AND>
static void pc_tile_scalar(const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W, uint32_t* pc) {
    for (int r = 0; r < R; ++r) {
        uint32_t acc[NP] = {0};
        const uint64_t* x = X + r * ldx;
        for (int w = 0; w < W; ++w) {
            const uint64_t a = x[w];
            const uint64_t* b = wp + static_cast<size_t>(w) * NP;
            for (int j = 0; j < NP; ++j) acc[j] += popc64_portable(AND ? (a & b[j]) : (a ^ b[j]));
        }
        std::memcpy(pc + r * NP, acc, sizeof(acc));
    }
}

static inline __attribute__((always_inline)) void fgemm_scalar(const float* x, int R, int K, const float* wt, int N, float* z) {
    for (int r = 0; r < R; ++r) {
        float* zr = z + static_cast<size_t>(r) * N;
        for (int n = 0; n < N; ++n) zr[n] = 0.f;
        const float* xr = x + static_cast<size_t>(r) * K;
        for (int k = 0; k < K; ++k) {
            const float a = xr[k];
            const float* w = wt + static_cast<size_t>(k) * N;
            for (int n = 0; n < N; ++n) zr[n] += a * w[n];
        }
    }
}

static void pack_ge_scalar(const float* z, int N, float off, uint64_t* out) {
    for (int w = 0; w * 64 < N; ++w) {
        uint64_t m = 0;
        const int cend = (N - 64 * w) < 64 ? (N - 64 * w) : 64;
        for (int j = 0; j < cend; ++j) m |= static_cast<uint64_t>(z[64 * w + j] - off >= 0.f) << j;
        out[w] |= m;
    }
}

static void fbits_scalar(const float* x, int R, int K, const float* ws, const float* add, int N, float lo, float hi,
                         float off, uint64_t* out, size_t ldo, bool or_mode) {
    float v[64];
    for (int r = 0; r < R; ++r) {
        const float* xr = x + static_cast<size_t>(r) * K;
        uint64_t* o = or_mode ? out : out + static_cast<size_t>(r) * ldo;
        for (int c0 = 0; c0 < N; c0 += 64) {
            const int cn = (N - c0) < 64 ? (N - c0) : 64;
            for (int j = 0; j < cn; ++j) v[j] = add[c0 + j];
            for (int k = 0; k < K; ++k) {
                const float a = xr[k];
                const float* w = ws + static_cast<size_t>(k) * N + c0;
                for (int j = 0; j < cn; ++j) v[j] += a * w[j];
            }
            uint64_t m = 0;
            for (int j = 0; j < cn; ++j) {
                const float t = v[j] < lo ? lo : (v[j] > hi ? hi : v[j]);
                m |= static_cast<uint64_t>(t - off >= 0.f) << j;
            }
            if (or_mode) o[c0 >> 6] |= m;
            else o[c0 >> 6] = m;
        }
    }
}

#if ONEBIT_X86
// small first layers (K <= 4 inputs, N <= 64 channels, e.g. xyz -> 64): weights, bias and clamps stay in
// registers, one row is KK broadcasts + 4*KK FMAs + 4 compares
template <int KK>
T512 static void fbits_small_avx512(const float* x, int R, const float* ws, const float* add, int N, float lo,
                                    float hi, float off, uint64_t* out, size_t ldo, bool or_mode) {
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi), voff = _mm512_set1_ps(off);
    __mmask16 lm[4];
    __m512 w[KK][4], b[4];
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
        const int c = 16 * g;
        lm[g] = c >= N ? 0 : (N - c) >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (N - c)) - 1);
        b[g] = _mm512_maskz_loadu_ps(lm[g], add + (c < N ? c : 0));
#pragma GCC unroll 4
        for (int k = 0; k < KK; ++k) w[k][g] = _mm512_maskz_loadu_ps(lm[g], ws + static_cast<size_t>(k) * N + (c < N ? c : 0));
    }
    uint64_t acc_or = 0;
    for (int r = 0; r < R; ++r) {
        const float* xr = x + static_cast<size_t>(r) * KK;
        __m512 xb[KK];
#pragma GCC unroll 4
        for (int k = 0; k < KK; ++k) xb[k] = _mm512_set1_ps(xr[k]);
        uint64_t m = 0;
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
            __m512 v = b[g];
#pragma GCC unroll 4
            for (int k = 0; k < KK; ++k) v = _mm512_fmadd_ps(xb[k], w[k][g], v);
            v = _mm512_sub_ps(_mm512_min_ps(_mm512_max_ps(v, vlo), vhi), voff);
            m |= static_cast<uint64_t>(_mm512_mask_cmp_ps_mask(lm[g], v, _mm512_setzero_ps(), _CMP_GE_OQ)) << (16 * g);
        }
        if (or_mode) acc_or |= m;
        else out[static_cast<size_t>(r) * ldo] = m;
    }
    if (or_mode) out[0] |= acc_or;
}

// one row: 16 channels per zmm, FMA over K, compare -> 16-bit masks assembled into 64-bit words
T512 static void fbits_avx512(const float* x, int R, int K, const float* ws, const float* add, int N, float lo,
                              float hi, float off, uint64_t* out, size_t ldo, bool or_mode) {
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi), voff = _mm512_set1_ps(off);
    const int words = (N + 63) / 64;
    for (int r = 0; r < R; ++r) {
        const float* xr = x + static_cast<size_t>(r) * K;
        uint64_t* o = or_mode ? out : out + static_cast<size_t>(r) * ldo;
        for (int w = 0; w < words; ++w) {
            uint64_t m = 0;
            for (int g = 0; g < 4; ++g) {
                const int c = 64 * w + 16 * g;
                if (c >= N) break;
                const __mmask16 lm = (N - c) >= 16 ? static_cast<__mmask16>(0xFFFF)
                                                   : static_cast<__mmask16>((1u << (N - c)) - 1);
                __m512 acc = _mm512_maskz_loadu_ps(lm, add + c);
                for (int k = 0; k < K; ++k)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(xr[k]), _mm512_maskz_loadu_ps(lm, ws + static_cast<size_t>(k) * N + c), acc);
                acc = _mm512_sub_ps(_mm512_min_ps(_mm512_max_ps(acc, vlo), vhi), voff);
                const __mmask16 bm = _mm512_mask_cmp_ps_mask(lm, acc, _mm512_setzero_ps(), _CMP_GE_OQ);
                m |= static_cast<uint64_t>(bm) << (16 * g);
            }
            if (or_mode) o[w] |= m;
            else o[w] = m;
        }
    }
}

T512 static void pack_ge_avx512(const float* z, int N, float off, uint64_t* out) {
    const __m512 o = _mm512_set1_ps(off);
    int c = 0;
    for (; c + 16 <= N; c += 16) {
        const __mmask16 m = _mm512_cmp_ps_mask(_mm512_sub_ps(_mm512_loadu_ps(z + c), o), _mm512_setzero_ps(), _CMP_GE_OQ);
        out[c >> 6] |= static_cast<uint64_t>(m) << (c & 63);
    }
    for (; c < N; ++c) out[c >> 6] |= static_cast<uint64_t>(z[c] - off >= 0.f) << (c & 63);
}

T256 static void pack_ge_avx2(const float* z, int N, float off, uint64_t* out) {
    const __m256 o = _mm256_set1_ps(off);
    int c = 0;
    for (; c + 8 <= N; c += 8) {
        const int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(_mm256_loadu_ps(z + c), o), _mm256_setzero_ps(), _CMP_GE_OQ));
        out[c >> 6] |= static_cast<uint64_t>(static_cast<unsigned>(m)) << (c & 63);
    }
    for (; c < N; ++c) out[c >> 6] |= static_cast<uint64_t>(z[c] - off >= 0.f) << (c & 63);
}

// ---------------------------------------------------------------- AVX2 path (vpshufb popcount)
T256 static inline __m256i popcnt8_avx2(__m256i v, __m256i lut, __m256i low) {
    __m256i lo = _mm256_and_si256(v, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

template <bool AND>
T256 static void pc_tile_avx2(const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W, uint32_t* pc) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i zero = _mm256_setzero_si256();
    for (int r = 0; r < R; r += 2) {
        const int rows = (R - r) >= 2 ? 2 : 1;
        const uint64_t* x0 = X + r * ldx;
        const uint64_t* x1 = X + (r + rows - 1) * ldx;
        for (int g = 0; g < NP; g += 8) {  // 8 outputs = two ymm of 4 words
            __m256i t00 = zero, t01 = zero, t10 = zero, t11 = zero;
            for (int w0 = 0; w0 < W; w0 += 31) {  // byte counters hold at most 31 * 8 = 248
                const int w1 = (w0 + 31 < W) ? w0 + 31 : W;
                __m256i c00 = zero, c01 = zero, c10 = zero, c11 = zero;
                for (int w = w0; w < w1; ++w) {
                    const uint64_t* b = wp + static_cast<size_t>(w) * NP + g;
                    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
                    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 4));
                    const __m256i a0 = _mm256_set1_epi64x(static_cast<long long>(x0[w]));
                    const __m256i a1 = _mm256_set1_epi64x(static_cast<long long>(x1[w]));
                    if (AND) {
                        c00 = _mm256_add_epi8(c00, popcnt8_avx2(_mm256_and_si256(a0, b0), lut, low));
                        c01 = _mm256_add_epi8(c01, popcnt8_avx2(_mm256_and_si256(a0, b1), lut, low));
                        c10 = _mm256_add_epi8(c10, popcnt8_avx2(_mm256_and_si256(a1, b0), lut, low));
                        c11 = _mm256_add_epi8(c11, popcnt8_avx2(_mm256_and_si256(a1, b1), lut, low));
                    } else {
                        c00 = _mm256_add_epi8(c00, popcnt8_avx2(_mm256_xor_si256(a0, b0), lut, low));
                        c01 = _mm256_add_epi8(c01, popcnt8_avx2(_mm256_xor_si256(a0, b1), lut, low));
                        c10 = _mm256_add_epi8(c10, popcnt8_avx2(_mm256_xor_si256(a1, b0), lut, low));
                        c11 = _mm256_add_epi8(c11, popcnt8_avx2(_mm256_xor_si256(a1, b1), lut, low));
                    }
                }
                // vpsadbw sums the 8 byte counts of each 64-bit lane = one output channel
                t00 = _mm256_add_epi64(t00, _mm256_sad_epu8(c00, zero));
                t01 = _mm256_add_epi64(t01, _mm256_sad_epu8(c01, zero));
                t10 = _mm256_add_epi64(t10, _mm256_sad_epu8(c10, zero));
                t11 = _mm256_add_epi64(t11, _mm256_sad_epu8(c11, zero));
            }
            alignas(32) uint64_t tmp[16];
            _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), t00);
            _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 4), t01);
            _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), t10);
            _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 12), t11);
            for (int j = 0; j < 8; ++j) pc[r * NP + g + j] = static_cast<uint32_t>(tmp[j]);
            if (rows == 2)
                for (int j = 0; j < 8; ++j) pc[(r + 1) * NP + g + j] = static_cast<uint32_t>(tmp[8 + j]);
        }
    }
}

// ---- AVX2 short rows: 8 channels (two ymm of 4 words) per pass over the rows, weights in registers; byte
// popcounts summed over the W words, then vpsadbw to one count per channel
template <int W>
T256 static inline void short_counts_avx2(const uint64_t* x, const __m256i (&w)[W][2], __m256i lut, __m256i low,
                                          __m256i& s0, __m256i& s1) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i c0 = zero, c1 = zero;
#pragma GCC unroll 4
    for (int k = 0; k < W; ++k) {
        const __m256i a = _mm256_set1_epi64x(static_cast<long long>(x[k]));
        c0 = _mm256_add_epi8(c0, popcnt8_avx2(_mm256_xor_si256(a, w[k][0]), lut, low));
        c1 = _mm256_add_epi8(c1, popcnt8_avx2(_mm256_xor_si256(a, w[k][1]), lut, low));
    }
    s0 = _mm256_sad_epu8(c0, zero);
    s1 = _mm256_sad_epu8(c1, zero);
}

// 8 bits: [pc <= P] for the two groups of 4 channels (p = P + 1, so the test is p > pc)
T256 static inline uint32_t short_mask_avx2(__m256i p0, __m256i p1, __m256i s0, __m256i s1) {
    return static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(p0, s0)))) |
           (static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(p1, s1)))) << 4);
}

template <int W, bool OR>
T256 static uint32_t short_rows_avx2(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, const int64_t* P,
                                     uint8_t* out8, size_t ldo8, uint32_t valid) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi64x(1);
    uint32_t result = 0;
    for (int sp = 0; sp < NP / 8; ++sp) {
        const uint32_t vmask = (valid >> (8 * sp)) & 0xFFu;
        __m256i w[W][2];
#pragma GCC unroll 4
        for (int k = 0; k < W; ++k)
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h)
                w[k][h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + k * NP + 8 * sp + 4 * h));
        // pc <= P  <=>  P + 1 > pc
        const __m256i p0 = _mm256_add_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(P + 8 * sp)), one);
        const __m256i p1 = _mm256_add_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(P + 8 * sp + 4)), one);
        __m256i mn0 = _mm256_set1_epi32(1 << 30), mn1 = mn0;
        if (OR) {
            if (!vmask) continue;
            uint32_t m = 0;
            for (int r0 = 0; r0 < M && (m & vmask) != vmask; r0 += 32) {
                const int r1 = (M - r0) < 32 ? M : r0 + 32;
                for (int r = r0; r < r1; ++r) {
                    __m256i s0, s1;
                    short_counts_avx2<W>(X + r * ldx, w, lut, low, s0, s1);
                    mn0 = _mm256_min_epu32(mn0, s0);  // counts < 2^31 in the low dword, high dword 0
                    mn1 = _mm256_min_epu32(mn1, s1);
                }
                m = short_mask_avx2(p0, p1, mn0, mn1);
            }
            result |= (m & vmask) << (8 * sp);
            continue;
        }
        for (int r = 0; r < M; ++r) {
            __m256i s0, s1;
            short_counts_avx2<W>(X + r * ldx, w, lut, low, s0, s1);
            out8[r * ldo8 + sp] = static_cast<uint8_t>(short_mask_avx2(p0, p1, s0, s1));
        }
    }
    return result;
}

T256 static void thr_rows_avx2_impl(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                                    uint32_t* out, size_t ldo32) {
    uint8_t* o8 = reinterpret_cast<uint8_t*>(out);  // little-endian: byte sp of the panel's 32-bit mask
    const size_t ld8 = 4 * ldo32;
    switch (W) {
        case 1: short_rows_avx2<1, false>(X, ldx, M, wp, P, o8, ld8, ~0u); break;
        case 2: short_rows_avx2<2, false>(X, ldx, M, wp, P, o8, ld8, ~0u); break;
        case 3: short_rows_avx2<3, false>(X, ldx, M, wp, P, o8, ld8, ~0u); break;
        default: short_rows_avx2<4, false>(X, ldx, M, wp, P, o8, ld8, ~0u); break;
    }
}

T256 static uint32_t or_rows_avx2_impl(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W,
                                       const int64_t* P, uint32_t valid) {
    switch (W) {
        case 1: return short_rows_avx2<1, true>(X, ldx, M, wp, P, nullptr, 0, valid);
        case 2: return short_rows_avx2<2, true>(X, ldx, M, wp, P, nullptr, 0, valid);
        case 3: return short_rows_avx2<3, true>(X, ldx, M, wp, P, nullptr, 0, valid);
        default: return short_rows_avx2<4, true>(X, ldx, M, wp, P, nullptr, 0, valid);
    }
}

T256 static void fgemm_avx2(const float* x, int R, int K, const float* wt, int N, float* z) {
    fgemm_scalar(x, R, K, wt, N, z);  // same loop, vectorised by the compiler for AVX2+FMA here
}

// ---------------------------------------------------------------- AVX-512 path (vpopcntq)
template <int R, bool AND>
T512 static inline void pc_tile_512(const uint64_t* X, size_t ldx, const uint64_t* wp, int W, uint32_t* pc) {
    __m512i acc[R][4];
    #pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
        #pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_si512();
    for (int w = 0; w < W; ++w) {
        const uint64_t* b = wp + static_cast<size_t>(w) * NP;
        const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 8);
        const __m512i b2 = _mm512_loadu_si512(b + 16), b3 = _mm512_loadu_si512(b + 24);
        #pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
            const __m512i a = _mm512_set1_epi64(static_cast<long long>(X[i * ldx + w]));
            if (AND) {
                acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_popcnt_epi64(_mm512_and_si512(a, b0)));
                acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_popcnt_epi64(_mm512_and_si512(a, b1)));
                acc[i][2] = _mm512_add_epi64(acc[i][2], _mm512_popcnt_epi64(_mm512_and_si512(a, b2)));
                acc[i][3] = _mm512_add_epi64(acc[i][3], _mm512_popcnt_epi64(_mm512_and_si512(a, b3)));
            } else {
                acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_popcnt_epi64(_mm512_xor_si512(a, b0)));
                acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_popcnt_epi64(_mm512_xor_si512(a, b1)));
                acc[i][2] = _mm512_add_epi64(acc[i][2], _mm512_popcnt_epi64(_mm512_xor_si512(a, b2)));
                acc[i][3] = _mm512_add_epi64(acc[i][3], _mm512_popcnt_epi64(_mm512_xor_si512(a, b3)));
            }
        }
    }
    #pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
        #pragma GCC unroll 4
        for (int j = 0; j < 4; ++j)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(pc + i * NP + 8 * j), _mm512_cvtepi64_epi32(acc[i][j]));
}

template <bool AND>
T512 static void pc_tile_avx512(const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W, uint32_t* pc) {
    switch (R) {
        case 1: pc_tile_512<1, AND>(X, ldx, wp, W, pc); break;
        case 2: pc_tile_512<2, AND>(X, ldx, wp, W, pc); break;
        case 3: pc_tile_512<3, AND>(X, ldx, wp, W, pc); break;
        case 4: pc_tile_512<4, AND>(X, ldx, wp, W, pc); break;
        case 5: pc_tile_512<5, AND>(X, ldx, wp, W, pc); break;
        default: pc_tile_512<6, AND>(X, ldx, wp, W, pc); break;
    }
}

// 6x32 register tile (24 zmm accumulators), threshold epilogue on the 64-bit popcounts
template <int R, bool OR>
T512 static inline void thr_tile_512(const uint64_t* X, size_t ldx, const uint64_t* wp, int W, const int64_t* P,
                                     uint32_t flip, uint32_t* out, size_t ldo32, uint32_t* ormask) {
    __m512i acc[R][4];
    #pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
        #pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_si512();
    for (int w = 0; w < W; ++w) {
        const uint64_t* b = wp + static_cast<size_t>(w) * NP;
        const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 8);
        const __m512i b2 = _mm512_loadu_si512(b + 16), b3 = _mm512_loadu_si512(b + 24);
        #pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
            const __m512i a = _mm512_set1_epi64(static_cast<long long>(X[i * ldx + w]));
            acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_popcnt_epi64(_mm512_xor_si512(a, b0)));
            acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_popcnt_epi64(_mm512_xor_si512(a, b1)));
            acc[i][2] = _mm512_add_epi64(acc[i][2], _mm512_popcnt_epi64(_mm512_xor_si512(a, b2)));
            acc[i][3] = _mm512_add_epi64(acc[i][3], _mm512_popcnt_epi64(_mm512_xor_si512(a, b3)));
        }
    }
    const __m512i p0 = _mm512_loadu_si512(P), p1 = _mm512_loadu_si512(P + 8);
    const __m512i p2 = _mm512_loadu_si512(P + 16), p3 = _mm512_loadu_si512(P + 24);
    if (OR) {
        // OR over rows of [pc <= P] is [min over rows of pc <= P]: 5 vpminuq per column group, one compare
        __m512i m0 = acc[0][0], m1 = acc[0][1], m2 = acc[0][2], m3 = acc[0][3];
#pragma GCC unroll 8
        for (int i = 1; i < R; ++i) {
            m0 = _mm512_min_epu64(m0, acc[i][0]);
            m1 = _mm512_min_epu64(m1, acc[i][1]);
            m2 = _mm512_min_epu64(m2, acc[i][2]);
            m3 = _mm512_min_epu64(m3, acc[i][3]);
        }
        const uint32_t m = static_cast<uint32_t>(_mm512_cmple_epi64_mask(m0, p0)) |
                           (static_cast<uint32_t>(_mm512_cmple_epi64_mask(m1, p1)) << 8) |
                           (static_cast<uint32_t>(_mm512_cmple_epi64_mask(m2, p2)) << 16) |
                           (static_cast<uint32_t>(_mm512_cmple_epi64_mask(m3, p3)) << 24);
        *ormask |= m ^ flip;  // the engine stores flip channels complemented, so flip is 0 there
        return;
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
        uint32_t m = static_cast<uint32_t>(_mm512_cmple_epi64_mask(acc[i][0], p0)) |
                     (static_cast<uint32_t>(_mm512_cmple_epi64_mask(acc[i][1], p1)) << 8) |
                     (static_cast<uint32_t>(_mm512_cmple_epi64_mask(acc[i][2], p2)) << 16) |
                     (static_cast<uint32_t>(_mm512_cmple_epi64_mask(acc[i][3], p3)) << 24);
        out[i * ldo32] = m ^ flip;
    }
    (void)ormask;
}

T512 static void thr_tile_avx512_impl(bool or_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp,
                                      int W, const int64_t* P, uint32_t flip, uint32_t* out, size_t ldo32,
                                      uint32_t* ormask) {
#define ONEBIT_THR_CASE(n)                                                                   \
    case n:                                                                                  \
        if (or_mode)                                                                         \
            thr_tile_512<n, true>(X, ldx, wp, W, P, flip, out, ldo32, ormask);               \
        else                                                                                 \
            thr_tile_512<n, false>(X, ldx, wp, W, P, flip, out, ldo32, ormask);              \
        break;
    switch (R) {
        ONEBIT_THR_CASE(1)
        ONEBIT_THR_CASE(2)
        ONEBIT_THR_CASE(3)
        ONEBIT_THR_CASE(4)
        ONEBIT_THR_CASE(5)
        default:
            ONEBIT_THR_CASE(6)
    }
#undef ONEBIT_THR_CASE
}

// ---- short rows: weights in registers, rows streamed (see kernels.h)
template <int W>
T512 static inline void short_pc(const uint64_t* x, const __m512i (&w)[W][4], __m512i (&s)[4]) {
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
        s[g] = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_set1_epi64(static_cast<long long>(x[0])), w[0][g]));
#pragma GCC unroll 4
        for (int k = 1; k < W; ++k)
            s[g] = _mm512_add_epi64(s[g], _mm512_popcnt_epi64(_mm512_xor_si512(
                                              _mm512_set1_epi64(static_cast<long long>(x[k])), w[k][g])));
    }
}

T512 static inline uint32_t short_mask(const __m512i (&s)[4], const __m512i (&p)[4]) {
    const __mmask16 lo = _mm512_kunpackb(_mm512_cmple_epi64_mask(s[1], p[1]), _mm512_cmple_epi64_mask(s[0], p[0]));
    const __mmask16 hi = _mm512_kunpackb(_mm512_cmple_epi64_mask(s[3], p[3]), _mm512_cmple_epi64_mask(s[2], p[2]));
    return static_cast<uint32_t>(_mm512_kunpackw(hi, lo));
}

// Bits out in 32-bit lanes: the panel's qword words are split into dword halves once per call, so a row costs
// 4W xor + 4W vpopcntd and just two compares for 32 channels (the qword form needs four compares and three
// mask merges, which compete with vpopcnt for the same port on Intel cores).
template <int W>
T512 static void thr_rows_512(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, const int64_t* P,
                              uint32_t* out, size_t ldo32) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    __m512i w[2 * W][2], p[2];  // [dword chunk h of the row][channels 16 h2 .. 16 h2 + 15]
#pragma GCC unroll 2
    for (int h2 = 0; h2 < 2; ++h2) {
        p[h2] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_loadu_si512(P + 16 * h2))),
                                   _mm512_cvtepi64_epi32(_mm512_loadu_si512(P + 16 * h2 + 8)), 1);
#pragma GCC unroll 4
        for (int k = 0; k < W; ++k) {
            const __m512i a = _mm512_loadu_si512(wp + k * NP + 16 * h2), b = _mm512_loadu_si512(wp + k * NP + 16 * h2 + 8);
            w[2 * k][h2] = _mm512_permutex2var_epi32(a, even, b);     // low halves of the 16 channels' word k
            w[2 * k + 1][h2] = _mm512_permutex2var_epi32(a, odd, b);  // high halves
        }
    }
    for (int r = 0; r < M; ++r) {
        const uint32_t* x = reinterpret_cast<const uint32_t*>(X + r * ldx);
        __m512i s0, s1;
        {
            const __m512i xb = _mm512_set1_epi32(static_cast<int>(x[0]));
            s0 = _mm512_popcnt_epi32(_mm512_xor_si512(xb, w[0][0]));
            s1 = _mm512_popcnt_epi32(_mm512_xor_si512(xb, w[0][1]));
        }
#pragma GCC unroll 8
        for (int h = 1; h < 2 * W; ++h) {
            const __m512i xb = _mm512_set1_epi32(static_cast<int>(x[h]));
            s0 = _mm512_add_epi32(s0, _mm512_popcnt_epi32(_mm512_xor_si512(xb, w[h][0])));
            s1 = _mm512_add_epi32(s1, _mm512_popcnt_epi32(_mm512_xor_si512(xb, w[h][1])));
        }
        const __mmask16 m0 = _mm512_cmple_epi32_mask(s0, p[0]), m1 = _mm512_cmple_epi32_mask(s1, p[1]);
        out[r * ldo32] = static_cast<uint32_t>(_mm512_kunpackw(m1, m0));
    }
}

template <int W>
T512 static uint32_t or_rows_512(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, const int64_t* P,
                                 uint32_t valid) {
    constexpr int CHECK = 32;  // rows between early-exit checks
    __m512i w[W][4], p[4], mn[4];
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
        p[g] = _mm512_loadu_si512(P + 8 * g);
        mn[g] = _mm512_set1_epi64(1LL << 40);
#pragma GCC unroll 4
        for (int k = 0; k < W; ++k) w[k][g] = _mm512_loadu_si512(wp + k * NP + 8 * g);
    }
    uint32_t m = 0;
    for (int r0 = 0; r0 < M; r0 += CHECK) {
        const int r1 = (M - r0) < CHECK ? M : r0 + CHECK;
        for (int r = r0; r < r1; ++r) {
            __m512i s[4];
            short_pc<W>(X + r * ldx, w, s);
#pragma GCC unroll 4
            for (int g = 0; g < 4; ++g) mn[g] = _mm512_min_epu64(mn[g], s[g]);
        }
        m = short_mask(mn, p);
        if ((m & valid) == valid) break;
    }
    return m & valid;
}

T512 static void thr_rows_avx512_impl(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W,
                                      const int64_t* P, uint32_t* out, size_t ldo32) {
    switch (W) {
        case 1: return thr_rows_512<1>(X, ldx, M, wp, P, out, ldo32);
        case 2: return thr_rows_512<2>(X, ldx, M, wp, P, out, ldo32);
        case 3: return thr_rows_512<3>(X, ldx, M, wp, P, out, ldo32);
        default: return thr_rows_512<4>(X, ldx, M, wp, P, out, ldo32);
    }
}

T512 static uint32_t or_rows_avx512_impl(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W,
                                         const int64_t* P, uint32_t valid) {
    switch (W) {
        case 1: return or_rows_512<1>(X, ldx, M, wp, P, valid);
        case 2: return or_rows_512<2>(X, ldx, M, wp, P, valid);
        case 3: return or_rows_512<3>(X, ldx, M, wp, P, valid);
        default: return or_rows_512<4>(X, ldx, M, wp, P, valid);
    }
}

// ---- float rows to bits, small float layers
T512 static void quant_rows_avx512(const float* x, int M, int C, const float* mul, const float* add, uint64_t* out,
                                   size_t ldo) {
    const int words = (C + 63) / 64;
    for (int r = 0; r < M; ++r) {
        const float* xr = x + static_cast<size_t>(r) * C;
        uint64_t* o = out + static_cast<size_t>(r) * ldo;
        for (int w = 0; w < words; ++w) {
            uint64_t m = 0;
#pragma GCC unroll 4
            for (int g = 0; g < 4; ++g) {
                const int c = 64 * w + 16 * g;
                if (c >= C) break;
                const __mmask16 lm = (C - c) >= 16 ? static_cast<__mmask16>(0xFFFF)
                                                   : static_cast<__mmask16>((1u << (C - c)) - 1);
                __m512 v = _mm512_maskz_loadu_ps(lm, xr + c);
                if (mul)  // multiply, then add (no FMA): the same rounding as the portable path
                    v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_maskz_loadu_ps(lm, mul + c)), _mm512_maskz_loadu_ps(lm, add + c));
                m |= static_cast<uint64_t>(_mm512_mask_cmp_ps_mask(lm, v, _mm512_setzero_ps(), _CMP_GE_OQ)) << (16 * g);
            }
            o[w] = m;
        }
    }
}

template <int KK>
T512 static void flinear_small_avx512(const float* x, int R, const float* ws, const float* add, int N, float lo,
                                      float hi, float* y) {
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int c0 = 0; c0 < N; c0 += 64) {  // 64 channels of weights in registers, all rows streamed
        __mmask16 lm[4];
        __m512 w[KK][4], b[4];
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) {
            const int c = c0 + 16 * g;
            lm[g] = c >= N ? 0 : (N - c) >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (N - c)) - 1);
            b[g] = _mm512_maskz_loadu_ps(lm[g], add + (c < N ? c : 0));
#pragma GCC unroll 4
            for (int k = 0; k < KK; ++k) w[k][g] = _mm512_maskz_loadu_ps(lm[g], ws + static_cast<size_t>(k) * N + (c < N ? c : 0));
        }
        for (int r = 0; r < R; ++r) {
            const float* xr = x + static_cast<size_t>(r) * KK;
            float* yr = y + static_cast<size_t>(r) * N;
#pragma GCC unroll 4
            for (int g = 0; g < 4; ++g) {
                if (!lm[g]) break;
                __m512 v = b[g];
#pragma GCC unroll 4
                for (int k = 0; k < KK; ++k) v = _mm512_fmadd_ps(_mm512_set1_ps(xr[k]), w[k][g], v);
                _mm512_mask_storeu_ps(yr + c0 + 16 * g, lm[g], _mm512_min_ps(_mm512_max_ps(v, vlo), vhi));
            }
        }
    }
}

T512 static void affine_bits_avx512_impl(bool and_mode, const uint32_t* pc, int R, const int32_t* px,
                                         const int32_t* ecnt, const float* mul, const float* rowc, const float* add,
                                         int Kv, float lo, float hi, float off, int cmax, uint32_t* out) {
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi), voff = _mm512_set1_ps(off);
    __mmask16 lm[2];
    __m512 m[2], a[2], rc[2];
    __m512i e[2];
    for (int h = 0; h < 2; ++h) {
        const int c = 16 * h;
        lm[h] = c >= cmax ? 0 : (cmax - c) >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (cmax - c)) - 1);
        m[h] = _mm512_loadu_ps(mul + c);
        a[h] = _mm512_loadu_ps(add + c);
        rc[h] = and_mode ? _mm512_loadu_ps(rowc + c) : _mm512_setzero_ps();
        e[h] = and_mode ? _mm512_loadu_si512(ecnt + c) : _mm512_setzero_si512();
    }
    const __m512i kv = _mm512_set1_epi32(Kv);
    for (int i = 0; i < R; ++i) {
        uint32_t mask = 0;
        for (int h = 0; h < 2; ++h) {
            const __m512i p = _mm512_loadu_si512(pc + i * NP + 16 * h);
            __m512 v;
            if (and_mode) {
                const __m512i dot = _mm512_add_epi32(
                    _mm512_sub_epi32(_mm512_slli_epi32(p, 2), _mm512_set1_epi32(2 * px[i])), e[h]);
                const float sum = static_cast<float>(2 * px[i] - Kv);
                v = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(m[h], _mm512_cvtepi32_ps(dot)),
                                                _mm512_mul_ps(rc[h], _mm512_set1_ps(sum))), a[h]);
            } else {
                const __m512i dot = _mm512_sub_epi32(kv, _mm512_slli_epi32(p, 1));
                v = _mm512_add_ps(_mm512_mul_ps(m[h], _mm512_cvtepi32_ps(dot)), a[h]);
            }
            v = _mm512_sub_ps(_mm512_min_ps(_mm512_max_ps(v, vlo), vhi), voff);
            mask |= static_cast<uint32_t>(_mm512_mask_cmp_ps_mask(lm[h], v, _mm512_setzero_ps(), _CMP_GE_OQ)) << (16 * h);
        }
        out[i] = mask;
    }
}

// register-blocked float GEMM: RB rows x 64 columns of accumulators (4*RB zmm), masked column tails
template <int RB>
T512 static inline void fgemm_block_512(const float* x, int K, const float* wt, int N, float* z, int c0) {
    __mmask16 lm[4];
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
        const int c = c0 + 16 * g;
        lm[g] = c >= N ? 0 : (N - c) >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (N - c)) - 1);
    }
    __m512 acc[RB][4];
#pragma GCC unroll 8
    for (int i = 0; i < RB; ++i)
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) acc[i][g] = _mm512_setzero_ps();
    for (int k = 0; k < K; ++k) {
        const float* w = wt + static_cast<size_t>(k) * N + c0;
        __m512 b[4];
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g) b[g] = _mm512_maskz_loadu_ps(lm[g], lm[g] ? w + 16 * g : w);
#pragma GCC unroll 8
        for (int i = 0; i < RB; ++i) {
            const __m512 a = _mm512_set1_ps(x[static_cast<size_t>(i) * K + k]);
#pragma GCC unroll 4
            for (int g = 0; g < 4; ++g) acc[i][g] = _mm512_fmadd_ps(a, b[g], acc[i][g]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < RB; ++i)
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g)
            if (lm[g]) _mm512_mask_storeu_ps(z + static_cast<size_t>(i) * N + c0 + 16 * g, lm[g], acc[i][g]);
}

T512 static void fgemm_avx512(const float* x, int R, int K, const float* wt, int N, float* z) {
    int r = 0;
    for (; r + 6 <= R; r += 6)  // 6 x 64 tile: 24 accumulators, 4 weight loads and 6 broadcasts per k
        for (int c0 = 0; c0 < N; c0 += 64) fgemm_block_512<6>(x + static_cast<size_t>(r) * K, K, wt, N, z + static_cast<size_t>(r) * N, c0);
    for (; r + 4 <= R; r += 4)
        for (int c0 = 0; c0 < N; c0 += 64) fgemm_block_512<4>(x + static_cast<size_t>(r) * K, K, wt, N, z + static_cast<size_t>(r) * N, c0);
    for (; r < R; ++r)
        for (int c0 = 0; c0 < N; c0 += 64) fgemm_block_512<1>(x + static_cast<size_t>(r) * K, K, wt, N, z + static_cast<size_t>(r) * N, c0);
}
#endif  // ONEBIT_X86

void pc_tile(int isa, bool and_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W,
             uint32_t* pc) {
#if ONEBIT_X86
    if (isa == ISA_AVX512) {
        if (and_mode) pc_tile_avx512<true>(X, ldx, R, wp, W, pc);
        else pc_tile_avx512<false>(X, ldx, R, wp, W, pc);
        return;
    }
    if (isa == ISA_AVX2) {
        if (and_mode) pc_tile_avx2<true>(X, ldx, R, wp, W, pc);
        else pc_tile_avx2<false>(X, ldx, R, wp, W, pc);
        return;
    }
#endif
#if ONEBIT_NEON
    if (isa == ISA_NEON) return pc_tile_neon(and_mode, X, ldx, R, wp, W, pc);
#endif
    (void)isa;
    if (and_mode) pc_tile_scalar<true>(X, ldx, R, wp, W, pc);
    else pc_tile_scalar<false>(X, ldx, R, wp, W, pc);
}

void thr_tile_avx512(bool or_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W,
                     const int64_t* P, uint32_t flip, uint32_t* out, size_t ldo32, uint32_t* ormask) {
#if ONEBIT_X86
    thr_tile_avx512_impl(or_mode, X, ldx, R, wp, W, P, flip, out, ldo32, ormask);
#else
    (void)or_mode; (void)X; (void)ldx; (void)R; (void)wp; (void)W; (void)P; (void)flip; (void)out;
    (void)ldo32; (void)ormask;
#endif
}

void thr_rows_avx512(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                     uint32_t* out, size_t ldo32) {
#if ONEBIT_X86
    thr_rows_avx512_impl(X, ldx, M, wp, W, P, out, ldo32);
#else
    (void)X; (void)ldx; (void)M; (void)wp; (void)W; (void)P; (void)out; (void)ldo32;
#endif
}

uint32_t or_rows_avx512(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                        uint32_t valid) {
#if ONEBIT_X86
    return or_rows_avx512_impl(X, ldx, M, wp, W, P, valid);
#else
    (void)X; (void)ldx; (void)M; (void)wp; (void)W; (void)P; (void)valid;
    return 0;
#endif
}

void pack_ge(int isa, const float* z, int N, float off, uint64_t* out) {
#if ONEBIT_X86
    if (isa == ISA_AVX512) return pack_ge_avx512(z, N, off, out);
    if (isa == ISA_AVX2) return pack_ge_avx2(z, N, off, out);
#endif
#if ONEBIT_NEON
    if (isa == ISA_NEON) return pack_ge_neon(z, N, off, out);
#endif
    (void)isa;
    pack_ge_scalar(z, N, off, out);
}

void fbits(int isa, const float* x, int R, int K, const float* ws, const float* add, int N, float lo, float hi,
           float off, uint64_t* out, size_t ldo, bool or_mode) {
#if ONEBIT_X86
    if (isa == ISA_AVX512) {
        if (N <= 64) {
            switch (K) {
                case 1: return fbits_small_avx512<1>(x, R, ws, add, N, lo, hi, off, out, ldo, or_mode);
                case 2: return fbits_small_avx512<2>(x, R, ws, add, N, lo, hi, off, out, ldo, or_mode);
                case 3: return fbits_small_avx512<3>(x, R, ws, add, N, lo, hi, off, out, ldo, or_mode);
                case 4: return fbits_small_avx512<4>(x, R, ws, add, N, lo, hi, off, out, ldo, or_mode);
                default: break;
            }
        }
        return fbits_avx512(x, R, K, ws, add, N, lo, hi, off, out, ldo, or_mode);
    }
#endif
#if ONEBIT_NEON
    if (isa == ISA_NEON) return fbits_neon(x, R, K, ws, add, N, lo, hi, off, out, ldo, or_mode);
#endif
    (void)isa;
    fbits_scalar(x, R, K, ws, add, N, lo, hi, off, out, ldo, or_mode);
}

void thr_rows_avx2(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                   uint32_t* out, size_t ldo32) {
#if ONEBIT_X86
    thr_rows_avx2_impl(X, ldx, M, wp, W, P, out, ldo32);
#else
    (void)X; (void)ldx; (void)M; (void)wp; (void)W; (void)P; (void)out; (void)ldo32;
#endif
}

uint32_t or_rows_avx2(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                      uint32_t valid) {
#if ONEBIT_X86
    return or_rows_avx2_impl(X, ldx, M, wp, W, P, valid);
#else
    (void)X; (void)ldx; (void)M; (void)wp; (void)W; (void)P; (void)valid;
    return 0;
#endif
}

void affine_bits_avx512(bool and_mode, const uint32_t* pc, int R, const int32_t* px, const int32_t* ecnt,
                        const float* mul, const float* rowc, const float* add, int Kv, float lo, float hi, float off,
                        int cmax, uint32_t* out) {
#if ONEBIT_X86
    affine_bits_avx512_impl(and_mode, pc, R, px, ecnt, mul, rowc, add, Kv, lo, hi, off, cmax, out);
#else
    (void)and_mode; (void)pc; (void)R; (void)px; (void)ecnt; (void)mul; (void)rowc; (void)add; (void)Kv; (void)lo;
    (void)hi; (void)off; (void)cmax; (void)out;
#endif
}

void quant_rows(int isa, const float* x, int M, int C, const float* mul, const float* add, uint64_t* out, size_t ldo) {
#if ONEBIT_X86
    if (isa == ISA_AVX512) return quant_rows_avx512(x, M, C, mul, add, out, ldo);
#endif
#if ONEBIT_NEON
    if (isa == ISA_NEON) return quant_rows_neon(x, M, C, mul, add, out, ldo);
#endif
    const int words = (C + 63) / 64;
    for (int r = 0; r < M; ++r) {
        const float* xr = x + static_cast<size_t>(r) * C;
        uint64_t* o = out + static_cast<size_t>(r) * ldo;
        for (int w = 0; w < words; ++w) o[w] = 0;
        for (int c = 0; c < C; ++c) {
            const float v = mul ? mul[c] * xr[c] + add[c] : xr[c];
            o[c >> 6] |= static_cast<uint64_t>(v >= 0.f) << (c & 63);
        }
    }
    (void)isa;
}

bool flinear_small(int isa, const float* x, int R, int K, const float* ws, const float* add, int N, float lo, float hi,
                   float* y) {
#if ONEBIT_X86
    if (isa == ISA_AVX512) {
        switch (K) {
            case 1: flinear_small_avx512<1>(x, R, ws, add, N, lo, hi, y); return true;
            case 2: flinear_small_avx512<2>(x, R, ws, add, N, lo, hi, y); return true;
            case 3: flinear_small_avx512<3>(x, R, ws, add, N, lo, hi, y); return true;
            case 4: flinear_small_avx512<4>(x, R, ws, add, N, lo, hi, y); return true;
            default: return false;
        }
    }
#endif
#if ONEBIT_NEON
    if (isa == ISA_NEON) return flinear_small_neon(x, R, K, ws, add, N, lo, hi, y);
#endif
    (void)isa; (void)x; (void)R; (void)K; (void)ws; (void)add; (void)N; (void)lo; (void)hi; (void)y;
    return false;
}

void fgemm(int isa, const float* x, int R, int K, const float* wt, int N, float* z) {
#if ONEBIT_X86
    if (isa == ISA_AVX512) return fgemm_avx512(x, R, K, wt, N, z);
    if (isa == ISA_AVX2) return fgemm_avx2(x, R, K, wt, N, z);
#endif
#if ONEBIT_NEON
    if (isa == ISA_NEON) return fgemm_neon(x, R, K, wt, N, z);
#endif
    (void)isa;
    fgemm_scalar(x, R, K, wt, N, z);
}

// ---------------------------------------------------------------- ISA-generic thresholded / affine kernels
bool thr_fast_path(int isa, int W) {
    return isa == ISA_AVX512 || (isa == ISA_AVX2 && W <= SHORT_W) || isa == ISA_NEON;
}

// portable thresholded tile: pc_tile, then bit = pc <= P (flips folded by the caller, or applied by flip)
static uint32_t thr_tile_portable(int isa, bool or_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp,
                                  int W, const int64_t* P, uint32_t flip, uint32_t* out, size_t ldo32) {
    uint32_t pc[MR * NP];
    uint32_t acc = 0;
    pc_tile(isa, false, X, ldx, R, wp, W, pc);
    for (int i = 0; i < R; ++i) {
        uint32_t m = 0;
        for (int j = 0; j < NP; ++j) m |= static_cast<uint32_t>(static_cast<int64_t>(pc[i * NP + j]) <= P[j]) << j;
        if (or_mode) acc |= m;
        else out[i * ldo32] = m ^ flip;
    }
    return acc ^ flip;
}

void thr_rows_isa(int isa, const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                  uint32_t* out, size_t ldo32) {
#if ONEBIT_X86
    if (isa == ISA_AVX512) return thr_rows_avx512_impl(X, ldx, M, wp, W, P, out, ldo32);
    if (isa == ISA_AVX2) return thr_rows_avx2_impl(X, ldx, M, wp, W, P, out, ldo32);
#endif
#if ONEBIT_NEON
    if (isa == ISA_NEON) return thr_rows_neon(X, ldx, M, wp, W, P, out, ldo32);
#endif
    for (int r = 0; r < M; r += MR) {
        const int R = (M - r) < MR ? (M - r) : MR;
        thr_tile_portable(isa, false, X + static_cast<size_t>(r) * ldx, ldx, R, wp, W, P, 0,
                          out + static_cast<size_t>(r) * ldo32, ldo32);
    }
}

uint32_t or_rows_isa(int isa, const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                     uint32_t valid) {
#if ONEBIT_X86
    if (isa == ISA_AVX512) return or_rows_avx512_impl(X, ldx, M, wp, W, P, valid);
    if (isa == ISA_AVX2) return or_rows_avx2_impl(X, ldx, M, wp, W, P, valid);
#endif
#if ONEBIT_NEON
    if (isa == ISA_NEON) return or_rows_neon(X, ldx, M, wp, W, P, valid);
#endif
    uint32_t m = 0;
    for (int r = 0; r < M && (m & valid) != valid; r += MR) {
        const int R = (M - r) < MR ? (M - r) : MR;
        m |= thr_tile_portable(isa, true, X + static_cast<size_t>(r) * ldx, ldx, R, wp, W, P, 0, nullptr, 0);
    }
    return m & valid;
}

void thr_tile_isa(int isa, bool or_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W,
                  const int64_t* P, uint32_t flip, uint32_t* out, size_t ldo32, uint32_t* ormask) {
#if ONEBIT_X86
    if (isa == ISA_AVX512) return thr_tile_avx512_impl(or_mode, X, ldx, R, wp, W, P, flip, out, ldo32, ormask);
#endif
#if ONEBIT_NEON
    if (isa == ISA_NEON) return thr_tile_neon(or_mode, X, ldx, R, wp, W, P, flip, out, ldo32, ormask);
#endif
    const uint32_t m = thr_tile_portable(isa, or_mode, X, ldx, R, wp, W, P, flip, out, ldo32);
    if (or_mode) *ormask |= m;
}

bool affine_bits_vector(int isa) { return isa == ISA_AVX512 || isa == ISA_NEON; }

void affine_bits_isa(int isa, bool and_mode, const uint32_t* pc, int R, const int32_t* px, const int32_t* ecnt,
                     const float* mul, const float* rowc, const float* add, int Kv, float lo, float hi, float off,
                     int cmax, uint32_t* out) {
#if ONEBIT_X86
    if (isa == ISA_AVX512)
        return affine_bits_avx512_impl(and_mode, pc, R, px, ecnt, mul, rowc, add, Kv, lo, hi, off, cmax, out);
#endif
#if ONEBIT_NEON
    if (isa == ISA_NEON)
        return affine_bits_neon(and_mode, pc, R, px, ecnt, mul, rowc, add, Kv, lo, hi, off, cmax, out);
#endif
    // the engine's portable epilogue: exact integers, one float affine (multiply, add: no FMA), clamp, compare
    for (int i = 0; i < R; ++i) {
        uint32_t mask = 0;
        for (int j = 0; j < cmax && j < NP; ++j) {
            float v;
            if (and_mode) {
                const int32_t dot = 4 * static_cast<int32_t>(pc[i * NP + j]) - 2 * px[i] + ecnt[j];
                const int32_t sum = 2 * px[i] - Kv;
                v = mul[j] * static_cast<float>(dot) + rowc[j] * static_cast<float>(sum) + add[j];
            } else {
                v = mul[j] * static_cast<float>(Kv - 2 * static_cast<int32_t>(pc[i * NP + j])) + add[j];
            }
            v = v < lo ? lo : v;
            v = hi < v ? hi : v;
            if (v - off >= 0.f) mask |= 1u << j;
        }
        out[i] = mask;
    }
}

}  // namespace onebit
