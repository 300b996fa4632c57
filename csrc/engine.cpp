// onebit.runtime._engine: the whole exported graph runs in one native call.
//
// Python (onebit.runtime) validates the file and builds an execution plan once at load: a list
// of ops over numbered buffers. Engine::run executes every op for every cloud of the batch in C++
// (OpenMP across the batch, or across row tiles of the binary layers when the batch is smaller
// than the thread count). Buffers hold either float32 rows or packed-bit rows (64-bit words).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <ctime>
#include <vector>

#include "geometry_ops.h"
#include "kernels.h"

namespace py = pybind11;
using namespace onebit;

namespace {

enum OpType : int {
    OP_FLINEAR = 0, OP_BLINEAR = 1, OP_BMM = 2, OP_QUANT = 3, OP_IM2COL = 4, OP_BITPOOL = 5, OP_ADD = 6, OP_GAP = 7,
    // geometric ops of the point models (geometry_ops.h)
    OP_KNN = 8, OP_FPS = 9, OP_BALLQ = 10, OP_GATHER = 11, OP_EDGE = 12, OP_GROUP = 13, OP_POOL = 14, OP_CONCAT = 15,
    OP_AFFINE = 16  // float -> float per channel: mul·x + add (a BatchNorm in front of an XNOR-Net layer)
};
inline bool is_geo(int t) { return t >= OP_KNN && t <= OP_CONCAT; }
enum OutMode : int { OUT_F32 = 0, OUT_BITS = 1, OUT_OR = 2, OUT_MAX = 3, OUT_AVG = 4 };

struct BufSpec {
    bool bits = false;     // packed bits (else float32)
    bool pooled = false;   // one row (else one row per point)
    int cols = 0;          // channels
    int ld = 0;            // row stride in elements (floats or 64-bit words)
    int rows = 0;          // fixed row count (a spatial H*W map, NHWC rows); 0: per point / pooled
    int mult = 1;          // rows = N * mult when rows == 0 and not pooled (DGCNN's N*k edge rows)
    bool index = false;    // int32 index rows (kNN / FPS / ball query output), `cols` indices per row
    // index buffers: the row space their indices point into (set by the producing op)
    int irows = -1, imult = 1;
};

// rows of a buffer for an input of N rows (points, or pixels of the input image)
inline int nrows(const BufSpec& b, int N) { return b.rows > 0 ? b.rows : (b.pooled ? 1 : N * b.mult); }
inline bool same_rows(const BufSpec& a, const BufSpec& b) {
    return a.pooled == b.pooled && a.rows == b.rows && a.mult == b.mult;
}

template <class T>
using avec = std::vector<T>;

struct Op {
    std::string name;
    int type = 0, in0 = -1, in1 = -1, out = -1;
    bool dedup_out = false;        // compact duplicate rows of the output (see mark_dedup)
    int K = 0, N = 0, W = 0, panels = 0;
    int Kv = 0;                    // valid input bits (conv rows: taps x channels, without the word padding)
    // im2col / bit max pool geometry (NHWC maps, rows = pixels)
    int H = 0, Wd = 0, kh = 0, kw = 0, sh = 1, sw = 1, ph = 0, pw = 0, Ho = 0, Wo = 0;
    float padf = 0.f;              // im2col of a float map: the pad value
    avec<uint64_t> padw, inv;      // im2col of bits: one padded pixel; bit pool: AND-channels (inverted)
    bool and_mode = false, int_thr = false;
    int xscale = 0;                // XNOR-Net's K = mean_c |x| per row: 1 of the float input (packed here),
                                   // 2 of the float rows in1 (bits come in in0: a conv's im2col)
    int out_mode = OUT_F32;
    float lo = -INFINITY, hi = INFINITY, offset = 0.f;
    avec<float> wt;                // float weights, K x N
    avec<float> ws;                // same with the per-channel scale folded in (bits output)
    avec<uint64_t> wp;             // binary weights, panels
    avec<float> mul, add, rowc;    // per channel (padded to panels * NP)
    avec<int64_t> P;               // popcount bound per channel (padded)
    avec<int32_t> ecnt;            // AND (DAB) layers: k − 2·popcount(e) per channel
    avec<uint32_t> flip;           // per panel flip masks (all 0: flips are folded into the weights)
    avec<uint8_t> neg;             // channels stored complemented (debug: report the true dot)
    // geometric ops / grouped pooling
    int group = 0;                 // linear / pool: pool over consecutive groups of this many rows (0: none / all)
    int gk = 0;                    // knn: k; ball query: nsample; fps: npoint
    int coords = 0;                // channels used as coordinates (knn, fps, ball query, group)
    int idx = -1, feat = -1;       // group: index buffer, feature buffer (-1: none)
    float r2 = 0.f;                // ball query: float32(radius²)
    bool avg = false;              // pool: mean (else max)
    std::vector<int> ins;          // concat inputs
};

// timers: wall clock for benchmarks, per-thread CPU time for the per-op profile (robust on a shared host)
using clk = std::chrono::steady_clock;
inline double thread_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return 1e9 * static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec);
}

inline bool is_pooled_mode(int m) { return m == OUT_OR || m == OUT_MAX || m == OUT_AVG; }

template <class T>
avec<T> to_vec(const py::dict& d, const char* key, size_t expect, const std::string& op) {
    if (!d.contains(key)) throw std::invalid_argument("op '" + op + "': missing array '" + key + "'");
    auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(d[key]);
    if (!a) throw std::invalid_argument("op '" + op + "': array '" + key + "' has the wrong type");
    if (static_cast<size_t>(a.size()) != expect)
        throw std::invalid_argument("op '" + op + "': array '" + key + "' has " + std::to_string(a.size()) +
                                    " elements, expected " + std::to_string(expect));
    return avec<T>(a.data(), a.data() + a.size());
}

int get_int(const py::dict& d, const char* key, const std::string& op) {
    if (!d.contains(key)) throw std::invalid_argument("op '" + op + "': missing field '" + key + "'");
    return d[key].cast<int>();
}

struct Scratch {
    avec<uint32_t> pc = avec<uint32_t>(MR * NP);
    avec<float> z, pool;
    avec<uint32_t> orm;
    avec<int32_t> rowpc;
    const float* krow = nullptr;   // XNOR-Net input scale K per row of the current call (xscale layers)
};

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
__attribute__((target("avx512f"))) void float_epilogue_avx512(ONEBIT_FLOAT_EPILOGUE_ARGS) { ONEBIT_FLOAT_EPILOGUE_BODY }
__attribute__((target("avx2"))) void float_epilogue_avx2(ONEBIT_FLOAT_EPILOGUE_ARGS) { ONEBIT_FLOAT_EPILOGUE_BODY }
void float_epilogue_portable(ONEBIT_FLOAT_EPILOGUE_ARGS) { ONEBIT_FLOAT_EPILOGUE_BODY }
#undef ONEBIT_FLOAT_EPILOGUE_BODY
#undef ONEBIT_FLOAT_EPILOGUE_ARGS

inline void float_epilogue(int isa, const uint32_t* pc, int R, int Kv, const float* k, const float* mul,
                           const float* add, float lo, float hi, int cmax, float* dst, int ldo, bool pool_max) {
    if (isa == ISA_AVX512) float_epilogue_avx512(pc, R, Kv, k, mul, add, lo, hi, cmax, dst, ldo, pool_max);
    else if (isa == ISA_AVX2) float_epilogue_avx2(pc, R, Kv, k, mul, add, lo, hi, cmax, dst, ldo, pool_max);
    else float_epilogue_portable(pc, R, Kv, k, mul, add, lo, hi, cmax, dst, ldo, pool_max);
}

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
// Short rows keep each panel in registers (thr_rows, AVX-512 or AVX2); long rows use the AVX-512 6x32 register
// tile, panel by panel so the panel stays in L1 while the rows stream from L2.
inline bool has_fast_path(int isa, int W) { return isa == ISA_AVX512 || (isa == ISA_AVX2 && W <= SHORT_W); }

void thr_layer(int isa, const uint64_t* X, size_t ldx, int r0, int r1, const uint64_t* wp, int W, int panels,
               const int64_t* P, uint32_t* out32, size_t ldo32) {
    for (int p = 0; p < panels; ++p) {
        const uint64_t* wpp = wp + static_cast<size_t>(p) * W * NP;
        if (W <= SHORT_W) {
            (isa == ISA_AVX512 ? thr_rows_avx512 : thr_rows_avx2)(X + static_cast<size_t>(r0) * ldx, ldx, r1 - r0, wpp,
                                                                  W, P + p * NP,
                                                                  out32 + static_cast<size_t>(r0) * ldo32 + p, ldo32);
            continue;
        }
        for (int rt = r0; rt < r1; rt += MR)
            thr_tile_avx512(false, X + static_cast<size_t>(rt) * ldx, ldx, std::min(MR, r1 - rt), wpp, W, P + p * NP, 0,
                            out32 + static_cast<size_t>(rt) * ldo32 + p, ldo32, nullptr);
    }
}

// channels of panel p that exist (the last panel may be partial)
inline uint32_t panel_valid(int N, int p) {
    const int c = std::min(NP, N - p * NP);
    return c >= 32 ? 0xFFFFFFFFu : ((1u << c) - 1);
}

// OR pooling of one panel over rows [r0, r1) on a vector path, with the early exit: once every channel of the
// panel is set, the remaining rows cannot change the pooled bits.
uint32_t or_panel(int isa, const uint64_t* X, size_t ldx, int r0, int r1, const uint64_t* wpp, int W, const int64_t* P,
                  uint32_t valid) {
    if (W <= SHORT_W)
        return (isa == ISA_AVX512 ? or_rows_avx512 : or_rows_avx2)(X + static_cast<size_t>(r0) * ldx, ldx, r1 - r0, wpp,
                                                                   W, P, valid);
    uint32_t m = 0;
    for (int rt = r0; rt < r1 && (m & valid) != valid; rt += MR)
        thr_tile_avx512(true, X + static_cast<size_t>(rt) * ldx, ldx, std::min(MR, r1 - rt), wpp, W, P, 0, nullptr, 0, &m);
    return m & valid;
}

// OR pooling of a short-row XNOR layer (vector paths) with the early exit made useful: a channel is final once
// one row sets it, so after each stage (rows [0, 32), [32, 128), [128, 512), ...) the channels still unset
// are gathered into fresh, dense panels and only those scan the remaining rows. Panel-level exits alone
// rarely fire (all 32 channels of a panel must be set); compaction turns every set channel into saved work.
// One thread's share: channels [0, N) of the panels starting at wp0 / P0, pooled bits to out[0 .. panels).
void or_pool_compact_range(int isa, const uint64_t* wp0, const int64_t* P0, int N, int W, const uint64_t* X,
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
int dedup_rows_t(uint64_t* rows, int M, int ld) {
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

class Engine {
   public:
    Engine(const py::list& buffers, const py::list& ops, int output, int isa)
        : isa_(isa), output_(output) {
        for (auto item : buffers) {
            auto d = item.cast<py::dict>();
            BufSpec b;
            b.bits = d["bits"].cast<bool>();
            b.pooled = d["pooled"].cast<bool>();
            b.cols = d["cols"].cast<int>();
            if (b.cols < 1 || b.cols > (1 << 24)) throw std::invalid_argument("buffer with a bad channel count");
            b.ld = b.bits ? (b.cols + 63) / 64 : b.cols;
            b.rows = d.contains("rows") ? d["rows"].cast<int>() : 0;
            if (b.rows < 0 || b.rows > (1 << 26)) throw std::invalid_argument("buffer with a bad row count");
            b.mult = d.contains("mult") ? d["mult"].cast<int>() : 1;
            b.index = d.contains("index") && d["index"].cast<bool>();
            if (b.mult < 1 || b.mult > (1 << 16) || (b.mult > 1 && (b.rows || b.pooled)) || (b.index && b.bits))
                throw std::invalid_argument("buffer with a bad row multiplier or index flag");
            bufs_.push_back(b);
        }
        if (bufs_.empty() || bufs_[0].bits || bufs_[0].pooled)
            throw std::invalid_argument("buffer 0 must be the float per-point input");
        for (auto item : ops) ops_.push_back(make_op(item.cast<py::dict>()));
        if (output_ < 0 || output_ >= static_cast<int>(bufs_.size()) || bufs_[output_].bits || bufs_[output_].index)
            throw std::invalid_argument("the graph output must be a float buffer");
        prof_ns_.assign(ops_.size(), 0.0);
        mark_dedup();
    }

    int in_channels() const { return bufs_[0].cols; }

    py::object run(py::array_t<float, py::array::c_style | py::array::forcecast> x, int threads, bool debug,
                   bool profile) {
        if (x.ndim() != 3) throw std::invalid_argument("input must have shape (B, N, C)");
        const int B = static_cast<int>(x.shape(0)), N = static_cast<int>(x.shape(1));
        if (static_cast<int>(x.shape(2)) != bufs_[0].cols)
            throw std::invalid_argument("input has " + std::to_string(x.shape(2)) + " channels, the model expects " +
                                        std::to_string(bufs_[0].cols));
        if (N < 1) throw std::invalid_argument("input needs at least one point");
        for (const Op& op : ops_)
            if (op.type == OP_KNN && N < op.gk)
                throw std::invalid_argument("op '" + op.name + "': kNN with k = " + std::to_string(op.gk) +
                                            " needs at least " + std::to_string(op.gk) + " points, got " +
                                            std::to_string(N));
        if (bufs_[0].rows > 0 && N != bufs_[0].rows)
            throw std::invalid_argument("input has " + std::to_string(N) + " rows (pixels), the model expects " +
                                        std::to_string(bufs_[0].rows));
        if (threads < 1) threads = 1;
        {  // a NaN / inf would silently become a 0 bit: refuse it, naming where it is
            const float* p = x.data();
            const size_t n = static_cast<size_t>(B) * N * bufs_[0].cols;
            for (size_t i = 0; i < n; ++i)
                if (!std::isfinite(p[i])) {
                    const size_t per = static_cast<size_t>(N) * bufs_[0].cols;
                    throw std::invalid_argument("input is not finite (" + std::to_string(p[i]) + ") at cloud " +
                                                std::to_string(i / per) + ", row " +
                                                std::to_string((i % per) / bufs_[0].cols) + ", channel " +
                                                std::to_string(i % bufs_[0].cols));
                }
        }
        const BufSpec& ob = bufs_[output_];
        const int out_rows = nrows(ob, N);
        py::array_t<float> result({B, out_rows, ob.cols});
        const float* xin = x.data();
        float* res = result.mutable_data();
        const size_t in_stride = static_cast<size_t>(N) * bufs_[0].cols;
        const size_t out_stride = static_cast<size_t>(out_rows) * ob.cols;
        std::fill(prof_ns_.begin(), prof_ns_.end(), 0.0);
        py::list dbg;
        if (debug) {
            // debug: serial, every buffer and every binary layer's raw integer accumulators kept
            for (int b = 0; b < B; ++b) {
                py::dict d;
                forward(xin + b * in_stride, N, res + b * out_stride, 1, &d, false);
                dbg.append(d);
            }
            return py::make_tuple(result, dbg);
        }
        {
            py::gil_scoped_release release;
            if (B >= threads || threads == 1) {
                const int nt = std::min(threads, B);
                std::vector<std::vector<double>> tprof(nt, std::vector<double>(ops_.size(), 0.0));
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
                for (int b = 0; b < B; ++b) {
                    forward(xin + b * in_stride, N, res + b * out_stride, 1, nullptr, profile,
                            &tprof[omp_get_thread_num()]);
                }
                for (auto& t : tprof)
                    for (size_t i = 0; i < t.size(); ++i) prof_ns_[i] += t[i];
            } else {
                std::vector<double> tp(ops_.size(), 0.0);
                for (int b = 0; b < B; ++b)
                    forward(xin + b * in_stride, N, res + b * out_stride, threads, nullptr, profile, &tp);
                prof_ns_ = tp;
            }
        }
        return std::move(result);
    }

    py::list profile() const {
        py::list l;
        for (size_t i = 0; i < ops_.size(); ++i) l.append(py::make_tuple(ops_[i].name, prof_ns_[i]));
        return l;
    }

   private:
    int isa_;
    int output_;
    std::vector<BufSpec> bufs_;
    std::vector<Op> ops_;
    std::vector<double> prof_ns_;

    // A per-point bit buffer whose rows only ever reach a max (OR) pool, through a chain of per-point binary
    // layers each read by nothing else, may drop duplicate rows: max and OR do not count multiplicity.
    // Only the first buffer of such a chain is compacted (later ones inherit its row count).
    void mark_dedup() {
        std::vector<std::vector<int>> readers(bufs_.size());
        for (size_t j = 0; j < ops_.size(); ++j) {
            for (int b : {ops_[j].in0, ops_[j].in1, ops_[j].idx, ops_[j].feat})
                if (b >= 0) readers[b].push_back(static_cast<int>(j));
        }
        std::vector<bool> in_chain(bufs_.size(), false);
        for (auto& op : ops_) {
            const int b = op.out;
            const BufSpec& B = bufs_[b];
            if (!B.bits || B.pooled || B.rows != 0 || B.mult != 1 || b == output_ || in_chain[b]) continue;
            std::vector<int> chain{b};
            bool ok = false;
            for (int cur = b;;) {
                if (readers[cur].size() != 1) break;
                const Op& c = ops_[readers[cur][0]];
                // one plain binary layer over all rows (no second input, no grouped pooling, no row multiplier)
                if (c.in0 != cur || c.in1 >= 0 || c.idx >= 0 || c.feat >= 0 || c.type != OP_BLINEAR || c.group != 0 ||
                    bufs_[c.out].mult != 1)
                    break;
                if (c.out_mode == OUT_OR || c.out_mode == OUT_MAX) {
                    ok = true;
                    break;
                }
                if (c.out_mode != OUT_BITS || c.out == output_) break;
                cur = c.out;
                chain.push_back(cur);
            }
            if (!ok) continue;
            op.dedup_out = true;
            for (int c : chain) in_chain[c] = true;
        }
    }

    Op make_op(const py::dict& d) {
        Op op;
        op.name = d.contains("name") ? d["name"].cast<std::string>() : std::string("op");
        op.type = get_int(d, "type", op.name);
        op.in0 = get_int(d, "in0", op.name);
        op.in1 = d.contains("in1") ? d["in1"].cast<int>() : -1;
        op.out = get_int(d, "out", op.name);
        const int nb = static_cast<int>(bufs_.size());
        auto chk = [&](int id) {
            if (id < 0 || id >= nb) throw std::invalid_argument("op '" + op.name + "': bad buffer reference");
        };
        if (is_geo(op.type)) {
            make_geo(op, d, chk);
            return op;
        }
        chk(op.in0);
        chk(op.out);
        if (op.out == 0 || op.out == op.in0 || op.out == op.in1)
            throw std::invalid_argument("op '" + op.name + "': bad output buffer");
        const BufSpec& bi = bufs_[op.in0];
        const BufSpec& bo = bufs_[op.out];
        if (bi.index || bo.index || (op.in1 >= 0 && op.in1 < nb && bufs_[op.in1].index))
            throw std::invalid_argument("op '" + op.name + "': index rows are read by geometric ops only");
        if (bi.mult != bo.mult && !bo.pooled && !d.contains("group"))
            throw std::invalid_argument("op '" + op.name + "': row multiplier mismatch");
        op.out_mode = d.contains("out_mode") ? d["out_mode"].cast<int>() : OUT_F32;
        if (op.out_mode < 0 || op.out_mode > OUT_AVG) throw std::invalid_argument("op '" + op.name + "': bad out_mode");
        const bool want_bits = op.out_mode == OUT_BITS || op.out_mode == OUT_OR;
        if (op.type == OP_QUANT) {
            if (bi.bits || !bo.bits || bi.cols != bo.cols || bi.pooled != bo.pooled || bi.rows != bo.rows)
                throw std::invalid_argument("op '" + op.name + "': quant needs float in, bits out, same shape");
            if (d.contains("mul")) {  // per-channel affine before the sign (a folded BatchNorm): [mul·x + add >= 0]
                op.mul = to_vec<float>(d, "mul", bi.cols, op.name);
                op.add = to_vec<float>(d, "add", bi.cols, op.name);
            }
            return op;
        }
        if (op.type == OP_ADD) {  // out = clamp(in0 + in1, lo, hi): a residual shortcut
            chk(op.in1);
            const BufSpec& b1 = bufs_[op.in1];
            if (bi.bits || b1.bits || bo.bits || bi.cols != b1.cols || bi.cols != bo.cols || bi.rows != b1.rows ||
                bi.rows != bo.rows || bi.pooled != b1.pooled || bi.pooled != bo.pooled)
                throw std::invalid_argument("op '" + op.name + "': add needs two float values of the same shape");
            op.lo = d.contains("lo") ? d["lo"].cast<float>() : -INFINITY;
            op.hi = d.contains("hi") ? d["hi"].cast<float>() : INFINITY;
            return op;
        }
        if (op.type == OP_AFFINE) {
            if (bi.bits || bo.bits || bi.cols != bo.cols || !same_rows(bi, bo))
                throw std::invalid_argument("op '" + op.name + "': affine maps a float value to one of the same shape");
            op.mul = to_vec<float>(d, "mul", bi.cols, op.name);
            op.add = to_vec<float>(d, "add", bi.cols, op.name);
            return op;
        }
        if (op.type == OP_GAP) {  // global average pool of a float map
            if (bi.bits || bo.bits || bi.pooled || !bo.pooled || bi.cols != bo.cols || bo.rows)
                throw std::invalid_argument("op '" + op.name + "': global average pool maps a float map to a pooled row");
            return op;
        }
        if (op.type == OP_IM2COL || op.type == OP_BITPOOL) {
            make_spatial(op, d, bi, bo);
            return op;
        }
        if (op.type == OP_BMM) {
            chk(op.in1);
            const BufSpec& bt = bufs_[op.in1];
            if (bi.bits || bt.bits || bo.bits || !bt.pooled || bt.cols != bi.cols * bi.cols || bo.cols != bi.cols ||
                bo.pooled != bi.pooled)
                throw std::invalid_argument("op '" + op.name + "': bmm shapes do not agree");
            return op;
        }
        if (op.type != OP_FLINEAR && op.type != OP_BLINEAR)
            throw std::invalid_argument("op '" + op.name + "': unknown op type");
        op.K = get_int(d, "K", op.name);
        op.N = get_int(d, "N", op.name);
        if (op.K != bi.cols || op.N != bo.cols || op.K < 1 || op.N < 1)
            throw std::invalid_argument("op '" + op.name + "': K/N do not match its buffers");
        if (bo.bits != want_bits) throw std::invalid_argument("op '" + op.name + "': output kind mismatch");
        op.group = d.contains("group") ? d["group"].cast<int>() : 0;
        if (op.group) {
            // pooling over consecutive groups of `group` rows (DGCNN's k neighbours, PointNet++'s ball groups)
            if (op.group < 1 || !is_pooled_mode(op.out_mode) || bi.pooled || bo.pooled ||
                !(bi.rows ? (bo.rows * static_cast<long>(op.group) == bi.rows && bi.mult == 1 && bo.mult == 1)
                          : (bo.rows == 0 && bi.mult == bo.mult * op.group)))
                throw std::invalid_argument("op '" + op.name + "': grouped pooling rows do not match its buffers");
        } else {
            if (bo.pooled != (is_pooled_mode(op.out_mode) || bi.pooled))
                throw std::invalid_argument("op '" + op.name + "': pooled flag mismatch");
            if (!bo.pooled && (bo.rows != bi.rows || bo.mult != bi.mult))
                throw std::invalid_argument("op '" + op.name + "': row count mismatch");
        }
        op.Kv = d.contains("Kv") ? d["Kv"].cast<int>() : op.K;
        if (op.Kv < 1 || op.Kv > op.K) throw std::invalid_argument("op '" + op.name + "': bad valid bit count Kv");
        op.panels = (op.N + NP - 1) / NP;
        const size_t NPAD = static_cast<size_t>(op.panels) * NP;
        auto pad = [&](avec<float> v, float fill) {
            v.resize(NPAD, fill);
            return v;
        };
        op.mul = pad(to_vec<float>(d, "mul", op.N, op.name), 0.f);
        op.add = pad(to_vec<float>(d, "add", op.N, op.name), -1.f);
        op.lo = d.contains("lo") ? d["lo"].cast<float>() : -INFINITY;
        op.hi = d.contains("hi") ? d["hi"].cast<float>() : INFINITY;
        op.offset = d.contains("offset") ? d["offset"].cast<float>() : 0.f;
        if (op.type == OP_FLINEAR) {
            if (bi.bits) throw std::invalid_argument("op '" + op.name + "': float linear needs a float input");
            op.wt = to_vec<float>(d, "wt", static_cast<size_t>(op.K) * op.N, op.name);
            op.ws = op.wt;  // scale folded into the weights for the bits path
            for (int k = 0; k < op.K; ++k)
                for (int n = 0; n < op.N; ++n) op.ws[static_cast<size_t>(k) * op.N + n] *= op.mul[n];
            return op;
        }
        // binary linear
        op.xscale = d.contains("xscale") ? d["xscale"].cast<int>() : 0;
        if (op.xscale < 0 || op.xscale > 2) throw std::invalid_argument("op '" + op.name + "': bad xscale");
        if (op.xscale == 2) {
            // bits in in0, K from the float rows of in1 (the same rows: a conv's float im2col, zero padded)
            chk(op.in1);
            const BufSpec& bk = bufs_[op.in1];
            if (!bi.bits || bk.bits || bk.index || !same_rows(bi, bk) || want_bits || d.contains("P") || op.group)
                throw std::invalid_argument("op '" + op.name + "': an input-scaled binary linear on bits needs float "
                                            "scale rows like its input, a float output and no grouping");
        } else if (op.xscale) {
            // XNOR-Net input scale: the op reads the float rows, packs their signs and computes K itself
            if (bi.bits || want_bits || d.contains("P") || op.Kv != op.K)
                throw std::invalid_argument("op '" + op.name + "': an input-scaled (XNOR-Net K) binary linear needs "
                                            "a float input, a float output and no integer thresholds");
        } else if (!bi.bits) {
            throw std::invalid_argument("op '" + op.name + "': binary linear needs a bit input");
        }
        op.W = (op.K + 63) / 64;
        op.and_mode = d.contains("and_mode") && d["and_mode"].cast<bool>();
        auto w = to_vec<uint64_t>(d, "weight", static_cast<size_t>(op.N) * op.W, op.name);
        if (op.K % 64) {  // padding bits must be 0 so they never count
            const uint64_t keep = (1ULL << (op.K % 64)) - 1;
            for (int n = 0; n < op.N; ++n)
                if (w[static_cast<size_t>(n) * op.W + op.W - 1] & ~keep)
                    throw std::invalid_argument("op '" + op.name + "': weight padding bits are not zero");
        }
        op.int_thr = d.contains("P");
        if (op.int_thr) {
            if (op.and_mode || !want_bits)
                throw std::invalid_argument("op '" + op.name + "': integer thresholds need an XNOR layer with bit output");
            op.P = to_vec<int64_t>(d, "P", op.N, op.name);
            auto fl = to_vec<uint8_t>(d, "flip", op.N, op.name);
            op.neg.assign(NPAD, 0);
            fold_flips(w.data(), op.N, op.W, op.K, op.P.data(), fl.data(), op.neg.data());
            op.P.resize(NPAD, -1);  // padded channels: pc <= -1 never holds -> bit 0
            op.flip.assign(op.panels, 0);
        }
        op.wp.assign(NPAD * op.W, 0);
        for (int n = 0; n < op.N; ++n)
            for (int k = 0; k < op.W; ++k)
                op.wp[(static_cast<size_t>(n / NP) * op.W + k) * NP + n % NP] = w[static_cast<size_t>(n) * op.W + k];
        if (op.and_mode) {
            op.rowc = pad(to_vec<float>(d, "rowc", op.N, op.name), 0.f);
            op.ecnt.assign(NPAD, 0);  // k − 2·|e| per channel, from the weight bits
            for (int n = 0; n < op.N; ++n) {
                int pc = 0;
                for (int k = 0; k < op.W; ++k) pc += __builtin_popcountll(w[static_cast<size_t>(n) * op.W + k]);
                op.ecnt[n] = op.Kv - 2 * pc;
            }
        }
        return op;
    }

    void make_spatial(Op& op, const py::dict& d, const BufSpec& bi, const BufSpec& bo) const {
        const std::string& nm = op.name;
        op.H = get_int(d, "H", nm);
        op.Wd = get_int(d, "W", nm);
        op.kh = get_int(d, "kh", nm);
        op.kw = get_int(d, "kw", nm);
        op.sh = get_int(d, "sh", nm);
        op.sw = get_int(d, "sw", nm);
        op.ph = d.contains("ph") ? d["ph"].cast<int>() : 0;
        op.pw = d.contains("pw") ? d["pw"].cast<int>() : 0;
        if (op.H < 1 || op.Wd < 1 || op.kh < 1 || op.kw < 1 || op.sh < 1 || op.sw < 1 || op.ph < 0 || op.pw < 0 ||
            op.ph >= op.kh || op.pw >= op.kw || op.H + 2 * op.ph < op.kh || op.Wd + 2 * op.pw < op.kw)
            throw std::invalid_argument("op '" + nm + "': bad window geometry");
        op.Ho = (op.H + 2 * op.ph - op.kh) / op.sh + 1;
        op.Wo = (op.Wd + 2 * op.pw - op.kw) / op.sw + 1;
        if (bi.rows != op.H * op.Wd || bo.rows != op.Ho * op.Wo || bi.pooled || bo.pooled)
            throw std::invalid_argument("op '" + nm + "': map sizes do not match its buffers");
        if (op.type == OP_BITPOOL) {
            if (bi.bits != bo.bits || bi.cols != bo.cols || (bi.bits && (op.ph || op.pw)))
                throw std::invalid_argument("op '" + nm + "': max pool needs the same kind and channels (bits: no padding)");
            if (!bi.bits) return;  // float max pool (padding = -inf)
            op.inv = to_vec<uint64_t>(d, "inv", static_cast<size_t>(bi.ld), nm);
            if (bi.cols % 64 && (op.inv[bi.ld - 1] >> (bi.cols % 64)))
                throw std::invalid_argument("op '" + nm + "': inv padding bits are not zero");
            return;
        }
        const size_t taps = static_cast<size_t>(op.kh) * op.kw;
        if (bi.bits != bo.bits || static_cast<size_t>(bo.ld) != taps * bi.ld ||
            static_cast<size_t>(bo.cols) != taps * (bi.bits ? 64 * static_cast<size_t>(bi.ld) : bi.cols))
            throw std::invalid_argument("op '" + nm + "': im2col output has the wrong width");
        const float pv = d.contains("pad") ? d["pad"].cast<float>() : 0.f;
        if (bi.bits) {
            if (pv != 1.f && pv != -1.f) throw std::invalid_argument("op '" + nm + "': bit pad value must be +1 or -1");
            op.padw.assign(bi.ld, 0);
            if (pv > 0)
                for (int c = 0; c < bi.cols; ++c) op.padw[c >> 6] |= 1ULL << (c & 63);
        } else {
            op.padf = pv;
        }
    }

    // ---------------------------------------------------------------- geometric ops (point models)
    template <class Chk>
    void make_geo(Op& op, const py::dict& d, Chk chk) {
        const std::string& nm = op.name;
        auto bad = [&](const std::string& m) { throw std::invalid_argument("op '" + nm + "': " + m); };
        auto flt = [](const BufSpec& b) { return !b.bits && !b.index; };
        auto opt = [&](const char* key, int dflt) { return d.contains(key) ? d[key].cast<int>() : dflt; };
        // an index buffer points into the row space of `src`; a reader must index a buffer of that space
        auto space_of = [&](const BufSpec& ix, const BufSpec& src) {
            return !src.pooled && ix.irows == src.rows && ix.imult == src.mult;
        };
        auto set_space = [&](BufSpec& ix, const BufSpec& src) {
            if (ix.irows != -1) bad("index buffer written twice");
            ix.irows = src.rows;
            ix.imult = src.mult;
        };
        if (op.type == OP_CONCAT) {
            if (!d.contains("ins")) bad("concat needs its inputs");
            op.ins = d["ins"].cast<std::vector<int>>();
            if (op.ins.size() < 2) bad("concat needs at least two inputs");
            int cols = 0;
            for (int id : op.ins) {
                chk(id);
                const BufSpec& b = bufs_[id];
                if (id == op.out || b.index || bufs_[op.out].index || b.bits != bufs_[op.out].bits ||
                    !same_rows(b, bufs_[op.out]))
                    bad("concat inputs must have the output's kind and rows");
                cols += b.cols;
            }
            if (cols != bufs_[op.out].cols) bad("concat output channels are not the sum of its inputs'");
            op.in0 = op.ins[0];
            return;
        }
        chk(op.in0);
        chk(op.out);
        if (op.out == 0 || op.out == op.in0 || op.out == op.in1) bad("bad output buffer");
        BufSpec& bo = bufs_[op.out];
        const BufSpec& bi = bufs_[op.in0];
        switch (op.type) {
            case OP_KNN: {
                op.gk = get_int(d, "k", nm);
                op.coords = opt("coords", bi.cols);
                if (!flt(bi) || bi.pooled || bi.rows || bi.mult != 1 || !bo.index || !same_rows(bi, bo) || bo.cols != op.gk ||
                    op.gk < 1 || op.coords < 1 || op.coords > bi.cols)
                    bad("knn maps float per-point rows to a per-point index of k columns");
                set_space(bo, bi);
                return;
            }
            case OP_FPS: {
                op.gk = bo.rows;
                op.coords = opt("coords", bi.cols);
                if (!flt(bi) || bi.pooled || !bo.index || bo.rows < 1 || bo.mult != 1 || bo.pooled || bo.cols != 1 ||
                    op.coords < 1 || op.coords > bi.cols || opt("start", 0) != 0)
                    bad("fps maps float rows to a fixed number of index rows (one index each, start 0)");
                set_space(bo, bi);
                return;
            }
            case OP_BALLQ: {
                chk(op.in1);
                const BufSpec& bc = bufs_[op.in1];
                op.gk = get_int(d, "k", nm);
                op.coords = opt("coords", 3);
                const double r = d.contains("radius") ? d["radius"].cast<double>() : -1.0;
                op.r2 = static_cast<float>(r * r);  // torch compares float32 distances with float32(r*r)
                if (!flt(bi) || !flt(bc) || bi.pooled || bc.pooled || !bo.index || !same_rows(bc, bo) || bo.cols != op.gk ||
                    op.gk < 1 || !(r > 0) || !std::isfinite(r) || op.coords < 1 || op.coords > 4 || op.coords > bi.cols ||
                    op.coords > bc.cols)
                    bad("ball_query needs float points and centres (radius > 0) and an index of k columns per centre");
                set_space(bo, bi);
                return;
            }
            case OP_GATHER: {
                chk(op.in1);
                const BufSpec& ix = bufs_[op.in1];
                if (bi.index || !ix.index || !space_of(ix, bi) || bo.bits != bi.bits || bo.index || bo.cols != bi.cols ||
                    bo.pooled || !(ix.rows ? (bo.rows == ix.rows * ix.cols && bo.mult == 1)
                                           : (bo.rows == 0 && bo.mult == ix.mult * ix.cols)))
                    bad("gather needs rows and an index into them; output rows = index rows x index columns");
                return;
            }
            case OP_EDGE: {
                chk(op.in1);
                const BufSpec& ix = bufs_[op.in1];
                if (!flt(bi) || bi.pooled || bi.rows || bi.mult != 1 || !ix.index || !space_of(ix, bi) || !same_rows(ix, bi) ||
                    bo.index || bo.pooled || bo.rows || bo.mult != ix.cols || bo.cols != 2 * bi.cols)
                    bad("edge maps float per-point rows and their kNN index to N*k rows of 2C channels");
                return;
            }
            case OP_GROUP: {
                chk(op.in1);
                op.idx = get_int(d, "idx", nm);
                op.feat = opt("feat", -1);
                chk(op.idx);
                const BufSpec& bc = bufs_[op.in1];
                const BufSpec& ix = bufs_[op.idx];
                op.coords = opt("coords", 3);
                int F = 0;
                if (op.feat >= 0) {
                    chk(op.feat);
                    const BufSpec& bf = bufs_[op.feat];
                    if (bf.index || !same_rows(bf, bi) || (bf.bits && !bo.bits) || op.feat == op.out) bad("group features must have the points' rows");
                    F = bf.cols;
                }
                if (!flt(bi) || !flt(bc) || bi.pooled || bc.pooled || !ix.index || !space_of(ix, bi) || !same_rows(ix, bc) ||
                    op.coords < 1 || op.coords > bi.cols || op.coords > bc.cols || bo.index || bo.pooled ||
                    bo.cols != op.coords + F || !(ix.rows ? (bo.rows == ix.rows * ix.cols && bo.mult == 1)
                                                           : (bo.rows == 0 && bo.mult == ix.mult * ix.cols)) ||
                    op.idx == op.out)
                    bad("group needs float points, centres, an index of the centres' rows into the points, and "
                        "output rows = centres x k of coords + feature channels");
                op.gk = ix.cols;
                return;
            }
            case OP_POOL: {
                op.group = opt("group", 0);
                op.avg = d.contains("avg") && d["avg"].cast<bool>();
                op.offset = d.contains("offset") ? d["offset"].cast<float>() : 0.f;
                const bool ok_rows = op.group == 0 ? bo.pooled
                                                   : (op.group >= 1 && !bo.pooled &&
                                                      (bi.rows ? (bo.rows * static_cast<long>(op.group) == bi.rows && bo.mult == 1)
                                                               : (bo.rows == 0 && bi.mult == bo.mult * op.group)));
                if (!flt(bi) || !flt(bo) || bi.pooled || bi.cols != bo.cols || !ok_rows || !std::isfinite(op.offset))
                    bad("pool maps float rows to one float row per group (or per cloud)");
                return;
            }
            default: bad("unknown op type");
        }
    }

    void run_geo(const Op& op, int N, const std::vector<void*>& ptr, int threads) const {
        const BufSpec& bi = bufs_[op.in0];
        const BufSpec& bo = bufs_[op.out];
        const int M = nrows(bi, N);
        auto F = [&](int id) { return static_cast<const float*>(ptr[id]); };
        auto I = [&](int id) { return static_cast<const int32_t*>(ptr[id]); };
        switch (op.type) {
            case OP_KNN:
                geo::knn(isa_, F(op.in0), M, bi.ld, op.coords, op.gk, static_cast<int32_t*>(ptr[op.out]), threads);
                break;
            case OP_FPS: geo::fps(F(op.in0), M, bi.ld, op.coords, op.gk, 0, static_cast<int32_t*>(ptr[op.out])); break;
            case OP_BALLQ: {
                const BufSpec& bc = bufs_[op.in1];
                geo::ball_query(F(op.in0), M, bi.ld, F(op.in1), nrows(bc, N), bc.ld, op.coords, op.r2, op.gk,
                                static_cast<int32_t*>(ptr[op.out]), threads);
                break;
            }
            case OP_GATHER: {
                const int R = nrows(bo, N);
                if (bi.bits) geo::gather_b(static_cast<const uint64_t*>(ptr[op.in0]), bi.ld, I(op.in1), R, static_cast<uint64_t*>(ptr[op.out]));
                else geo::gather_f(F(op.in0), bi.ld, bi.cols, I(op.in1), R, static_cast<float*>(ptr[op.out]), bo.ld);
                break;
            }
            case OP_EDGE: {
                const int k = bufs_[op.in1].cols;
                if (bo.bits) geo::edge_b(isa_, F(op.in0), M, bi.ld, bi.cols, I(op.in1), k, static_cast<uint64_t*>(ptr[op.out]), bo.ld);
                else geo::edge_f(F(op.in0), M, bi.ld, bi.cols, I(op.in1), k, static_cast<float*>(ptr[op.out]));
                break;
            }
            case OP_GROUP: {
                const BufSpec& bc = bufs_[op.in1];
                const int S = nrows(bc, N);
                const BufSpec* bf = op.feat >= 0 ? &bufs_[op.feat] : nullptr;
                const int Fc = bf ? bf->cols : 0, ldf = bf ? bf->ld : 0;
                if (bo.bits)
                    geo::group_b(F(op.in0), bi.ld, F(op.in1), bc.ld, op.coords, bf && !bf->bits ? F(op.feat) : nullptr,
                                 bf && bf->bits ? static_cast<const uint64_t*>(ptr[op.feat]) : nullptr, ldf, Fc, I(op.idx), S,
                                 op.gk, static_cast<uint64_t*>(ptr[op.out]), bo.ld);
                else
                    geo::group_f(F(op.in0), bi.ld, F(op.in1), bc.ld, op.coords, bf ? F(op.feat) : nullptr, ldf, Fc, I(op.idx),
                                 S, op.gk, static_cast<float*>(ptr[op.out]));
                break;
            }
            case OP_POOL:
                geo::pool_groups(F(op.in0), M, bi.cols, op.group ? op.group : M, op.avg, op.offset,
                                 static_cast<float*>(ptr[op.out]));
                break;
            default: {  // OP_CONCAT
                const int R = nrows(bo, N);
                if (bo.bits) {
                    uint64_t* o = static_cast<uint64_t*>(ptr[op.out]);
                    for (int r = 0; r < R; ++r) {
                        int pos = 0;
                        for (int id : op.ins) {
                            const BufSpec& b = bufs_[id];
                            geo::put_bits(o + static_cast<size_t>(r) * bo.ld, pos,
                                          static_cast<const uint64_t*>(ptr[id]) + static_cast<size_t>(r) * b.ld, b.cols);
                            pos += b.cols;
                        }
                    }
                } else {
                    float* o = static_cast<float*>(ptr[op.out]);
                    for (int r = 0; r < R; ++r) {
                        int pos = 0;
                        for (int id : op.ins) {
                            const BufSpec& b = bufs_[id];
                            std::memcpy(o + static_cast<size_t>(r) * bo.ld + pos, F(id) + static_cast<size_t>(r) * b.ld,
                                        sizeof(float) * b.cols);
                            pos += b.cols;
                        }
                    }
                }
            }
        }
    }

    // a linear layer pooled over consecutive groups of op.group rows: the layer's own pooled epilogue
    // (max / avg / OR of thresholded bits, − offset) run once per group, one output row each
    void run_grouped(const Op& op, int M, const void* in, int ldx, void* out, Scratch& s, int32_t* raw) const {
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

    // ---------------------------------------------------------------- per-cloud forward
    void forward(const float* x, int N, float* out, int threads, py::dict* dbg, bool profile,
                 std::vector<double>* prof = nullptr) const {
        // workspace (per call; sizes depend on N)
        std::vector<avec<uint64_t>> mem(bufs_.size());
        std::vector<void*> ptr(bufs_.size(), nullptr);
        ptr[0] = const_cast<float*>(x);
        for (size_t i = 1; i < bufs_.size(); ++i) {
            const BufSpec& b = bufs_[i];
            const size_t rows = nrows(b, N);
            const size_t n64 = b.bits ? rows * b.ld : (rows * b.ld + 1) / 2;
            mem[i].assign(n64 + 8, 0);
            ptr[i] = mem[i].data();
        }
        Scratch s;
        std::vector<int> rows_in(bufs_.size(), -1);  // row counts after duplicate compaction
        for (size_t i = 0; i < ops_.size(); ++i) {
            const Op& op = ops_[i];
            const double t0 = profile ? thread_ns() : 0.0;
            const BufSpec& bi = bufs_[op.in0];
            const int M = rows_in[op.in0] >= 0 ? rows_in[op.in0] : nrows(bi, N);
            avec<int32_t> rawv;  // debug only: no Python objects here (the GIL may be released)
            int32_t* rawp = nullptr;
            const int rawc = op.N * (op.and_mode ? 2 : 1);
            if (dbg && op.type == OP_BLINEAR) {
                rawv.assign(static_cast<size_t>(M) * rawc, 0);
                rawp = rawv.data();
            }
            switch (op.type) {
                case OP_QUANT: run_quant(op, bi, M, static_cast<const float*>(ptr[op.in0]),
                                         static_cast<uint64_t*>(ptr[op.out]), bufs_[op.out].ld); break;
                case OP_ADD: {
                    const float* a = static_cast<const float*>(ptr[op.in0]);
                    const float* b = static_cast<const float*>(ptr[op.in1]);
                    float* o = static_cast<float*>(ptr[op.out]);
                    const size_t n = static_cast<size_t>(M) * bi.cols;
                    for (size_t e = 0; e < n; ++e) o[e] = std::min(std::max(a[e] + b[e], op.lo), op.hi);
                    break;
                }
                case OP_AFFINE: {
                    const float* a = static_cast<const float*>(ptr[op.in0]);
                    float* o = static_cast<float*>(ptr[op.out]);
                    const int C = bi.cols;
                    for (int r = 0; r < M; ++r)
                        for (int c = 0; c < C; ++c)
                            o[static_cast<size_t>(r) * C + c] = op.mul[c] * a[static_cast<size_t>(r) * C + c] + op.add[c];
                    break;
                }
                case OP_GAP: {
                    const float* a = static_cast<const float*>(ptr[op.in0]);
                    float* o = static_cast<float*>(ptr[op.out]);
                    const int C = bi.cols;
                    std::vector<double> acc(C, 0.0);
                    for (int r = 0; r < M; ++r)
                        for (int c = 0; c < C; ++c) acc[c] += a[static_cast<size_t>(r) * C + c];
                    for (int c = 0; c < C; ++c) o[c] = static_cast<float>(acc[c] / M);
                    break;
                }
                case OP_BMM: {
                    const int k = bi.cols;
                    fgemm(isa_, static_cast<const float*>(ptr[op.in0]), M, k, static_cast<const float*>(ptr[op.in1]),
                          k, static_cast<float*>(ptr[op.out]));
                    break;
                }
                case OP_IM2COL: run_im2col(op, bi, bufs_[op.out], ptr[op.in0], ptr[op.out]); break;
                case OP_BITPOOL:
                    if (bi.bits) run_bitpool(op, bi, static_cast<const uint64_t*>(ptr[op.in0]), static_cast<uint64_t*>(ptr[op.out]));
                    else run_fpool(op, bi, static_cast<const float*>(ptr[op.in0]), static_cast<float*>(ptr[op.out]));
                    break;
                case OP_FLINEAR:
                    if (op.group) run_grouped(op, M, ptr[op.in0], bi.ld, ptr[op.out], s, rawp);
                    else run_flinear(op, M, static_cast<const float*>(ptr[op.in0]), ptr[op.out], s);
                    break;
                case OP_KNN: case OP_FPS: case OP_BALLQ: case OP_GATHER: case OP_EDGE: case OP_GROUP: case OP_POOL:
                case OP_CONCAT:
                    run_geo(op, N, ptr, threads);
                    break;
                default:
                    if (op.group) run_grouped(op, M, ptr[op.in0], bi.ld, ptr[op.out], s, rawp);
                    else if (op.xscale == 2) {
                        const BufSpec& bk = bufs_[op.in1];
                        avec<float> kr = row_mean_abs(static_cast<const float*>(ptr[op.in1]), M, bk.cols, bk.ld);
                        s.krow = kr.data();
                        run_blinear(op, M, static_cast<const uint64_t*>(ptr[op.in0]), bi.ld, ptr[op.out], s, 1, rawp);
                        s.krow = nullptr;
                    } else if (op.xscale) run_xlinear(op, M, static_cast<const float*>(ptr[op.in0]), bi.ld, ptr[op.out], s, rawp);
                    else run_blinear(op, M, static_cast<const uint64_t*>(ptr[op.in0]), bi.ld, ptr[op.out], s, threads,
                                     rawp);
            }
            const BufSpec& bo_ = bufs_[op.out];
            if (!bo_.pooled && bo_.rows == 0 && rows_in[op.in0] >= 0) rows_in[op.out] = M;  // a compacted chain
            if (op.dedup_out && !dbg) rows_in[op.out] = dedup_rows(static_cast<uint64_t*>(ptr[op.out]), M, bo_.ld);
            if (profile && prof)
                (*prof)[i] += thread_ns() - t0;
            if (dbg) {
                const BufSpec& bo = bufs_[op.out];
                const int rows = nrows(bo, N);
                py::dict e;
                if (bo.index) {
                    py::array_t<int32_t> a({rows, bo.ld});
                    std::memcpy(a.mutable_data(), ptr[op.out], sizeof(int32_t) * rows * bo.ld);
                    e["index"] = a;
                } else if (bo.bits) {
                    py::array_t<uint64_t> a({rows, bo.ld});
                    std::memcpy(a.mutable_data(), ptr[op.out], sizeof(uint64_t) * rows * bo.ld);
                    e["bits"] = a;
                } else {
                    py::array_t<float> a({rows, bo.cols});
                    std::memcpy(a.mutable_data(), ptr[op.out], sizeof(float) * rows * bo.cols);
                    e["float"] = a;
                }
                if (rawp) {
                    py::array_t<int32_t> raw({M, rawc});
                    std::memcpy(raw.mutable_data(), rawv.data(), sizeof(int32_t) * rawv.size());
                    e["acc"] = raw;
                }
                (*dbg)[py::str(op.name)] = e;
            }
        }
        const BufSpec& ob = bufs_[output_];
        std::memcpy(out, ptr[output_], sizeof(float) * nrows(ob, N) * ob.cols);
    }

    // im2col of an NHWC map (rows = pixels): out row (oy, ox) = the kh x kw taps, each tap one input
    // pixel row (bits: its ld words, channel padding bits 0; float: C values); outside pixels = the pad.
    void run_im2col(const Op& op, const BufSpec& bi, const BufSpec& bo, const void* in, void* out) const {
        const int ldi = bi.ld, ldo = bo.ld;
        for (int oy = 0; oy < op.Ho; ++oy)
            for (int ox = 0; ox < op.Wo; ++ox) {
                const size_t row = static_cast<size_t>(oy) * op.Wo + ox;
                for (int dy = 0; dy < op.kh; ++dy) {
                    const int iy = oy * op.sh - op.ph + dy, ix0 = ox * op.sw - op.pw;
                    if (iy >= 0 && iy < op.H && ix0 >= 0 && ix0 + op.kw <= op.Wd) {
                        // the kw taps of this kernel row are kw consecutive input pixels: one contiguous copy
                        const size_t src = (static_cast<size_t>(iy) * op.Wd + ix0) * ldi, n = static_cast<size_t>(op.kw) * ldi;
                        const size_t dst = row * ldo + static_cast<size_t>(dy) * op.kw * ldi;
                        if (bi.bits) std::memcpy(static_cast<uint64_t*>(out) + dst, static_cast<const uint64_t*>(in) + src, 8 * n);
                        else std::memcpy(static_cast<float*>(out) + dst, static_cast<const float*>(in) + src, 4 * n);
                        continue;
                    }
                    for (int dx = 0; dx < op.kw; ++dx) {
                        const int ix = ix0 + dx;
                        const bool inside = iy >= 0 && iy < op.H && ix >= 0 && ix < op.Wd;
                        const size_t tap = static_cast<size_t>(dy) * op.kw + dx;
                        const size_t src = inside ? (static_cast<size_t>(iy) * op.Wd + ix) * ldi : 0;
                        // rows are short (a few words / channels): plain loops beat memcpy calls
                        if (bi.bits) {
                            uint64_t* o = static_cast<uint64_t*>(out) + row * ldo + tap * ldi;
                            const uint64_t* s = inside ? static_cast<const uint64_t*>(in) + src : op.padw.data();
                            for (int c = 0; c < ldi; ++c) o[c] = s[c];
                        } else {
                            float* o = static_cast<float*>(out) + row * ldo + tap * ldi;
                            const float* s = static_cast<const float*>(in) + src;
                            for (int c = 0; c < ldi; ++c) o[c] = inside ? s[c] : op.padf;
                        }
                    }
                }
            }
    }

    // max pool of a float map (real-valued activations: WBin / float convs)
    void run_fpool(const Op& op, const BufSpec& bi, const float* in, float* out) const {
        const int C = bi.cols;
        for (int oy = 0; oy < op.Ho; ++oy)
            for (int ox = 0; ox < op.Wo; ++ox) {
                float* o = out + (static_cast<size_t>(oy) * op.Wo + ox) * C;
                for (int c = 0; c < C; ++c) o[c] = -INFINITY;
                for (int dy = 0; dy < op.kh; ++dy)
                    for (int dx = 0; dx < op.kw; ++dx) {
                        const int iy = oy * op.sh - op.ph + dy, ix = ox * op.sw - op.pw + dx;
                        if (iy < 0 || iy >= op.H || ix < 0 || ix >= op.Wd) continue;
                        const float* s = in + (static_cast<size_t>(iy) * op.Wd + ix) * C;
                        for (int c = 0; c < C; ++c) o[c] = std::max(o[c], s[c]);
                    }
            }
    }

    // max pool of sign bits: sign(max v) = OR of the bits; channels marked in inv (a negative slope between
    // the pool and the sign) pool with AND = NOT OR NOT.
    void run_bitpool(const Op& op, const BufSpec& bi, const uint64_t* in, uint64_t* out) const {
        const int ld = bi.ld;
        for (int oy = 0; oy < op.Ho; ++oy)
            for (int ox = 0; ox < op.Wo; ++ox) {
                uint64_t* o = out + (static_cast<size_t>(oy) * op.Wo + ox) * ld;
                for (int w = 0; w < ld; ++w) {
                    const uint64_t m = op.inv[w];
                    uint64_t acc = 0;
                    for (int dy = 0; dy < op.kh; ++dy)
                        for (int dx = 0; dx < op.kw; ++dx)
                            acc |= in[(static_cast<size_t>(oy * op.sh + dy) * op.Wd + ox * op.sw + dx) * ld + w] ^ m;
                    o[w] = acc ^ m;
                }
            }
    }

    void run_quant(const Op& op, const BufSpec& bi, int M, const float* x, uint64_t* out, int ldo) const {
        // bit = [mul·x + add >= 0] (a folded BatchNorm), or the plain sign (sign(0) = +1)
        const bool affine = !op.mul.empty();
        quant_rows(isa_, x, M, bi.cols, affine ? op.mul.data() : nullptr, affine ? op.add.data() : nullptr, out, ldo);
    }

    // value -> output, shared by the float layer and the generic binary epilogue
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

    void run_flinear(const Op& op, int M, const float* x, void* outp, Scratch& s) const {
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

    // rows [r0, r1) of a binary layer; OR masks go to orm (one uint32 per panel)
    void blinear_rows(const Op& op, int r0, int r1, const uint64_t* X, int ldx, void* outp, uint32_t* orm,
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
                if (!op.int_thr && raw == nullptr && isa_ == ISA_AVX512 && (op.out_mode == OUT_BITS || or_mode)) {
                    // vector float epilogue (DAB's AND product, or XNOR with a float affine): one mask per row
                    uint32_t masks[MR];
                    const int c0 = p * NP;
                    affine_bits_avx512(op.and_mode, s.pc.data(), R, s.rowpc.data(), op.and_mode ? op.ecnt.data() + c0 : nullptr,
                                       op.mul.data() + c0, op.and_mode ? op.rowc.data() + c0 : nullptr, op.add.data() + c0,
                                       op.Kv, op.lo, op.hi, op.offset, cmax, masks);
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
    // per-row scaled float epilogue v = mul·(K·dot) + add (float output, pooled or not)
    void run_xlinear(const Op& op, int M, const float* x, int ldx, void* outp, Scratch& s, int32_t* raw) const {
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
    // more than ~2^29, so the order rarely matters; it is fixed, so every ISA and thread count agree.)
    static avec<float> row_mean_abs(const float* x, int M, int C, int ldx) {
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

    void run_blinear(const Op& op, int M, const uint64_t* X, int ldx, void* outp, Scratch& s, int threads,
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
};

// ---------------------------------------------------------------- standalone kernels (tests, bench)
avec<uint64_t> pack_panels(const uint64_t* w, int N, int W) {
    const int panels = (N + NP - 1) / NP;
    avec<uint64_t> wp(static_cast<size_t>(panels) * NP * W, 0);
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < W; ++k) wp[(static_cast<size_t>(n / NP) * W + k) * NP + n % NP] = w[static_cast<size_t>(n) * W + k];
    return wp;
}

int parse_isa(const std::string& name) {
    int isa;
    if (name == "avx512") isa = ISA_AVX512;
    else if (name == "avx2") isa = ISA_AVX2;
    else if (name == "scalar") isa = ISA_SCALAR;
    else throw std::invalid_argument("unknown ISA '" + name + "' (expected avx512, avx2 or scalar)");
    if (isa > detect_isa())
        throw std::invalid_argument(std::string("ISA '") + name + "' is not supported by this CPU (best: " +
                                    isa_name(detect_isa()) + ")");
    return isa;
}

using u64arr = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>;

py::array_t<uint32_t> popcount_gemm(u64arr x, u64arr w, bool and_mode, const std::string& isa_s) {
    const int isa = parse_isa(isa_s);
    if (x.ndim() != 2 || w.ndim() != 2 || x.shape(1) != w.shape(1))
        throw std::invalid_argument("popcount_gemm: x (M, W) and w (N, W) must be 2-D with the same W");
    const int M = static_cast<int>(x.shape(0)), N = static_cast<int>(w.shape(0)), W = static_cast<int>(x.shape(1));
    auto wp = pack_panels(w.data(), N, W);
    py::array_t<uint32_t> out({M, N});
    uint32_t* o = out.mutable_data();
    avec<uint32_t> pc(MR * NP);
    for (int r0 = 0; r0 < M; r0 += MR) {
        const int R = std::min(MR, M - r0);
        for (int p = 0; p < (N + NP - 1) / NP; ++p) {
            pc_tile(isa, and_mode, x.data() + static_cast<size_t>(r0) * W, W, R, wp.data() + static_cast<size_t>(p) * W * NP,
                    W, pc.data());
            for (int i = 0; i < R; ++i)
                for (int j = 0; j < NP && p * NP + j < N; ++j) o[static_cast<size_t>(r0 + i) * N + p * NP + j] = pc[i * NP + j];
        }
    }
    return out;
}

// Fused threshold kernel: bits(r, n) = (popcount(x_r xor w_n) <= P_n) ^ flip_n, packed.
py::array_t<uint64_t> threshold_gemm(u64arr x, u64arr w, py::array_t<int64_t, py::array::c_style | py::array::forcecast> P,
                                     py::array_t<uint8_t, py::array::c_style | py::array::forcecast> flip, bool or_mode,
                                     const std::string& isa_s, int threads) {
    const int isa = parse_isa(isa_s);
    if (x.ndim() != 2 || w.ndim() != 2 || x.shape(1) != w.shape(1))
        throw std::invalid_argument("threshold_gemm: x (M, W) and w (N, W) must be 2-D with the same W");
    const int M = static_cast<int>(x.shape(0)), N = static_cast<int>(w.shape(0)), W = static_cast<int>(x.shape(1));
    if (P.size() != N || flip.size() != N) throw std::invalid_argument("threshold_gemm: P and flip need N entries");
    const int panels = (N + NP - 1) / NP;
    const int K = static_cast<int>(std::min<int64_t>(static_cast<int64_t>(W) * 64, 1 << 30));
    avec<uint64_t> wf(w.data(), w.data() + static_cast<size_t>(N) * W);
    avec<int64_t> Pp(P.data(), P.data() + N);
    avec<uint8_t> neg(N, 0);
    // the caller's rows are full 64-bit words here: K = 64·W valid bits (padding counts as data)
    fold_flips(wf.data(), N, W, K, Pp.data(), flip.data(), neg.data());
    auto wp = pack_panels(wf.data(), N, W);
    Pp.resize(static_cast<size_t>(panels) * NP, -1);
    avec<uint32_t> fl(panels, 0);
    const int words = (N + 63) / 64, ldo32 = 2 * words;
    const int rows = or_mode ? 1 : M;
    py::array_t<uint64_t> out({rows, words});
    std::memset(out.mutable_data(), 0, sizeof(uint64_t) * rows * words);
    uint32_t* o32 = reinterpret_cast<uint32_t*>(out.mutable_data());
    avec<uint32_t> orm(panels, 0), pc(MR * NP);
    if (has_fast_path(isa, W)) {  // exactly the engine's vector paths (short rows in registers, OR compaction)
        if (!or_mode) {
            thr_layer(isa, x.data(), W, 0, M, wp.data(), W, panels, Pp.data(), o32, ldo32);
        } else if (W <= SHORT_W) {
            or_pool_compact(isa, wp.data(), Pp.data(), N, W, x.data(), W, M, o32, threads);
        } else {
            for (int p = 0; p < panels; ++p)
                o32[p] = or_panel(isa, x.data(), W, 0, M, wp.data() + static_cast<size_t>(p) * W * NP, W,
                                         Pp.data() + p * NP, panel_valid(N, p));
        }
        return out;
    }
    for (int r0 = 0; r0 < M; r0 += MR) {
        const int R = std::min(MR, M - r0);
        for (int p = 0; p < panels; ++p) {
            const uint64_t* wpp = wp.data() + static_cast<size_t>(p) * W * NP;
            if (isa == ISA_AVX512) {
                thr_tile_avx512(or_mode, x.data() + static_cast<size_t>(r0) * W, W, R, wpp, W, Pp.data() + p * NP, fl[p],
                                o32 + static_cast<size_t>(r0) * ldo32 + p, ldo32, &orm[p]);
                continue;
            }
            pc_tile(isa, false, x.data() + static_cast<size_t>(r0) * W, W, R, wpp, W, pc.data());
            for (int i = 0; i < R; ++i) {
                uint32_t m = 0;
                for (int j = 0; j < NP; ++j) m |= static_cast<uint32_t>(static_cast<int64_t>(pc[i * NP + j]) <= Pp[p * NP + j]) << j;
                m ^= fl[p];
                if (or_mode) orm[p] |= m;
                else o32[static_cast<size_t>(r0 + i) * ldo32 + p] = m;
            }
        }
    }
    if (or_mode) std::memcpy(o32, orm.data(), sizeof(uint32_t) * panels);
    return out;
}

// Kernel microbenchmark: M x K bits times N x K bits, thresholded bits out (a real binary layer's
// epilogue). Returns (median wall seconds, median calling-thread CPU seconds) of one GEMM over `reps`
// timed blocks; with one thread the CPU time is the better estimate on a shared host.
std::pair<double, double> bench_gemm(int M, int N, int K, const std::string& isa_s, int reps, double min_block_s,
                                     int threads, bool pooled) {
    const int isa = parse_isa(isa_s);
    if (M < 1 || N < 1 || K < 1 || reps < 1) throw std::invalid_argument("bench_gemm: sizes must be positive");
    const int W = (K + 63) / 64, panels = (N + NP - 1) / NP;
    std::mt19937_64 rng(1234);
    avec<uint64_t> x(static_cast<size_t>(M) * W), w(static_cast<size_t>(N) * W);
    const uint64_t keep = (K % 64) ? ((1ULL << (K % 64)) - 1) : ~0ULL;
    for (int r = 0; r < M; ++r)
        for (int k = 0; k < W; ++k) x[static_cast<size_t>(r) * W + k] = rng() & (k == W - 1 ? keep : ~0ULL);
    for (int r = 0; r < N; ++r)
        for (int k = 0; k < W; ++k) w[static_cast<size_t>(r) * W + k] = rng() & (k == W - 1 ? keep : ~0ULL);
    auto wp = pack_panels(w.data(), N, W);
    // bits out: threshold at the median (K/2). Pooled: a threshold no row reaches (P = -1), so the early exit
    // never fires and the figure is the kernel's full-scan rate
    avec<int64_t> P(static_cast<size_t>(panels) * NP, pooled ? -1 : K / 2);
    const int ldo32 = 2 * ((N + 63) / 64);
    avec<uint32_t> out(static_cast<size_t>(M) * ldo32 + 8);
    auto once = [&]() {
#pragma omp parallel num_threads(threads)
        {
            avec<uint32_t> pc(MR * NP);
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            if (pooled) {  // panels to threads, as the engine does for OR pooling
                for (int p = t; p < panels; p += nt) {
                    const uint64_t* wpp = wp.data() + static_cast<size_t>(p) * W * NP;
                    if (has_fast_path(isa, W)) {
                        out[p] = or_panel(isa, x.data(), W, 0, M, wpp, W, P.data() + p * NP, panel_valid(N, p));
                        continue;
                    }
                    uint32_t m = 0;
                    for (int r0 = 0; r0 < M; r0 += MR) {
                        const int R = std::min(MR, M - r0);
                        pc_tile(isa, false, x.data() + static_cast<size_t>(r0) * W, W, R, wpp, W, pc.data());
                        for (int i = 0; i < R * NP; ++i) m |= static_cast<uint32_t>(static_cast<int64_t>(pc[i]) <= P[p * NP + i % NP]) << (i % NP);
                    }
                    out[p] = m;
                }
            } else {
                const int ntiles = (M + MR - 1) / MR;
                const int a = std::min(M, ntiles * t / nt * MR), b = std::min(M, ntiles * (t + 1) / nt * MR);
                if (has_fast_path(isa, W)) {
                    if (a < b) thr_layer(isa, x.data(), W, a, b, wp.data(), W, panels, P.data(), out.data(), ldo32);
                } else {
                    for (int r0 = a; r0 < b; r0 += MR) {
                        const int R = std::min(MR, b - r0);
                        for (int p = 0; p < panels; ++p) {
                            pc_tile(isa, false, x.data() + static_cast<size_t>(r0) * W, W, R,
                                    wp.data() + static_cast<size_t>(p) * W * NP, W, pc.data());
                            for (int i = 0; i < R; ++i) {
                                uint32_t m = 0;
                                for (int j = 0; j < NP; ++j) m |= static_cast<uint32_t>(pc[i * NP + j] <= static_cast<uint32_t>(K / 2)) << j;
                                out[static_cast<size_t>(r0 + i) * ldo32 + p] = m;
                            }
                        }
                    }
                }
            }
        }
    };
    once();
    int iters = 1;
    for (;;) {  // calibrate iterations per block
        auto t0 = clk::now();
        for (int i = 0; i < iters; ++i) once();
        const double dt = std::chrono::duration<double>(clk::now() - t0).count();
        if (dt >= min_block_s || iters > (1 << 24)) break;
        iters *= 2;
    }
    std::vector<double> times, cpu;
    for (int r = 0; r < reps; ++r) {
        auto t0 = clk::now();
        const double c0 = thread_ns();
        for (int i = 0; i < iters; ++i) once();
        times.push_back(std::chrono::duration<double>(clk::now() - t0).count() / iters);
        cpu.push_back((thread_ns() - c0) * 1e-9 / iters);
    }
    std::sort(times.begin(), times.end());
    std::sort(cpu.begin(), cpu.end());
    return std::make_pair(times[times.size() / 2], cpu[cpu.size() / 2]);
}

}  // namespace

PYBIND11_MODULE(_engine, m) {
    m.doc() = "onebit native 1-bit inference kernels (packed-bit XNOR / AND popcount GEMM, whole-graph executor)";
    m.def("best_isa", []() { return std::string(isa_name(detect_isa())); }, "Best ISA this CPU supports.");
    m.def("supported_isas", []() {
        std::vector<std::string> v;
        for (int i = 0; i <= detect_isa(); ++i) v.push_back(isa_name(i));
        return v;
    });
    m.def("max_threads", []() { return omp_get_max_threads(); });
    m.def("popcount_gemm", &popcount_gemm, py::arg("x"), py::arg("w"), py::arg("and_mode") = false,
          py::arg("isa") = "scalar", "pc[m, n] = popcount(x[m] xor/and w[n]) over packed 64-bit words.");
    m.def("threshold_gemm", &threshold_gemm, py::arg("x"), py::arg("w"), py::arg("P"), py::arg("flip"),
          py::arg("or_mode") = false, py::arg("isa") = "scalar", py::arg("threads") = 1,
          "Packed bits (popcount(x xor w) <= P) ^ flip; or_mode ORs over rows.");
    m.def("bench_gemm", &bench_gemm, py::arg("M"), py::arg("N"), py::arg("K"), py::arg("isa"), py::arg("reps") = 7,
          py::arg("min_block_s") = 0.05, py::arg("threads") = 1, py::arg("pooled") = false,
          "Median (wall s, calling-thread CPU s) of one M x K by N x K binary layer: thresholded bits out, or "
          "with pooled=True OR-pooled over the M rows (the early exit disabled by an unreachable threshold).");
    py::class_<Engine>(m, "Engine")
        .def(py::init([](const py::list& bufs, const py::list& ops, int output, const std::string& isa) {
                 return std::make_unique<Engine>(bufs, ops, output, parse_isa(isa));
             }),
             py::arg("buffers"), py::arg("ops"), py::arg("output"), py::arg("isa"))
        .def("run", &Engine::run, py::arg("x"), py::arg("threads") = 1, py::arg("debug") = false,
             py::arg("profile") = false)
        .def("profile", &Engine::profile)
        .def_property_readonly("in_channels", &Engine::in_channels);
}
