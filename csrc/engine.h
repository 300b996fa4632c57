// The op interpreter: a plan (numbered buffers + op records, plan.h) becomes checked ops with pre-packed
// weights, and Engine::run executes the whole graph for every cloud of a batch in one call (OpenMP across
// the batch, or across row tiles / panels of the binary layers when the batch is smaller than the thread
// count). Buffers hold float32 rows, packed-bit rows (64-bit words) or int32 index rows.
//
// The engine re-checks every record against its buffers (sizes, kinds, row counts, index spaces) so that a
// plan can never make it read or write out of bounds, whatever produced it.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kernels.h"

namespace onebit {

template <class T>
using avec = std::vector<T>;

enum OpType : int {
    OP_FLINEAR = 0, OP_BLINEAR = 1, OP_BMM = 2, OP_QUANT = 3, OP_IM2COL = 4, OP_BITPOOL = 5, OP_ADD = 6, OP_GAP = 7,
    // geometric ops of the point models (geometry_ops.h)
    OP_KNN = 8, OP_FPS = 9, OP_BALLQ = 10, OP_GATHER = 11, OP_EDGE = 12, OP_GROUP = 13, OP_POOL = 14, OP_CONCAT = 15,
    OP_AFFINE = 16  // float -> float per channel: mul·x + add (a BatchNorm in front of an XNOR-Net layer)
};
inline bool is_geo(int t) { return t >= OP_KNN && t <= OP_CONCAT; }
enum OutMode : int { OUT_F32 = 0, OUT_BITS = 1, OUT_OR = 2, OUT_MAX = 3, OUT_AVG = 4 };
inline bool is_pooled_mode(int m) { return m == OUT_OR || m == OUT_MAX || m == OUT_AVG; }

// A buffer of the plan.
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

// One op record of a plan: named scalars and arrays (the planner's output; docs/runtime.md lists the keys
// per op type). Arrays convert to the element type the engine stores.
struct Rec {
    std::string name = "op";
    std::map<std::string, double> num;
    std::map<std::string, std::vector<float>> f32;
    std::map<std::string, std::vector<uint64_t>> u64;
    std::map<std::string, std::vector<int64_t>> i64;
    std::map<std::string, std::vector<uint8_t>> u8;

    bool has(const std::string& k) const {
        return num.count(k) || f32.count(k) || u64.count(k) || i64.count(k) || u8.count(k);
    }
    int geti(const std::string& k) const;                 // required integer field (range checked)
    int opti(const std::string& k, int dflt) const;       // optional integer field
    double optd(const std::string& k, double dflt) const;  // optional scalar
    template <class T>
    avec<T> vec(const std::string& k, size_t expect) const;  // required array of `expect` elements
};

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

struct Scratch {
    avec<uint32_t> pc = avec<uint32_t>(MR * NP);
    avec<float> z, pool;
    avec<uint32_t> orm;
    avec<int32_t> rowpc;
    const float* krow = nullptr;   // XNOR-Net input scale K per row of the current call (xscale layers)
};

// Debug output of one op for one cloud: its output buffer and a binary layer's integer accumulators.
struct DebugEntry {
    std::string name;
    int kind = 0;                  // 0 float, 1 bits (uint64 words), 2 index (int32)
    int rows = 0, cols = 0;        // cols: floats, words or indices per row
    std::vector<unsigned char> data;
    int acc_rows = 0, acc_cols = 0;
    std::vector<int32_t> acc;      // XNOR: k − 2·popcount; AND: [popcount(e AND x) ‖ popcount(x)]
};
using DebugCloud = std::vector<DebugEntry>;

// timers: per-thread CPU time for the per-op profile (robust on a shared host)
double thread_ns();

class Engine {
   public:
    // Throws std::invalid_argument naming the op when a record does not fit its buffers.
    Engine(std::vector<BufSpec> buffers, const std::vector<Rec>& ops, int output, int isa);

    int in_channels() const { return bufs_[0].cols; }
    int out_rows(int N) const { return nrows(bufs_[output_], N); }
    int out_cols() const { return bufs_[output_].cols; }
    int isa() const { return isa_; }
    const std::vector<Op>& ops() const { return ops_; }

    // Checks an input of B clouds x N rows x C channels (channels, point count, finite values); throws
    // std::invalid_argument.
    void check_input(const float* x, int B, int N, int C) const;
    // out: B x out_rows(N) x out_cols() floats. dbg (serial): every op's output and accumulators per cloud.
    // prof: nanoseconds of thread CPU time per op, summed over the batch.
    void run(const float* x, int B, int N, float* out, int threads, std::vector<DebugCloud>* dbg = nullptr,
             std::vector<double>* prof = nullptr) const;

   private:
    int isa_;
    int output_;
    std::vector<BufSpec> bufs_;
    std::vector<Op> ops_;

    void mark_dedup();
    Op make_op(const Rec& d);
    void make_spatial(Op& op, const Rec& d, const BufSpec& bi, const BufSpec& bo) const;
    void make_geo(Op& op, const Rec& d);
    void make_linear(Op& op, const Rec& d, const BufSpec& bi, const BufSpec& bo);

    void forward(const float* x, int N, float* out, int threads, DebugCloud* dbg, std::vector<double>* prof) const;
    void run_geo(const Op& op, int N, const std::vector<void*>& ptr, int threads) const;
    void run_im2col(const Op& op, const BufSpec& bi, const BufSpec& bo, const void* in, void* out) const;
    void run_fpool(const Op& op, const BufSpec& bi, const float* in, float* out) const;
    void run_bitpool(const Op& op, const BufSpec& bi, const uint64_t* in, uint64_t* out) const;
    void run_quant(const Op& op, const BufSpec& bi, int M, const float* x, uint64_t* out, int ldo) const;

    // linear layers (linear.cpp)
    void run_grouped(const Op& op, int M, const void* in, int ldx, void* out, Scratch& s, int32_t* raw) const;
    void run_flinear(const Op& op, int M, const float* x, void* outp, Scratch& s) const;
    void blinear_rows(const Op& op, int r0, int r1, const uint64_t* X, int ldx, void* outp, uint32_t* orm, Scratch& s,
                      int32_t* raw) const;
    void run_xlinear(const Op& op, int M, const float* x, int ldx, void* outp, Scratch& s, int32_t* raw) const;
    void run_blinear(const Op& op, int M, const uint64_t* X, int ldx, void* outp, Scratch& s, int threads,
                     int32_t* raw) const;
};

// K[r] = mean_c |x[r, c]| (XNOR-Net's input scale): float64 partial sums, rounded once to float32.
avec<float> row_mean_abs(const float* x, int M, int C, int ldx);

// ISA names <-> ids (kernels.h): "avx512", "avx2", "scalar" (and "neon" on aarch64).
std::vector<int> supported_isas();
// The ISA for a name, checked against this CPU; throws std::invalid_argument ("unknown ISA ..." /
// "... is not supported by this CPU ...").
int parse_isa(const std::string& name);

}  // namespace onebit
