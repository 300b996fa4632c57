// NEON (aarch64 Advanced SIMD) kernels; contracts in kernels_neon.h / kernels.h. An empty translation unit on
// every other architecture, so the x86 builds compile it unchanged.
//
// Popcounts: NEON has no 64-bit popcount; vcnt counts the bits of each byte. A 64-bit word of a row XOR (or
// AND) a weight word gives 8 byte counts (<= 8 each); the kernels add those byte vectors over up to 31 words
// (<= 248 per byte) and only then fold the 8 bytes of a channel into one count with pairwise adds. Channel
// counts are compared as uint16 (pc < Q with Q = clamp(P + 1, 0, 65535), exact for counts <= 65472, i.e.
// W <= 1023 words) or, in the short-row kernels with W <= 3, as bytes.
#include "kernels_neon.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include <cmath>
#include <cstring>
#include <type_traits>

// GCC's pre-allocation scheduler hoists the XORs of a whole tile ahead of their popcounts and then spills
// accumulators (24 of the 32 vector registers are accumulators in a 6-row tile); without it the loops keep
// everything in registers (checked in the generated assembly, docs/runtime.md). Scheduling only.
#pragma GCC optimize("no-schedule-insns")

namespace onebit {
namespace {

constexpr int CHUNK = 31;    // words whose byte counts fit in a byte (31 * 8 = 248)
constexpr int MAXW16 = 1023; // words whose channel counts fit in uint16 (1023 * 64 = 65472)

alignas(16) const uint8_t kBitW[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};

template <bool AND>
inline uint8x16_t pcnt(uint64x2_t a, uint64x2_t b) {
    return vcntq_u8(vreinterpretq_u8_u64(AND ? vandq_u64(a, b) : veorq_u64(a, b)));
}

// vector q of a group holds the byte counts of channels 2q (low half) and 2q + 1 (high half): the 8 channel
// counts of the group as uint16, any byte value
inline uint16x8_t fold8_wide(uint8x16_t a0, uint8x16_t a1, uint8x16_t a2, uint8x16_t a3) {
    const uint16x8_t t0 = vpaddq_u16(vpaddlq_u8(a0), vpaddlq_u8(a1));
    const uint16x8_t t1 = vpaddq_u16(vpaddlq_u8(a2), vpaddlq_u8(a3));
    return vpaddq_u16(t0, t1);
}

// the same when every byte is <= 32 (at most 4 words added): two byte-wise pairwise adds, then one widening
inline uint16x8_t fold8_short(uint8x16_t a0, uint8x16_t a1, uint8x16_t a2, uint8x16_t a3) {
    return vpaddlq_u8(vpaddq_u8(vpaddq_u8(a0, a1), vpaddq_u8(a2, a3)));
}

// lanes of all-ones / zero to bit masks (bit j = lane j)
inline uint32_t bits8_u16(uint16x8_t m) { return vaddv_u8(vand_u8(vmovn_u16(m), vld1_u8(kBitW))); }
inline uint32_t bits8_u8(uint8x8_t m) { return vaddv_u8(vand_u8(m, vld1_u8(kBitW))); }
inline uint32_t bits16_u8(uint8x16_t m) {
    uint8x16_t c = vandq_u8(m, vld1q_u8(kBitW));
    c = vpaddq_u8(c, c);
    c = vpaddq_u8(c, c);
    c = vpaddq_u8(c, c);
    return vgetq_lane_u16(vreinterpretq_u16_u8(c), 0);
}
inline uint32_t bits32_u8(uint8x16_t lo, uint8x16_t hi) {
    const uint8x16_t w = vld1q_u8(kBitW);
    uint8x16_t c = vpaddq_u8(vandq_u8(lo, w), vandq_u8(hi, w));
    c = vpaddq_u8(c, c);
    c = vpaddq_u8(c, c);
    return vgetq_lane_u32(vreinterpretq_u32_u8(c), 0);
}
inline uint32_t bits16_u32(uint32x4_t m0, uint32x4_t m1, uint32x4_t m2, uint32x4_t m3) {
    const uint16x8_t a = vuzp1q_u16(vreinterpretq_u16_u32(m0), vreinterpretq_u16_u32(m1));
    const uint16x8_t b = vuzp1q_u16(vreinterpretq_u16_u32(m2), vreinterpretq_u16_u32(m3));
    return bits16_u8(vuzp1q_u8(vreinterpretq_u8_u16(a), vreinterpretq_u8_u16(b)));
}

// Q[j] = clamp(P[j] + 1, 0, 65535) for 8 channels: pc <= P  <=>  pc < Q for every count pc <= 65472
inline uint16x8_t thr_q8(const int64_t* P) {
    const int64x2_t one = vdupq_n_s64(1);
    const uint32x4_t lo = vcombine_u32(vqmovun_s64(vqaddq_s64(vld1q_s64(P), one)),
                                       vqmovun_s64(vqaddq_s64(vld1q_s64(P + 2), one)));
    const uint32x4_t hi = vcombine_u32(vqmovun_s64(vqaddq_s64(vld1q_s64(P + 4), one)),
                                       vqmovun_s64(vqaddq_s64(vld1q_s64(P + 6), one)));
    return vcombine_u16(vqmovn_u32(lo), vqmovn_u32(hi));
}

inline void store16(uint64_t* word, int piece, uint32_t m) {  // bits [16 piece, 16 piece + 16) of *word
    const uint16_t v = static_cast<uint16_t>(m);
    std::memcpy(reinterpret_cast<unsigned char*>(word) + 2 * piece, &v, 2);  // little-endian
}

// ---------------------------------------------------------------- popcount tiles
// counts of 8 channels (group g of the panel) over words [w0, w1), w1 - w0 <= CHUNK, for R rows
template <int R, bool AND>
inline void chunk_counts(const uint64_t* X, size_t ldx, const uint64_t* wp, int w0, int w1, int g,
                         uint16x8_t (&cnt)[R]) {
    uint8x16_t acc[R][4];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) acc[i][q] = vdupq_n_u8(0);
    const uint64_t* xr[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) xr[i] = X + i * ldx + w0;
    const uint64_t* b = wp + static_cast<size_t>(w0) * NP + 8 * g;
    for (int w = w0; w < w1; ++w, b += NP) {
        const uint64x2_t b0 = vld1q_u64(b), b1 = vld1q_u64(b + 2), b2 = vld1q_u64(b + 4), b3 = vld1q_u64(b + 6);
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
            const uint64x2_t a = vld1q_dup_u64(xr[i]++);
            acc[i][0] = vaddq_u8(acc[i][0], pcnt<AND>(a, b0));
            acc[i][1] = vaddq_u8(acc[i][1], pcnt<AND>(a, b1));
            acc[i][2] = vaddq_u8(acc[i][2], pcnt<AND>(a, b2));
            acc[i][3] = vaddq_u8(acc[i][3], pcnt<AND>(a, b3));
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) cnt[i] = fold8_wide(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
}

// counts of group g over all W <= MAXW16 words, as uint16
template <int R, bool AND>
inline void tile_counts16(const uint64_t* X, size_t ldx, const uint64_t* wp, int W, int g, uint16x8_t (&cnt)[R]) {
    if (W <= CHUNK) return chunk_counts<R, AND>(X, ldx, wp, 0, W, g, cnt);
    uint16_t tot[R][8] = {};
    for (int w0 = 0; w0 < W; w0 += CHUNK) {
        uint16x8_t part[R];
        chunk_counts<R, AND>(X, ldx, wp, w0, W - w0 < CHUNK ? W : w0 + CHUNK, g, part);
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) vst1q_u16(tot[i], vaddq_u16(vld1q_u16(tot[i]), part[i]));
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) cnt[i] = vld1q_u16(tot[i]);
}

template <int R, bool AND>
void pc_tile_t(const uint64_t* X, size_t ldx, const uint64_t* wp, int W, uint32_t* pc) {
    for (int g = 0; g < 4; ++g) {
        if (W <= MAXW16) {
            uint16x8_t c[R];
            tile_counts16<R, AND>(X, ldx, wp, W, g, c);
#pragma GCC unroll 8
            for (int i = 0; i < R; ++i) {
                vst1q_u32(pc + i * NP + 8 * g, vmovl_u16(vget_low_u16(c[i])));
                vst1q_u32(pc + i * NP + 8 * g + 4, vmovl_high_u16(c[i]));
            }
            continue;
        }
        for (int i = 0; i < R; ++i) std::memset(pc + i * NP + 8 * g, 0, 8 * sizeof(uint32_t));
        for (int w0 = 0; w0 < W; w0 += CHUNK) {  // very long rows: chunk sums added in uint32
            uint16x8_t part[R];
            chunk_counts<R, AND>(X, ldx, wp, w0, W - w0 < CHUNK ? W : w0 + CHUNK, g, part);
            for (int i = 0; i < R; ++i) {
                uint32_t* p = pc + i * NP + 8 * g;
                vst1q_u32(p, vaddq_u32(vld1q_u32(p), vmovl_u16(vget_low_u16(part[i]))));
                vst1q_u32(p + 4, vaddq_u32(vld1q_u32(p + 4), vmovl_high_u16(part[i])));
            }
        }
    }
}

template <int R, bool OR>
void thr_tile_t(const uint64_t* X, size_t ldx, const uint64_t* wp, int W, const int64_t* P, uint32_t flip,
                uint32_t* out, size_t ldo32, uint32_t* ormask) {
    uint32_t m[R];
    if (W > MAXW16) {  // counts past uint16: the tile's counts, compared in 64 bits
        uint32_t pc[R * NP];
        pc_tile_t<R, false>(X, ldx, wp, W, pc);
        for (int i = 0; i < R; ++i) {
            m[i] = 0;
            for (int j = 0; j < NP; ++j) m[i] |= static_cast<uint32_t>(static_cast<int64_t>(pc[i * NP + j]) <= P[j]) << j;
        }
    } else {
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) m[i] = 0;
        for (int g = 0; g < 4; ++g) {
            const uint16x8_t q = thr_q8(P + 8 * g);
            uint16x8_t c[R];
            tile_counts16<R, false>(X, ldx, wp, W, g, c);
            if (OR) {  // OR over rows of [pc <= P] = [min over rows of pc <= P]
                uint16x8_t mn = c[0];
#pragma GCC unroll 8
                for (int i = 1; i < R; ++i) mn = vminq_u16(mn, c[i]);
                m[0] |= bits8_u16(vcltq_u16(mn, q)) << (8 * g);
            } else {
#pragma GCC unroll 8
                for (int i = 0; i < R; ++i) m[i] |= bits8_u16(vcltq_u16(c[i], q)) << (8 * g);
            }
        }
        if (OR) {
            *ormask |= m[0] ^ flip;
            return;
        }
    }
    if (OR) {
        uint32_t acc = 0;
        for (int i = 0; i < R; ++i) acc |= m[i];
        *ormask |= acc ^ flip;
        return;
    }
    for (int i = 0; i < R; ++i) out[i * ldo32] = m[i] ^ flip;
}

// ---------------------------------------------------------------- short rows (W <= SHORT_W)
// lane-type overloads of the short-row kernel (bytes or uint16)
inline uint8x16_t vmin(uint8x16_t a, uint8x16_t b) { return vminq_u8(a, b); }
inline uint16x8_t vmin(uint16x8_t a, uint16x8_t b) { return vminq_u16(a, b); }
inline uint8x16_t vlt(uint8x16_t a, uint8x16_t b) { return vcltq_u8(a, b); }
inline uint16x8_t vlt(uint16x8_t a, uint16x8_t b) { return vcltq_u16(a, b); }
inline void set_ones(uint8x16_t& v) { v = vdupq_n_u8(0xFF); }
inline void set_ones(uint16x8_t& v) { v = vdupq_n_u16(0xFFFF); }

// NG groups of 8 channels per pass over the rows, their W words in registers (4 W NG vectors <= 16).
// W <= 3: channel counts <= 192 stay bytes (three byte-wise pairwise adds), compared with Q clamped to 255;
// W = 4: counts up to 256 are widened to uint16 at the last fold.
template <int W, int NG, bool OR>
uint32_t short_rows_t(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, const int64_t* P, uint8_t* out8,
                      size_t ld8, uint32_t valid) {
    constexpr bool U8 = W <= 3;
    using CV = std::conditional_t<U8, uint8x16_t, uint16x8_t>;  // counts: 16 channels in bytes, or 8 in uint16
    constexpr int NC = U8 ? (NG == 4 ? 2 : 1) : NG;              // count vectors per row
    uint32_t result = 0;
    for (int g0 = 0; g0 < 4; g0 += NG) {
        const uint32_t vmask = NG == 4 ? valid : (valid >> (8 * g0)) & ((1u << (8 * NG)) - 1);
        if (OR && vmask == 0) continue;
        uint64x2_t wv[W][NG][4];
#pragma GCC unroll 4
        for (int k = 0; k < W; ++k)
#pragma GCC unroll 4
            for (int gg = 0; gg < NG; ++gg)
#pragma GCC unroll 4
                for (int q = 0; q < 4; ++q) wv[k][gg][q] = vld1q_u64(wp + k * NP + 8 * (g0 + gg) + 2 * q);
        uint16x8_t q16[NG];
#pragma GCC unroll 4
        for (int gg = 0; gg < NG; ++gg) q16[gg] = thr_q8(P + 8 * (g0 + gg));
        CV qv[NC];  // thresholds in the counts' lanes (bytes: Q clamped to 255, counts <= 192)
        if constexpr (!U8) {
            for (int gg = 0; gg < NG; ++gg) qv[gg] = q16[gg];
        } else if constexpr (NG == 4) {
            qv[0] = vcombine_u8(vqmovn_u16(q16[0]), vqmovn_u16(q16[1]));
            qv[NC - 1] = vcombine_u8(vqmovn_u16(q16[NG - 2]), vqmovn_u16(q16[NG - 1]));
        } else {
            qv[0] = vcombine_u8(vqmovn_u16(q16[0]), vqmovn_u16(q16[NG - 1]));
        }
        // channel counts of one row
        auto row_counts = [&](const uint64_t* x, CV (&c)[NC]) {
            uint8x16_t acc[NG][4];  // acc[gg][q]: byte counts of channels 2q, 2q + 1 of group gg
#pragma GCC unroll 4
            for (int k = 0; k < W; ++k) {
                const uint64x2_t a = vld1q_dup_u64(x + k);
#pragma GCC unroll 4
                for (int gg = 0; gg < NG; ++gg)
#pragma GCC unroll 4
                    for (int q = 0; q < 4; ++q) {
                        const uint8x16_t t = pcnt<false>(a, wv[k][gg][q]);
                        acc[gg][q] = k == 0 ? t : vaddq_u8(acc[gg][q], t);
                    }
            }
            if constexpr (!U8) {
#pragma GCC unroll 4
                for (int gg = 0; gg < NG; ++gg) c[gg] = fold8_short(acc[gg][0], acc[gg][1], acc[gg][2], acc[gg][3]);
            } else {
                uint8x16_t v[NG];  // 2 bytes per channel
#pragma GCC unroll 4
                for (int gg = 0; gg < NG; ++gg)
                    v[gg] = vpaddq_u8(vpaddq_u8(acc[gg][0], acc[gg][1]), vpaddq_u8(acc[gg][2], acc[gg][3]));
                if constexpr (NG == 4) {
                    c[0] = vpaddq_u8(v[0], v[1]);
                    c[NC - 1] = vpaddq_u8(v[NG - 2], v[NG - 1]);
                } else {
                    c[0] = vpaddq_u8(v[0], v[NG - 1]);  // NG = 1: channels 0 .. 7 in the low half
                }
            }
        };
        auto bits = [&](const CV (&lt)[NC]) -> uint32_t {
            if constexpr (!U8) {
                uint32_t m = 0;
#pragma GCC unroll 4
                for (int gg = 0; gg < NG; ++gg) m |= bits8_u16(lt[gg]) << (8 * gg);
                return m;
            } else if constexpr (NG == 4) {
                return bits32_u8(lt[0], lt[NC - 1]);
            } else if constexpr (NG == 2) {
                return bits16_u8(lt[0]);
            } else {
                return bits8_u8(vget_low_u8(lt[0]));
            }
        };
        CV c[NC], lt[NC];
        uint32_t m = 0;
        if (OR) {
            // running minimum of the counts; every 32 rows, stop once all channels of the pass are set
            CV mn[NC];
            for (int j = 0; j < NC; ++j) set_ones(mn[j]);  // above every threshold
            for (int r0 = 0; r0 < M && (m & vmask) != vmask; r0 += 32) {
                const int r1 = (M - r0) < 32 ? M : r0 + 32;
                for (int r = r0; r < r1; ++r) {
                    row_counts(X + r * ldx, c);
#pragma GCC unroll 4
                    for (int j = 0; j < NC; ++j) mn[j] = vmin(mn[j], c[j]);
                }
#pragma GCC unroll 4
                for (int j = 0; j < NC; ++j) lt[j] = vlt(mn[j], qv[j]);
                m = bits(lt);
            }
            result |= (m & vmask) << (8 * g0);
            continue;
        }
        for (int r = 0; r < M; ++r) {
            row_counts(X + r * ldx, c);
#pragma GCC unroll 4
            for (int j = 0; j < NC; ++j) lt[j] = vlt(c[j], qv[j]);
            m = bits(lt);
            std::memcpy(out8 + r * ld8 + g0, &m, NG);  // little-endian: bytes g0 .. g0 + NG of the 32-bit mask
        }
    }
    return result;
}

// ---------------------------------------------------------------- float kernels
// register-blocked float GEMM, RB rows x 16 columns (4 RB accumulators); FMA chains in k order from 0, as the
// AVX-512 tile
template <int RB, int NV>
inline void fgemm_block(const float* x, int K, const float* wt, int N, float* z, int c0) {
    float32x4_t acc[RB][NV];
#pragma GCC unroll 8
    for (int i = 0; i < RB; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = vdupq_n_f32(0.f);
    for (int k = 0; k < K; ++k) {
        const float* w = wt + static_cast<size_t>(k) * N + c0;
        float32x4_t b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) b[v] = vld1q_f32(w + 4 * v);
#pragma GCC unroll 8
        for (int i = 0; i < RB; ++i) {
            const float a = x[static_cast<size_t>(i) * K + k];
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[i][v] = vfmaq_n_f32(acc[i][v], b[v], a);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < RB; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) vst1q_f32(z + static_cast<size_t>(i) * N + c0 + 4 * v, acc[i][v]);
}

template <int RB>
inline void fgemm_rows(const float* x, int K, const float* wt, int N, float* z) {
    int c0 = 0;
    for (; c0 + 16 <= N; c0 += 16) fgemm_block<RB, 4>(x, K, wt, N, z, c0);
    for (; c0 + 4 <= N; c0 += 4) fgemm_block<RB, 1>(x, K, wt, N, z, c0);
    for (; c0 < N; ++c0)  // last columns: the same FMA chain per element
        for (int i = 0; i < RB; ++i) {
            float s = 0.f;
            for (int k = 0; k < K; ++k) s = std::fmaf(x[static_cast<size_t>(i) * K + k], wt[static_cast<size_t>(k) * N + c0], s);
            z[static_cast<size_t>(i) * N + c0] = s;
        }
}

// min(max(v, lo), hi) - off >= 0 for 16 channels as 16 bits
inline uint32_t clamp_ge_bits(const float32x4_t (&v)[4], float32x4_t vlo, float32x4_t vhi, float32x4_t voff) {
    uint32x4_t ge[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q)
        ge[q] = vcgeq_f32(vsubq_f32(vminq_f32(vmaxq_f32(v[q], vlo), vhi), voff), vdupq_n_f32(0.f));
    return bits16_u32(ge[0], ge[1], ge[2], ge[3]);
}

// float layer to bits, 16 channels per pass over the rows. KK > 0: K == KK inputs, the pass's weights and bias in
// registers (first layers, xyz -> 64); KK == 0: any K, weights read per row. v = add, then v = fma(x_k, w_k, v) in
// k order (the AVX-512 kernels' chain).
template <int KK>
void fbits_t(const float* x, int R, int K, const float* ws, const float* add, int N, float lo, float hi, float off,
             uint64_t* out, size_t ldo, bool or_mode) {
    const float32x4_t vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi), voff = vdupq_n_f32(off);
    const int words = (N + 63) / 64;
    for (int c = 0; c < 64 * words; c += 16) {
        const int n = N - c;  // channels of this pass (may be <= 0: padding bits of the last word)
        uint64_t* wo = out + (c >> 6);
        const int piece = (c & 63) >> 4;
        if (n <= 0) {
            if (!or_mode)
                for (int r = 0; r < R; ++r) store16(wo + static_cast<size_t>(r) * ldo, piece, 0);
            continue;
        }
        if (n < 16) {  // partial pass: the same chain per channel, in scalar FMAs
            uint32_t acc_or = 0;
            for (int r = 0; r < R; ++r) {
                const float* xr = x + static_cast<size_t>(r) * K;
                uint32_t m = 0;
                for (int j = 0; j < n; ++j) {
                    float v = add[c + j];
                    for (int k = 0; k < K; ++k) v = std::fmaf(xr[k], ws[static_cast<size_t>(k) * N + c + j], v);
                    const float t = v < lo ? lo : (v > hi ? hi : v);
                    m |= static_cast<uint32_t>(t - off >= 0.f) << j;
                }
                if (or_mode) acc_or |= m;
                else store16(wo + static_cast<size_t>(r) * ldo, piece, m);
            }
            if (or_mode) *wo |= static_cast<uint64_t>(acc_or) << (c & 63);
            continue;
        }
        float32x4_t b[4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) b[q] = vld1q_f32(add + c + 4 * q);
        float32x4_t w[KK > 0 ? KK : 1][4];
        if constexpr (KK > 0)
#pragma GCC unroll 4
            for (int k = 0; k < KK; ++k)
#pragma GCC unroll 4
                for (int q = 0; q < 4; ++q) w[k][q] = vld1q_f32(ws + static_cast<size_t>(k) * N + c + 4 * q);
        uint32_t acc_or = 0;
        for (int r = 0; r < R; ++r) {
            const float* xr = x + static_cast<size_t>(r) * K;
            float32x4_t v[4] = {b[0], b[1], b[2], b[3]};
            if constexpr (KK > 0) {
#pragma GCC unroll 4
                for (int k = 0; k < KK; ++k)
#pragma GCC unroll 4
                    for (int q = 0; q < 4; ++q) v[q] = vfmaq_n_f32(v[q], w[k][q], xr[k]);
            } else {
                for (int k = 0; k < K; ++k) {
                    const float* wk = ws + static_cast<size_t>(k) * N + c;
                    const float a = xr[k];
#pragma GCC unroll 4
                    for (int q = 0; q < 4; ++q) v[q] = vfmaq_n_f32(v[q], vld1q_f32(wk + 4 * q), a);
                }
            }
            const uint32_t m = clamp_ge_bits(v, vlo, vhi, voff);
            if (or_mode) acc_or |= m;
            else store16(wo + static_cast<size_t>(r) * ldo, piece, m);
        }
        if (or_mode) *wo |= static_cast<uint64_t>(acc_or) << (c & 63);
    }
}

// y = min(max(fma chain from add, lo), hi), 16 channels per pass with weights in registers (K == KK <= 4);
// a partial last pass runs the same vector operations on zero-padded copies
template <int KK>
void flinear_small_t(const float* x, int R, const float* ws, const float* add, int N, float lo, float hi, float* y) {
    const float32x4_t vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
    for (int c = 0; c < N; c += 16) {
        const int n = (N - c) < 16 ? (N - c) : 16;
        alignas(16) float bp[16] = {}, wpad[KK][16] = {};
        for (int j = 0; j < n; ++j) {
            bp[j] = add[c + j];
            for (int k = 0; k < KK; ++k) wpad[k][j] = ws[static_cast<size_t>(k) * N + c + j];
        }
        float32x4_t b[4], w[KK][4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
            b[q] = vld1q_f32(bp + 4 * q);
#pragma GCC unroll 4
            for (int k = 0; k < KK; ++k) w[k][q] = vld1q_f32(wpad[k] + 4 * q);
        }
        for (int r = 0; r < R; ++r) {
            const float* xr = x + static_cast<size_t>(r) * KK;
            float* yr = y + static_cast<size_t>(r) * N + c;
            float32x4_t v[4] = {b[0], b[1], b[2], b[3]};
#pragma GCC unroll 4
            for (int k = 0; k < KK; ++k)
#pragma GCC unroll 4
                for (int q = 0; q < 4; ++q) v[q] = vfmaq_n_f32(v[q], w[k][q], xr[k]);
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q) v[q] = vminq_f32(vmaxq_f32(v[q], vlo), vhi);
            if (n == 16) {
#pragma GCC unroll 4
                for (int q = 0; q < 4; ++q) vst1q_f32(yr + 4 * q, v[q]);
            } else {
                alignas(16) float t[16];
#pragma GCC unroll 4
                for (int q = 0; q < 4; ++q) vst1q_f32(t + 4 * q, v[q]);
                std::memcpy(yr, t, sizeof(float) * n);
            }
        }
    }
}

}  // namespace

// ---------------------------------------------------------------- entry points
// f(std::integral_constant<int, R>) for the tile's row count R (1 .. MR)
template <class F>
inline void with_rows(int R, F&& f) {
    switch (R) {
        case 1: return f(std::integral_constant<int, 1>{});
        case 2: return f(std::integral_constant<int, 2>{});
        case 3: return f(std::integral_constant<int, 3>{});
        case 4: return f(std::integral_constant<int, 4>{});
        case 5: return f(std::integral_constant<int, 5>{});
        default: return f(std::integral_constant<int, 6>{});
    }
}

void pc_tile_neon(bool and_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W, uint32_t* pc) {
    with_rows(R, [&](auto rows) {
        if (and_mode) pc_tile_t<rows.value, true>(X, ldx, wp, W, pc);
        else pc_tile_t<rows.value, false>(X, ldx, wp, W, pc);
    });
}

void thr_tile_neon(bool or_mode, const uint64_t* X, size_t ldx, int R, const uint64_t* wp, int W, const int64_t* P,
                   uint32_t flip, uint32_t* out, size_t ldo32, uint32_t* ormask) {
    with_rows(R, [&](auto rows) {
        if (or_mode) thr_tile_t<rows.value, true>(X, ldx, wp, W, P, flip, out, ldo32, ormask);
        else thr_tile_t<rows.value, false>(X, ldx, wp, W, P, flip, out, ldo32, ormask);
    });
}

void thr_rows_neon(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P, uint32_t* out,
                   size_t ldo32) {
    uint8_t* o8 = reinterpret_cast<uint8_t*>(out);  // little-endian: byte g of the panel's 32-bit mask
    const size_t ld8 = 4 * ldo32;
    switch (W) {
        case 1: short_rows_t<1, 4, false>(X, ldx, M, wp, P, o8, ld8, ~0u); break;
        case 2: short_rows_t<2, 2, false>(X, ldx, M, wp, P, o8, ld8, ~0u); break;
        case 3: short_rows_t<3, 1, false>(X, ldx, M, wp, P, o8, ld8, ~0u); break;
        default: short_rows_t<4, 1, false>(X, ldx, M, wp, P, o8, ld8, ~0u); break;
    }
}

uint32_t or_rows_neon(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, int W, const int64_t* P,
                      uint32_t valid) {
    switch (W) {
        case 1: return short_rows_t<1, 4, true>(X, ldx, M, wp, P, nullptr, 0, valid);
        case 2: return short_rows_t<2, 2, true>(X, ldx, M, wp, P, nullptr, 0, valid);
        case 3: return short_rows_t<3, 1, true>(X, ldx, M, wp, P, nullptr, 0, valid);
        default: return short_rows_t<4, 1, true>(X, ldx, M, wp, P, nullptr, 0, valid);
    }
}

void affine_bits_neon(bool and_mode, const uint32_t* pc, int R, const int32_t* px, const int32_t* ecnt,
                      const float* mul, const float* rowc, const float* add, int Kv, float lo, float hi, float off,
                      int cmax, uint32_t* out) {
    // like the AVX-512 kernel, reads all 32 entries of mul / add (and rowc / ecnt) for the panel; channels from
    // cmax on give 0 bits
    const float32x4_t vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi), voff = vdupq_n_f32(off);
    const uint32_t keep = cmax >= 32 ? ~0u : cmax <= 0 ? 0u : ((1u << cmax) - 1);
    const int32x4_t kv = vdupq_n_s32(Kv);
    for (int i = 0; i < R; ++i) {
        uint32_t mask = 0;
        const int32x4_t px2 = vdupq_n_s32(2 * (and_mode ? px[i] : 0));
        const float32x4_t sum = vdupq_n_f32(and_mode ? static_cast<float>(2 * px[i] - Kv) : 0.f);
        for (int h = 0; h < 2; ++h) {
            if (16 * h >= cmax) break;
            float32x4_t v[4];
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q) {
                const int c = 16 * h + 4 * q;
                const int32x4_t p = vreinterpretq_s32_u32(vld1q_u32(pc + i * NP + c));
                if (and_mode) {
                    const int32x4_t dot = vaddq_s32(vsubq_s32(vshlq_n_s32(p, 2), px2), vld1q_s32(ecnt + c));
                    v[q] = vaddq_f32(vaddq_f32(vmulq_f32(vld1q_f32(mul + c), vcvtq_f32_s32(dot)),
                                               vmulq_f32(vld1q_f32(rowc + c), sum)),
                                     vld1q_f32(add + c));
                } else {
                    const int32x4_t dot = vsubq_s32(kv, vshlq_n_s32(p, 1));
                    v[q] = vaddq_f32(vmulq_f32(vld1q_f32(mul + c), vcvtq_f32_s32(dot)), vld1q_f32(add + c));
                }
            }
            mask |= clamp_ge_bits(v, vlo, vhi, voff) << (16 * h);
        }
        out[i] = mask & keep;
    }
}

void fgemm_neon(const float* x, int R, int K, const float* wt, int N, float* z) {
    int r = 0;
    for (; r + 6 <= R; r += 6)  // 6 x 16 tile: 24 accumulators, 4 weight loads and 6 scalar loads per k
        fgemm_rows<6>(x + static_cast<size_t>(r) * K, K, wt, N, z + static_cast<size_t>(r) * N);
    for (; r + 4 <= R; r += 4) fgemm_rows<4>(x + static_cast<size_t>(r) * K, K, wt, N, z + static_cast<size_t>(r) * N);
    for (; r < R; ++r) fgemm_rows<1>(x + static_cast<size_t>(r) * K, K, wt, N, z + static_cast<size_t>(r) * N);
}

void pack_ge_neon(const float* z, int N, float off, uint64_t* out) {
    const float32x4_t o = vdupq_n_f32(off), zero = vdupq_n_f32(0.f);
    int c = 0;
    for (; c + 16 <= N; c += 16) {
        uint32x4_t ge[4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) ge[q] = vcgeq_f32(vsubq_f32(vld1q_f32(z + c + 4 * q), o), zero);
        out[c >> 6] |= static_cast<uint64_t>(bits16_u32(ge[0], ge[1], ge[2], ge[3])) << (c & 63);
    }
    for (; c < N; ++c) out[c >> 6] |= static_cast<uint64_t>(z[c] - off >= 0.f) << (c & 63);
}

void fbits_neon(const float* x, int R, int K, const float* ws, const float* add, int N, float lo, float hi, float off,
                uint64_t* out, size_t ldo, bool or_mode) {
    switch (K) {
        case 1: return fbits_t<1>(x, R, K, ws, add, N, lo, hi, off, out, ldo, or_mode);
        case 2: return fbits_t<2>(x, R, K, ws, add, N, lo, hi, off, out, ldo, or_mode);
        case 3: return fbits_t<3>(x, R, K, ws, add, N, lo, hi, off, out, ldo, or_mode);
        case 4: return fbits_t<4>(x, R, K, ws, add, N, lo, hi, off, out, ldo, or_mode);
        default: return fbits_t<0>(x, R, K, ws, add, N, lo, hi, off, out, ldo, or_mode);
    }
}

void quant_rows_neon(const float* x, int M, int C, const float* mul, const float* add, uint64_t* out, size_t ldo) {
    const int words = (C + 63) / 64;
    const float32x4_t zero = vdupq_n_f32(0.f);
    for (int r = 0; r < M; ++r) {
        const float* xr = x + static_cast<size_t>(r) * C;
        uint64_t* o = out + static_cast<size_t>(r) * ldo;
        for (int w = 0; w < words; ++w) {
            uint64_t m = 0;
            for (int g = 0; g < 4; ++g) {
                const int c = 64 * w + 16 * g;
                if (c >= C) break;
                if (C - c >= 16) {
                    uint32x4_t ge[4];
#pragma GCC unroll 4
                    for (int q = 0; q < 4; ++q) {
                        float32x4_t v = vld1q_f32(xr + c + 4 * q);
                        if (mul)  // multiply, then add (no FMA), as the portable path
                            v = vaddq_f32(vmulq_f32(v, vld1q_f32(mul + c + 4 * q)), vld1q_f32(add + c + 4 * q));
                        ge[q] = vcgeq_f32(v, zero);
                    }
                    m |= static_cast<uint64_t>(bits16_u32(ge[0], ge[1], ge[2], ge[3])) << (16 * g);
                } else {
                    for (int j = c; j < C; ++j) {
                        const float v = mul ? mul[j] * xr[j] + add[j] : xr[j];
                        m |= static_cast<uint64_t>(v >= 0.f) << (j & 63);
                    }
                }
            }
            o[w] = m;
        }
    }
}

bool flinear_small_neon(const float* x, int R, int K, const float* ws, const float* add, int N, float lo, float hi,
                        float* y) {
    switch (K) {
        case 1: flinear_small_t<1>(x, R, ws, add, N, lo, hi, y); return true;
        case 2: flinear_small_t<2>(x, R, ws, add, N, lo, hi, y); return true;
        case 3: flinear_small_t<3>(x, R, ws, add, N, lo, hi, y); return true;
        case 4: flinear_small_t<4>(x, R, ws, add, N, lo, hi, y); return true;
        default: return false;
    }
}

}  // namespace onebit

#endif  // __aarch64__
