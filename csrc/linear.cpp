// Linear layers of the interpreter: the float layer, the binary (XNOR / AND popcount) layer with its
// integer-threshold, OR-pooling and float epilogues, XNOR-Net's input-scaled layer and grouped pooling.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "engine.h"
#include "linear.h"

namespace onebit {

namespace {
// Float epilogue of an XNOR popcount tile pc[i * NP + j] (rows i < R, channels j < cmax):
//   v = clamp(mul·(K_i·dot) + add, lo, hi)  (k: XNOR-Net's per-row K, or null: v = clamp(mul·dot + add, lo, hi))
// with dot = Kv − 2·pc; stored to dst[i * ldo + j], or (pool_max) max-reduced into dst[j]. The same float operations
// as the generic epilogue (no contraction), so the AVX-512 / AVX2 / portable builds of these loops (chosen by the
// engine's ISA) give identical values. std::max / std::min are spelled out: inlines compiled for the default target
// are not inlined into the target-specific builds.
#define ONEBIT_FLOAT_EPILOGUE_BODY                                                                                     \
    for (int i = 0; i < R; ++i) {                                                                                      \
        const uint32_t* pci = pc + i * NP;                                                                             \
        float v[NP];                                                                                                   \
        if (k) {                                                                                                       \
            const float kr = k[i];                                                                                     \
            for (int j = 0; j < cmax; ++j)                                                                             \
                v[j] = mul[j] * (kr * static_cast<float>(Kv - 2 * static_cast<int32_t>(pci[j]))) + add[j];           \
        } else {                                                                                                       \
            for (int j = 0; j < cmax; ++j) v[j] = mul[j] * static_cast<float>(Kv - 2 * static_cast<int32_t>(pci[j])) + add[j]; \
        }                                                                                                              \
        for (int j = 0; j < cmax; ++j) {                                                                               \
            const float a = v[j] < lo ? lo : v[j];                                                                     \
            v[j] = hi < a ? hi : a;                                                                                    \
        }                                                                                                              \
        if (pool_max)                                                                                                  \
            for (int j = 0; j < cmax; ++j) dst[j] = dst[j] < v[j] ? v[j] : dst[j];                                     \
        else                                                                                                           \
            for (int j = 0; j < cmax; ++j) dst[static_cast<size_t>(i) * ldo + j] = v[j];                               \
    }
#define ONEBIT_FLOAT_EPILOGUE_ARGS                                                                                     \
    const uint32_t* __restrict pc, int R, int Kv, const float* __restrict k, const float* __restrict mul,            \
        const float* __restrict add, float lo, float hi, int cmax, float* __restrict dst, int ldo, bool pool_max
#if defined(__x86_64__)
__attribute__((target("avx512f"))) void float_epilogue_avx512(ONEBIT_FLOAT_EPILOGUE_ARGS) { ONEBIT_FLOAT_EPILOGUE_BODY }
__attribute__((target("avx2"))) void float_epilogue_avx2(ONEBIT_FLOAT_EPILOGUE_ARGS) { ONEBIT_FLOAT_EPILOGUE_BODY }
#endif
void float_epilogue_portable(ONEBIT_FLOAT_EPILOGUE_ARGS) { ONEBIT_FLOAT_EPILOGUE_BODY }
#undef ONEBIT_FLOAT_EPILOGUE_BODY
#undef ONEBIT_FLOAT_EPILOGUE_ARGS

inline void float_epilogue(int isa, const uint32_t* pc, int R, int Kv, const float* k, const float* mul,
                           const float* add, float lo, float hi, int cmax, float* dst, int ldo, bool pool_max) {
#if defined(__x86_64__)
    if (isa == ISA_AVX512) return float_epilogue_avx512(pc, R, Kv, k, mul, add, lo, hi, cmax, dst, ldo, pool_max);
    if (isa == ISA_AVX2) return float_epilogue_avx2(pc, R, Kv, k, mul, add, lo, hi, cmax, dst, ldo, pool_max);
#endif
    (void)isa;  // aarch64 (NEON): the portable loop, which the compiler vectorises with NEON
    float_epilogue_portable(pc, R, Kv, k, mul, add, lo, hi, cmax, dst, ldo, pool_max);
}

}  // namespace

// A negative-slope channel (bit = [pc > P], "flip") is stored with its weight bits complemented over the
// k valid bits: popcount(x XOR ~w) = k − pc, so its bit becomes [pc' <= k − P − 1] like every other channel.
// The kernels then never need a flip, and OR pooling is a min over rows of pc' (one compare per tile).
// neg[n] = 1 marks those channels (their XNOR dot is the negative of the stored weights' dot).
void fold_flips(uint64_t* w, int N, int W, int K, int64_t* P, const uint8_t* flip, uint8_t* neg) {
    for (int n = 0; n < N; ++n) {
        if (!flip[n]) continue;
        for (int k = 0; k < W; ++k) {
            const int valid = std::min(64, K - 64 * k);
            const uint64_t mask = valid >= 64 ? ~0ULL : ((1ULL << valid) - 1);
            w[static_cast<size_t>(n) * W + k] ^= mask;
        }
        P[n] = K - P[n] - 1;
        neg[n] = 1;
    }
}

// The vector paths of a thresholded XNOR layer (integer thresholds, flips folded into the weights).
// Short rows keep each panel in registers (thr_rows: AVX-512, AVX2 or NEON); long rows use the AVX-512 6x32 or
// NEON 6x8 register tile, panel by panel so the panel stays in L1 while the rows stream from L2.

void thr_layer(int isa, const uint64_t* X, size_t ldx, int r0, int r1, const uint64_t* wp, int W, int panels,
               const int64_t* P, uint32_t* out32, size_t ldo32) {
    for (int p = 0; p < panels; ++p) {
        const uint64_t* wpp = wp + static_cast<size_t>(p) * W * NP;
        if (W <= SHORT_W) {
            thr_rows_isa(isa, X + static_cast<size_t>(r0) * ldx, ldx, r1 - r0, wpp, W, P + p * NP,
                         out32 + static_cast<size_t>(r0) * ldo32 + p, ldo32);
            continue;
        }
        for (int rt = r0; rt < r1; rt += MR)
            thr_tile_isa(isa, false, X + static_cast<size_t>(rt) * ldx, ldx, std::min(MR, r1 - rt), wpp, W, P + p * NP, 0,
                         out32 + static_cast<size_t>(rt) * ldo32 + p, ldo32, nullptr);
    }
}


// OR pooling of one panel over rows [r0, r1) on a vector path, with the early exit: once every channel of the
// panel is set, the remaining rows cannot change the pooled bits.
uint32_t or_panel(int isa, const uint64_t* X, size_t ldx, int r0, int r1, const uint64_t* wpp, int W, const int64_t* P,
                  uint32_t valid) {
    if (W <= SHORT_W)
        return or_rows_isa(isa, X + static_cast<size_t>(r0) * ldx, ldx, r1 - r0, wpp, W, P, valid);
    uint32_t m = 0;
    for (int rt = r0; rt < r1 && (m & valid) != valid; rt += MR)
        thr_tile_isa(isa, true, X + static_cast<size_t>(rt) * ldx, ldx, std::min(MR, r1 - rt), wpp, W, P, 0, nullptr, 0, &m);
    return m & valid;
}

// OR pooling of a short-row XNOR layer (vector paths) with the early exit made useful: a channel is final once
// one row sets it, so after each stage (rows [0, 32), [32, 128), [128, 512), ...) the channels still unset
// are gathered into fresh, dense panels and only those scan the remaining rows. Panel-level exits alone
// rarely fire (all 32 channels of a panel must be set); compaction turns every set channel into saved work.
// One thread's share: channels [0, N) of the panels starting at wp0 / P0, pooled bits to out[0 .. panels).
static void or_pool_compact_range(int isa, const uint64_t* wp0, const int64_t* P0, int N, int W, const uint64_t* X,
                           size_t ldx, int M, uint32_t* out) {
    const int panels = (N + NP - 1) / NP;
    std::vector<uint32_t> orm(panels, 0);
    avec<int> act;                 // channels still unset, in panel order
    avec<uint64_t> cw;             // their weights, re-packed into panels
    avec<int64_t> cP;
    const uint64_t* wp = wp0;
    const int64_t* P = P0;
    int npan = panels;
    int r0 = 0;
    for (int r1 = std::min(M, 32); r0 < M; r0 = r1, r1 = std::min(M, r1 * 4)) {
        const bool dense = act.empty() && r0 == 0;
        std::vector<uint32_t> got(npan, 0);
        for (int q = 0; q < npan; ++q) {
            const uint32_t valid = dense ? panel_valid(N, q) : panel_valid(static_cast<int>(act.size()), q);
            got[q] = or_panel(isa, X, ldx, r0, r1, wp + static_cast<size_t>(q) * W * NP, W, P + q * NP, valid);
        }
        // fold the stage's bits into the pooled mask
        if (dense) {
            for (int q = 0; q < npan; ++q) orm[q] |= got[q];
        } else {
            for (int q = 0; q < npan; ++q)
                for (uint32_t m = got[q]; m; m &= m - 1) {
                    const int c = act[q * NP + __builtin_ctz(m)];
                    orm[c / NP] |= 1u << (c % NP);
                }
        }
        if (r1 >= M) break;
        // gather the channels still unset into dense panels for the next stage
        avec<int> next;
        next.reserve(N);
        for (int c = 0; c < N; ++c)
            if (!((orm[c / NP] >> (c % NP)) & 1u)) next.push_back(c);
        if (next.empty()) break;
        const int np2 = (static_cast<int>(next.size()) + NP - 1) / NP;
        avec<uint64_t> w2(static_cast<size_t>(np2) * W * NP, 0);
        avec<int64_t> P2(static_cast<size_t>(np2) * NP, -1);
        for (size_t i = 0; i < next.size(); ++i) {
            const int c = next[i], q = static_cast<int>(i) / NP, j = static_cast<int>(i) % NP;
            for (int k = 0; k < W; ++k)
                w2[(static_cast<size_t>(q) * W + k) * NP + j] = wp0[(static_cast<size_t>(c / NP) * W + k) * NP + c % NP];
            P2[i] = P0[c];
        }
        act.swap(next);
        cw.swap(w2);
        cP.swap(P2);
        wp = cw.data();
        P = cP.data();
        npan = np2;
    }
    std::memcpy(out, orm.data(), sizeof(uint32_t) * panels);
}

// Inside one cloud the threads take contiguous ranges of panels and run their stages and compactions
// independently: one parallel region, no barrier between stages.
void or_pool_compact(int isa, const uint64_t* wp0, const int64_t* P0, int N, int W, const uint64_t* X, size_t ldx, int M,
                     uint32_t* out, int threads) {
    const int panels = (N + NP - 1) / NP;
    const int nt = std::max(1, std::min(threads, panels / 2));
    if (nt == 1) return or_pool_compact_range(isa, wp0, P0, N, W, X, ldx, M, out);
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int p0 = panels * t / T, p1 = panels * (t + 1) / T;
        if (p0 < p1)
            or_pool_compact_range(isa, wp0 + static_cast<size_t>(p0) * W * NP, P0 + static_cast<size_t>(p0) * NP,
                                  std::min(N, p1 * NP) - p0 * NP, W, X, ldx, M, out + p0);
    }
}

// Compact duplicate rows of a bit buffer in place (first occurrences, in order); returns the unique count.
// Binarized point features repeat a lot on real clouds (points in the same cell of the first layer's
// hyperplanes get the same code), and every later per-point layer maps equal rows to equal rows.
template <int LD>  // LD = words per row (0: any, given by ld)
static int dedup_rows_t(uint64_t* rows, int M, int ld) {
    if (LD) ld = LD;
    int cap = 1;
    while (cap < 2 * M) cap <<= 1;
    const size_t mask = static_cast<size_t>(cap - 1);
    std::vector<int32_t> table(cap, -1);
    int u = 0;
    for (int r = 0; r < M; ++r) {
        const uint64_t* row = rows + static_cast<size_t>(r) * ld;
        uint64_t h = 0x9E3779B97F4A7C15ULL;
        for (int w = 0; w < ld; ++w) h = (h ^ row[w]) * 0xBF58476D1CE4E5B9ULL;
        size_t slot = static_cast<size_t>(h ^ (h >> 29)) & mask;
        bool seen = false;
        for (int32_t t; (t = table[slot]) >= 0; slot = (slot + 1) & mask) {
            const uint64_t* other = rows + static_cast<size_t>(t) * ld;
            bool eq = true;
            for (int w = 0; w < ld && eq; ++w) eq = other[w] == row[w];
            if (eq) {
                seen = true;
                break;
            }
        }
        if (seen) continue;
        if (u != r)
            for (int w = 0; w < ld; ++w) rows[static_cast<size_t>(u) * ld + w] = row[w];
        table[slot] = u++;
    }
    return u;
}

int dedup_rows(uint64_t* rows, int M, int ld) {
    if (M < 2) return M;
    switch (ld) {
        case 1: return dedup_rows_t<1>(rows, M, ld);
        case 2: return dedup_rows_t<2>(rows, M, ld);
        default: return dedup_rows_t<0>(rows, M, ld);
    }
}

static inline void emit(const Op& op, int r, int c, float v, void* outp, int ldo, Scratch& s) {
    v = std::min(std::max(v, op.lo), op.hi);
    switch (op.out_mode) {
        case OUT_F32: static_cast<float*>(outp)[static_cast<size_t>(r) * ldo + c] = v; break;
        case OUT_BITS:
            if (v - op.offset >= 0.f) static_cast<uint64_t*>(outp)[static_cast<size_t>(r) * ldo + (c >> 6)] |= 1ULL << (c & 63);
            break;
        case OUT_OR:
            if (v - op.offset >= 0.f) reinterpret_cast<uint64_t*>(s.orm.data())[c >> 6] |= 1ULL << (c & 63);
            break;
        case OUT_MAX: s.pool[c] = std::max(s.pool[c], v); break;
        default: s.pool[c] += v;
    }
}

static void begin_pool(const Op& op, Scratch& s) {
    if (op.out_mode == OUT_MAX) s.pool.assign(op.N, -INFINITY);
    if (op.out_mode == OUT_AVG) s.pool.assign(op.N, 0.f);
    if (op.out_mode == OUT_OR) s.orm.assign(2 * ((op.N + 63) / 64), 0);
}

static void end_pool(const Op& op, int M, void* outp, Scratch& s) {
    if (op.out_mode == OUT_MAX || op.out_mode == OUT_AVG) {
        float* o = static_cast<float*>(outp);
        const float div = op.out_mode == OUT_AVG ? static_cast<float>(M) : 1.f;
        for (int c = 0; c < op.N; ++c) o[c] = s.pool[c] / div - op.offset;
    } else if (op.out_mode == OUT_OR) {
        std::memcpy(outp, s.orm.data(), sizeof(uint64_t) * ((op.N + 63) / 64));
    }
}

void Engine::run_grouped(const Op& op, int M, const void* in, int ldx, void* out, Scratch& s, int32_t* raw) const {
    const int g = op.group, G = M / g;
    const bool bits = op.out_mode == OUT_OR;
    const size_t ldo = bits ? static_cast<size_t>((op.N + 63) / 64) : static_cast<size_t>(op.N);
    const size_t rawc = static_cast<size_t>(op.N) * (op.and_mode ? 2 : 1);
    for (int q = 0; q < G; ++q) {
        void* o = bits ? static_cast<void*>(static_cast<uint64_t*>(out) + q * ldo)
                       : static_cast<void*>(static_cast<float*>(out) + q * ldo);
        const size_t r0 = static_cast<size_t>(q) * g;
        if (op.type == OP_FLINEAR)
            run_flinear(op, g, static_cast<const float*>(in) + r0 * ldx, o, s);
        else if (op.xscale)
            run_xlinear(op, g, static_cast<const float*>(in) + r0 * ldx, ldx, o, s, raw ? raw + r0 * rawc : nullptr);
        else
            run_blinear(op, g, static_cast<const uint64_t*>(in) + r0 * ldx, ldx, o, s, 1, raw ? raw + r0 * rawc : nullptr);
    }
}


void Engine::run_flinear(const Op& op, int M, const float* x, void* outp, Scratch& s) const {
    if ((op.out_mode == OUT_BITS || op.out_mode == OUT_OR) && op.K <= 8) {
        // float layer thresholded and packed directly (the first layer of a point model: a short
        // dependent FMA chain per channel group); wider K (a conv's im2col rows) takes the blocked GEMM
        const int words = (op.N + 63) / 64;
        if (op.out_mode == OUT_OR) std::memset(outp, 0, sizeof(uint64_t) * words);
        fbits(isa_, x, M, op.K, op.ws.data(), op.add.data(), op.N, op.lo, op.hi, op.offset,
              static_cast<uint64_t*>(outp), words, op.out_mode == OUT_OR);
        return;
    }
    if (op.out_mode == OUT_F32 &&
        flinear_small(isa_, x, M, op.K, op.ws.data(), op.add.data(), op.N, op.lo, op.hi, static_cast<float*>(outp)))
        return;  // e.g. xyz -> 64 feeding a float feature transform: weights in registers, rows streamed
    constexpr int RB = 64;
    s.z.resize(static_cast<size_t>(RB) * op.N);
    begin_pool(op, s);
    const int N = op.N, words = (N + 63) / 64;
    const float* mul = op.mul.data();
    const float* add = op.add.data();
    const float lo = op.lo, hi = op.hi, off = op.offset;
    for (int r0 = 0; r0 < M; r0 += RB) {
        const int R = std::min(RB, M - r0);
        fgemm(isa_, x + static_cast<size_t>(r0) * op.K, R, op.K, op.wt.data(), N, s.z.data());
        for (int r = 0; r < R; ++r) {
            float* z = s.z.data() + static_cast<size_t>(r) * N;
            for (int c = 0; c < N; ++c) z[c] = std::min(std::max(mul[c] * z[c] + add[c], lo), hi);  // folded BN + act
            switch (op.out_mode) {
                case OUT_F32:
                    std::memcpy(static_cast<float*>(outp) + static_cast<size_t>(r0 + r) * N, z, sizeof(float) * N);
                    break;
                case OUT_BITS:
                case OUT_OR: {
                    uint64_t* o = op.out_mode == OUT_BITS
                                      ? static_cast<uint64_t*>(outp) + static_cast<size_t>(r0 + r) * words
                                      : reinterpret_cast<uint64_t*>(s.orm.data());
                    pack_ge(isa_, z, N, off, o);
                    break;
                }
                case OUT_MAX:
                    for (int c = 0; c < N; ++c) s.pool[c] = std::max(s.pool[c], z[c]);
                    break;
                default:
                    for (int c = 0; c < N; ++c) s.pool[c] += z[c];
            }
        }
    }
    end_pool(op, M, outp, s);
}


void Engine::blinear_rows(const Op& op, int r0, int r1, const uint64_t* X, int ldx, void* outp, uint32_t* orm,
                  Scratch& s, int32_t* raw) const {
    const bool fast = has_fast_path(isa_, op.W) && op.int_thr && raw == nullptr;
    const int ldo32 = 2 * ((op.N + 63) / 64);
    uint32_t* out32 = static_cast<uint32_t*>(outp);
    const int ldo = op.out_mode == OUT_BITS ? (op.N + 63) / 64 : op.N;
    const bool or_mode = op.out_mode == OUT_OR;
    if (fast) {
        if (!or_mode) {
            thr_layer(isa_, X, ldx, r0, r1, op.wp.data(), op.W, op.panels, op.P.data(), out32, ldo32);
            return;
        }
        for (int p = 0; p < op.panels; ++p) {
            const uint32_t valid = panel_valid(op.N, p);
            if (orm[p] != valid)
                orm[p] |= or_panel(isa_, X, ldx, r0, r1, op.wp.data() + static_cast<size_t>(p) * op.W * NP, op.W,
                                          op.P.data() + p * NP, valid);
        }
        return;
    }
    for (int rt = r0; rt < r1; rt += MR) {
        const int R = std::min(MR, r1 - rt);
        const uint64_t* Xt = X + static_cast<size_t>(rt) * ldx;
        if (op.and_mode)
            for (int i = 0; i < R; ++i) {
                int32_t c = 0;
                for (int w = 0; w < op.W; ++w) c += __builtin_popcountll(Xt[static_cast<size_t>(i) * ldx + w]);
                s.rowpc[i] = c;
            }
        for (int p = 0; p < op.panels; ++p) {
            // OR pooling: a panel whose channels are all set already cannot change (early exit)
            if (or_mode && op.int_thr && raw == nullptr && orm[p] == panel_valid(op.N, p)) continue;
            const uint64_t* wpp = op.wp.data() + static_cast<size_t>(p) * op.W * NP;
            pc_tile(isa_, op.and_mode, Xt, ldx, R, wpp, op.W, s.pc.data());
            const int cmax = std::min(NP, op.N - p * NP);
            if (!op.int_thr && raw == nullptr && affine_bits_vector(isa_) && (op.out_mode == OUT_BITS || or_mode)) {
                // vector float epilogue (DAB's AND product, or XNOR with a float affine): one mask per row
                uint32_t masks[MR];
                const int c0 = p * NP;
                affine_bits_isa(isa_, op.and_mode, s.pc.data(), R, s.rowpc.data(),
                                op.and_mode ? op.ecnt.data() + c0 : nullptr, op.mul.data() + c0,
                                op.and_mode ? op.rowc.data() + c0 : nullptr, op.add.data() + c0, op.Kv, op.lo, op.hi,
                                op.offset, cmax, masks);
                for (int i = 0; i < R; ++i) {
                    if (or_mode) reinterpret_cast<uint32_t*>(s.orm.data())[p] |= masks[i];
                    else out32[static_cast<size_t>(rt + i) * ldo32 + p] = masks[i];
                }
                continue;
            }
            if (!op.int_thr && !op.and_mode && raw == nullptr && (op.out_mode == OUT_F32 || op.out_mode == OUT_MAX)) {
                // XNOR with a float output or max pool: the portable epilogue's operations, in plain loops the
                // compiler vectorises (no per-value dispatch)
                const int c0 = p * NP;
                const float* mul = op.mul.data() + c0;
                const float* add = op.add.data() + c0;
                const float lo = op.lo, hi = op.hi;
                float* dst = op.out_mode == OUT_F32 ? static_cast<float*>(outp) + static_cast<size_t>(rt) * ldo + c0
                                                    : s.pool.data() + c0;
                float_epilogue(isa_, s.pc.data(), R, op.Kv, op.xscale ? s.krow + rt : nullptr, mul, add, lo, hi, cmax, dst,
                               op.out_mode == OUT_F32 ? ldo : 0, op.out_mode == OUT_MAX);
                continue;
            }
            for (int i = 0; i < R; ++i) {
                const int r = rt + i;
                const uint32_t* pci = s.pc.data() + i * NP;
                if (op.int_thr) {
                    uint32_t m = 0;
                    for (int j = 0; j < NP; ++j)
                        m |= static_cast<uint32_t>(static_cast<int64_t>(pci[j]) <= op.P[p * NP + j]) << j;
                    m ^= op.flip[p];
                    if (or_mode) orm[p] |= m;
                    else out32[static_cast<size_t>(r) * ldo32 + p] = m;
                    if (raw)
                        for (int j = 0; j < cmax; ++j) {
                            // complemented (flipped) channels count pc' = K − pc over all K stored bits
                            const int32_t pc = op.neg[p * NP + j] ? op.K - static_cast<int32_t>(pci[j])
                                                                 : static_cast<int32_t>(pci[j]);
                            raw[static_cast<size_t>(r) * op.N + p * NP + j] = op.Kv - 2 * pc;
                        }
                    continue;
                }
                // bits out: one 32-channel mask per panel and row, stored once (no per-bit read-modify-write)
                const bool bits_out = op.out_mode == OUT_BITS;
                uint32_t mask = 0;
                for (int j = 0; j < cmax; ++j) {
                    const int c = p * NP + j;
                    float v;
                    if (op.and_mode) {
                        // exact integers first: signs·x and Σx, then one float affine (no cancellation)
                        const int32_t px = s.rowpc[i];
                        const int32_t dot = 4 * static_cast<int32_t>(pci[j]) - 2 * px + op.ecnt[c];
                        const int32_t sum = 2 * px - op.Kv;
                        v = op.xscale ? s.krow[r] * (op.mul[c] * static_cast<float>(dot) + op.rowc[c] * static_cast<float>(sum)) + op.add[c]
                                      : op.mul[c] * static_cast<float>(dot) + op.rowc[c] * static_cast<float>(sum) + op.add[c];
                        if (raw) {
                            raw[static_cast<size_t>(r) * 2 * op.N + c] = static_cast<int32_t>(pci[j]);
                            raw[static_cast<size_t>(r) * 2 * op.N + op.N + c] = s.rowpc[i];
                        }
                    } else {
                        const int32_t dot = op.Kv - 2 * static_cast<int32_t>(pci[j]);
                        // XNOR-Net input scale: v = mul·(K_row·dot) + add, torch's order (a·dot)·K up to rounding
                        v = op.xscale ? op.mul[c] * (s.krow[r] * static_cast<float>(dot)) + op.add[c]
                                      : op.mul[c] * static_cast<float>(dot) + op.add[c];
                        if (raw) raw[static_cast<size_t>(r) * op.N + c] = dot;
                    }
                    if (bits_out) {
                        v = std::min(std::max(v, op.lo), op.hi);
                        if (v - op.offset >= 0.f) mask |= 1u << j;
                    } else {
                        emit(op, r, c, v, outp, ldo, s);
                    }
                }
                if (bits_out) out32[static_cast<size_t>(r) * ldo32 + p] = mask;
            }
        }
    }
}

// binary linear with XNOR-Net's input scale on float rows x (row stride ldx): bits = sign(x) (sign(0) = +1)
// and K = mean_c |x| per row (summed in float64, rounded once to float32), then the popcount GEMM with the

void Engine::run_xlinear(const Op& op, int M, const float* x, int ldx, void* outp, Scratch& s, int32_t* raw) const {
    avec<uint64_t> xb(static_cast<size_t>(M) * op.W + 1, 0);
    if (ldx == op.K) quant_rows(isa_, x, M, op.K, nullptr, nullptr, xb.data(), op.W);
    else
        for (int r = 0; r < M; ++r)
            quant_rows(isa_, x + static_cast<size_t>(r) * ldx, 1, op.K, nullptr, nullptr,
                       xb.data() + static_cast<size_t>(r) * op.W, op.W);
    avec<float> kr = row_mean_abs(x, M, op.K, ldx);
    s.krow = kr.data();
    run_blinear(op, M, xb.data(), op.W, outp, s, 1, raw);
    s.krow = nullptr;
}

// K[r] = mean_c |x[r, c]|: four float64 partial sums (channels c mod 4, in order; then (s0 + s1) + (s2 + s3)),
// divided by C, rounded once to float32. (float64 sums of float32 magnitudes are exact unless they span

avec<float> row_mean_abs(const float* x, int M, int C, int ldx) {
    avec<float> k(static_cast<size_t>(M) + 1, 0.f);
    for (int r = 0; r < M; ++r) {
        const float* xr = x + static_cast<size_t>(r) * ldx;
        double a[4] = {0.0, 0.0, 0.0, 0.0};
        int c = 0;
        for (; c + 4 <= C; c += 4)
            for (int q = 0; q < 4; ++q) a[q] += std::fabs(static_cast<double>(xr[c + q]));
        for (; c < C; ++c) a[c & 3] += std::fabs(static_cast<double>(xr[c]));
        k[r] = static_cast<float>(((a[0] + a[1]) + (a[2] + a[3])) / C);
    }
    return k;
}

void Engine::run_blinear(const Op& op, int M, const uint64_t* X, int ldx, void* outp, Scratch& s, int threads,
                 int32_t* raw) const {
    s.rowpc.resize(MR);
    const bool pooled_float = op.out_mode == OUT_MAX || op.out_mode == OUT_AVG;
    const int ntiles = (M + MR - 1) / MR;
    if (op.out_mode == OUT_OR && op.int_thr && raw == nullptr && has_fast_path(isa_, op.W) && op.W <= SHORT_W) {
        // OR pooling with compaction of the unset channels; inside one cloud, panels (not rows) go to the
        // threads so every panel keeps its early exit
        or_pool_compact(isa_, op.wp.data(), op.P.data(), op.N, op.W, X, ldx, M, static_cast<uint32_t*>(outp), threads);
        return;
    }
    if (threads > 1 && ntiles >= 2 * threads && !pooled_float && raw == nullptr && op.int_thr) {
        // intra-cloud parallelism over row tiles (batch smaller than the thread count)
        std::vector<uint32_t> orm_all(static_cast<size_t>(threads) * op.panels, 0);
#pragma omp parallel num_threads(threads)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            const int a = static_cast<int>(static_cast<long>(ntiles) * t / nt) * MR;
            const int b = std::min(M, static_cast<int>(static_cast<long>(ntiles) * (t + 1) / nt) * MR);
            Scratch ls;
            ls.rowpc.resize(MR);
            if (a < b) blinear_rows(op, a, b, X, ldx, outp, orm_all.data() + static_cast<size_t>(t) * op.panels, ls,
                                    nullptr);
        }
        if (op.out_mode == OUT_OR) {
            uint32_t* o = static_cast<uint32_t*>(outp);
            for (int p = 0; p < op.panels; ++p) {
                uint32_t m = 0;
                for (int t = 0; t < threads; ++t) m |= orm_all[static_cast<size_t>(t) * op.panels + p];
                o[p] = m;
            }
        }
        return;
    }
    begin_pool(op, s);
    if (op.int_thr) {
        std::vector<uint32_t> orm(op.panels + 1, 0);
        blinear_rows(op, 0, M, X, ldx, outp, orm.data(), s, raw);
        if (op.out_mode == OUT_OR) std::memcpy(outp, orm.data(), sizeof(uint32_t) * op.panels);
        return;
    }
    blinear_rows(op, 0, M, X, ldx, outp, nullptr, s, raw);
    end_pool(op, M, outp, s);
}

avec<uint64_t> pack_panels(const uint64_t* w, int N, int W) {
    const int panels = (N + NP - 1) / NP;
    avec<uint64_t> wp(static_cast<size_t>(panels) * NP * W, 0);
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < W; ++k) wp[(static_cast<size_t>(n / NP) * W + k) * NP + n % NP] = w[static_cast<size_t>(n) * W + k];
    return wp;
}

}  // namespace onebit
