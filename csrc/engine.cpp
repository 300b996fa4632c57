// The op interpreter (engine.h): plan records -> checked ops, and the per-cloud forward pass.
#include "engine.h"

#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <ctime>
#include <exception>
#include <stdexcept>
#include <string>

#include "geometry_ops.h"
#include "linear.h"

namespace onebit {

double thread_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return 1e9 * static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec);
}

std::vector<int> supported_isas() {
    const int best = detect_isa();
    if (best == ISA_AVX512) return {ISA_SCALAR, ISA_AVX2, ISA_AVX512};
    if (best == ISA_AVX2) return {ISA_SCALAR, ISA_AVX2};
    if (best != ISA_SCALAR) return {ISA_SCALAR, best};
    return {ISA_SCALAR};
}

int parse_isa(const std::string& name) {
    std::vector<int> known{ISA_AVX512, ISA_AVX2, ISA_SCALAR};
    const int best = detect_isa();
    if (std::find(known.begin(), known.end(), best) == known.end()) known.push_back(best);
    std::string names;
    for (int id : known) {
        if (name == isa_name(id)) {
            const auto sup = supported_isas();
            if (std::find(sup.begin(), sup.end(), id) == sup.end())
                throw std::invalid_argument(std::string("ISA '") + name + "' is not supported by this CPU (best: " +
                                            isa_name(best) + ")");
            return id;
        }
        names += (names.empty() ? "" : ", ") + std::string(isa_name(id));
    }
    throw std::invalid_argument("unknown ISA '" + name + "' (expected " + names + ")");
}

// ---------------------------------------------------------------- plan records
int Rec::geti(const std::string& k) const {
    auto it = num.find(k);
    if (it == num.end()) throw std::invalid_argument("op '" + name + "': missing field '" + k + "'");
    const double v = it->second;
    if (!(v >= INT_MIN && v <= INT_MAX) || v != static_cast<double>(static_cast<long long>(v)))
        throw std::invalid_argument("op '" + name + "': field '" + k + "' is not an integer in range");
    return static_cast<int>(v);
}

int Rec::opti(const std::string& k, int dflt) const { return num.count(k) ? geti(k) : dflt; }

double Rec::optd(const std::string& k, double dflt) const {
    auto it = num.find(k);
    return it == num.end() ? dflt : it->second;
}

template <class T>
avec<T> Rec::vec(const std::string& k, size_t expect) const {
    avec<T> out;
    auto take = [&](const auto& m) {
        auto it = m.find(k);
        if (it == m.end()) return false;
        out.reserve(it->second.size());
        for (const auto& v : it->second) out.push_back(static_cast<T>(v));
        return true;
    };
    if (!take(f32) && !take(u64) && !take(i64) && !take(u8))
        throw std::invalid_argument("op '" + name + "': missing array '" + k + "'");
    if (out.size() != expect)
        throw std::invalid_argument("op '" + name + "': array '" + k + "' has " + std::to_string(out.size()) +
                                    " elements, expected " + std::to_string(expect));
    return out;
}
template avec<float> Rec::vec<float>(const std::string&, size_t) const;
template avec<uint64_t> Rec::vec<uint64_t>(const std::string&, size_t) const;
template avec<int64_t> Rec::vec<int64_t>(const std::string&, size_t) const;
template avec<uint8_t> Rec::vec<uint8_t>(const std::string&, size_t) const;

// ---------------------------------------------------------------- engine
Engine::Engine(std::vector<BufSpec> buffers, const std::vector<Rec>& ops, int output, int isa)
    : isa_(isa), output_(output) {
    for (BufSpec b : buffers) {
        if (b.cols < 1 || b.cols > (1 << 24)) throw std::invalid_argument("buffer with a bad channel count");
        b.ld = b.bits ? (b.cols + 63) / 64 : b.cols;
        if (b.rows < 0 || b.rows > (1 << 26)) throw std::invalid_argument("buffer with a bad row count");
        if (b.mult < 1 || b.mult > (1 << 16) || (b.mult > 1 && (b.rows || b.pooled)) || (b.index && b.bits))
            throw std::invalid_argument("buffer with a bad row multiplier or index flag");
        b.irows = -1;
        b.imult = 1;
        bufs_.push_back(b);
    }
    if (bufs_.empty() || bufs_[0].bits || bufs_[0].pooled || bufs_[0].index)
        throw std::invalid_argument("buffer 0 must be the float per-point input");
    for (const Rec& r : ops) ops_.push_back(make_op(r));
    if (output_ < 0 || output_ >= static_cast<int>(bufs_.size()) || bufs_[output_].bits || bufs_[output_].index)
        throw std::invalid_argument("the graph output must be a float buffer");
    mark_dedup();
}

void Engine::check_input(const float* x, int B, int N, int C) const {
    if (C != bufs_[0].cols)
        throw std::invalid_argument("input has " + std::to_string(C) + " channels, the model expects " +
                                    std::to_string(bufs_[0].cols));
    if (N < 1) throw std::invalid_argument("input needs at least one point");
    if (B < 0) throw std::invalid_argument("input has a negative batch size");
    for (const Op& op : ops_)
        if (op.type == OP_KNN && N < op.gk)
            throw std::invalid_argument("op '" + op.name + "': kNN with k = " + std::to_string(op.gk) + " needs at least " +
                                        std::to_string(op.gk) + " points, got " + std::to_string(N));
    if (bufs_[0].rows > 0 && N != bufs_[0].rows)
        throw std::invalid_argument("input has " + std::to_string(N) + " rows (pixels), the model expects " +
                                    std::to_string(bufs_[0].rows));
    // every buffer's row count (N * mult) must stay an int, and one cloud's workspace must stay allocatable (a
    // crafted file could declare buffers no machine holds: refuse it here, not with bad_alloc in a thread)
    double bytes = 0;
    for (const BufSpec& b : bufs_) {
        if (!b.rows && !b.pooled && static_cast<long long>(N) * b.mult > (1LL << 30))
            throw std::invalid_argument("input has " + std::to_string(N) + " points, too many for this model's buffers");
        bytes += static_cast<double>(nrows(b, N)) * b.ld * (b.bits ? 8 : 4);
    }
    if (bytes > static_cast<double>(1ULL << 33))
        throw std::invalid_argument("one cloud of " + std::to_string(N) + " rows needs " +
                                    std::to_string(static_cast<long long>(bytes / (1 << 20))) +
                                    " MiB of buffers (at most 8192 MiB)");
    // a NaN / inf would silently become a 0 bit: refuse it, naming where it is
    const size_t n = static_cast<size_t>(B) * N * C;
    for (size_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i])) {
            const size_t per = static_cast<size_t>(N) * C;
            throw std::invalid_argument("input is not finite (" + std::to_string(x[i]) + ") at cloud " +
                                        std::to_string(i / per) + ", row " + std::to_string((i % per) / C) +
                                        ", channel " + std::to_string(i % C));
        }
}

void Engine::run(const float* xin, int B, int N, float* res, int threads, std::vector<DebugCloud>* dbg,
                 std::vector<double>* prof) const {
    if (threads < 1) threads = 1;
    const BufSpec& ob = bufs_[output_];
    const size_t in_stride = static_cast<size_t>(N) * bufs_[0].cols;
    const size_t out_stride = static_cast<size_t>(nrows(ob, N)) * ob.cols;
    if (prof) prof->assign(ops_.size(), 0.0);
    if (dbg) {
        // debug: serial, every buffer and every binary layer's raw integer accumulators kept
        dbg->assign(B, DebugCloud());
        for (int b = 0; b < B; ++b) forward(xin + b * in_stride, N, res + b * out_stride, 1, &(*dbg)[b], prof);
        return;
    }
    if (B >= threads || threads == 1) {
        const int nt = std::max(1, std::min(threads, B));
        std::vector<std::vector<double>> tprof(prof ? nt : 0, std::vector<double>(ops_.size(), 0.0));
        std::exception_ptr error;  // an exception must not leave an OpenMP region: the first is rethrown after it
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int b = 0; b < B; ++b) {
            try {
                forward(xin + b * in_stride, N, res + b * out_stride, 1, nullptr,
                        prof ? &tprof[omp_get_thread_num()] : nullptr);
            } catch (...) {
#pragma omp critical(onebit_run_error)
                if (!error) error = std::current_exception();
            }
        }
        if (error) std::rethrow_exception(error);
        if (prof)
            for (auto& t : tprof)
                for (size_t i = 0; i < t.size(); ++i) (*prof)[i] += t[i];
    } else {
        for (int b = 0; b < B; ++b) forward(xin + b * in_stride, N, res + b * out_stride, threads, nullptr, prof);
    }
}

void Engine::mark_dedup() {
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

Op Engine::make_op(const Rec& d) {
    Op op;
    op.name = d.name;
    op.type = d.geti("type");
    op.in0 = d.geti("in0");
    op.in1 = d.has("in1") ? d.geti("in1") : -1;
    op.out = d.geti("out");
    const int nb = static_cast<int>(bufs_.size());
    auto chk = [&](int id) {
        if (id < 0 || id >= nb) throw std::invalid_argument("op '" + op.name + "': bad buffer reference");
    };
    if (op.in1 != -1) chk(op.in1);
    if (is_geo(op.type)) {
        make_geo(op, d);
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
    if (bi.mult != bo.mult && !bo.pooled && !d.has("group"))
        throw std::invalid_argument("op '" + op.name + "': row multiplier mismatch");
    op.out_mode = d.has("out_mode") ? d.geti("out_mode") : OUT_F32;
    if (op.out_mode < 0 || op.out_mode > OUT_AVG) throw std::invalid_argument("op '" + op.name + "': bad out_mode");
    const bool want_bits = op.out_mode == OUT_BITS || op.out_mode == OUT_OR;
    if (op.type == OP_QUANT) {
        if (bi.bits || !bo.bits || bi.cols != bo.cols || bi.pooled != bo.pooled || bi.rows != bo.rows)
            throw std::invalid_argument("op '" + op.name + "': quant needs float in, bits out, same shape");
        if (d.has("mul")) {  // per-channel affine before the sign (a folded BatchNorm): [mul·x + add >= 0]
            op.mul = d.vec<float>("mul", bi.cols);
            op.add = d.vec<float>("add", bi.cols);
        }
        return op;
    }
    if (op.type == OP_ADD) {  // out = clamp(in0 + in1, lo, hi): a residual shortcut
        chk(op.in1);
        const BufSpec& b1 = bufs_[op.in1];
        if (bi.bits || b1.bits || bo.bits || bi.cols != b1.cols || bi.cols != bo.cols || bi.rows != b1.rows ||
            bi.rows != bo.rows || bi.pooled != b1.pooled || bi.pooled != bo.pooled)
            throw std::invalid_argument("op '" + op.name + "': add needs two float values of the same shape");
        op.lo = d.has("lo") ? static_cast<float>(d.optd("lo", 0.0)) : -INFINITY;
        op.hi = d.has("hi") ? static_cast<float>(d.optd("hi", 0.0)) : INFINITY;
        return op;
    }
    if (op.type == OP_AFFINE) {
        if (bi.bits || bo.bits || bi.cols != bo.cols || !same_rows(bi, bo))
            throw std::invalid_argument("op '" + op.name + "': affine maps a float value to one of the same shape");
        op.mul = d.vec<float>("mul", bi.cols);
        op.add = d.vec<float>("add", bi.cols);
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
    op.K = d.geti("K");
    op.N = d.geti("N");
    if (op.K != bi.cols || op.N != bo.cols || op.K < 1 || op.N < 1)
        throw std::invalid_argument("op '" + op.name + "': K/N do not match its buffers");
    if (bo.bits != want_bits) throw std::invalid_argument("op '" + op.name + "': output kind mismatch");
    op.group = d.has("group") ? d.geti("group") : 0;
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
    op.Kv = d.has("Kv") ? d.geti("Kv") : op.K;
    if (op.Kv < 1 || op.Kv > op.K) throw std::invalid_argument("op '" + op.name + "': bad valid bit count Kv");
    op.panels = (op.N + NP - 1) / NP;
    const size_t NPAD = static_cast<size_t>(op.panels) * NP;
    auto pad = [&](avec<float> v, float fill) {
        v.resize(NPAD, fill);
        return v;
    };
    op.mul = pad(d.vec<float>("mul", op.N), 0.f);
    op.add = pad(d.vec<float>("add", op.N), -1.f);
    op.lo = d.has("lo") ? static_cast<float>(d.optd("lo", 0.0)) : -INFINITY;
    op.hi = d.has("hi") ? static_cast<float>(d.optd("hi", 0.0)) : INFINITY;
    op.offset = d.has("offset") ? static_cast<float>(d.optd("offset", 0.0)) : 0.f;
    if (op.type == OP_FLINEAR) {
        if (bi.bits) throw std::invalid_argument("op '" + op.name + "': float linear needs a float input");
        op.wt = d.vec<float>("wt", static_cast<size_t>(op.K) * op.N);
        op.ws = op.wt;  // scale folded into the weights for the bits path
        for (int k = 0; k < op.K; ++k)
            for (int n = 0; n < op.N; ++n) op.ws[static_cast<size_t>(k) * op.N + n] *= op.mul[n];
        return op;
    }
    // binary linear
    op.xscale = d.has("xscale") ? d.geti("xscale") : 0;
    if (op.xscale < 0 || op.xscale > 2) throw std::invalid_argument("op '" + op.name + "': bad xscale");
    if (op.xscale == 2) {
        // bits in in0, K from the float rows of in1 (the same rows: a conv's float im2col, zero padded)
        chk(op.in1);
        const BufSpec& bk = bufs_[op.in1];
        if (!bi.bits || bk.bits || bk.index || !same_rows(bi, bk) || want_bits || d.has("P") || op.group)
            throw std::invalid_argument("op '" + op.name + "': an input-scaled binary linear on bits needs float "
                                        "scale rows like its input, a float output and no grouping");
    } else if (op.xscale) {
        // XNOR-Net input scale: the op reads the float rows, packs their signs and computes K itself
        if (bi.bits || want_bits || d.has("P") || op.Kv != op.K)
            throw std::invalid_argument("op '" + op.name + "': an input-scaled (XNOR-Net K) binary linear needs "
                                        "a float input, a float output and no integer thresholds");
    } else if (!bi.bits) {
        throw std::invalid_argument("op '" + op.name + "': binary linear needs a bit input");
    }
    op.W = (op.K + 63) / 64;
    op.and_mode = d.has("and_mode") && (d.optd("and_mode", 0.0) != 0.0);
    auto w = d.vec<uint64_t>("weight", static_cast<size_t>(op.N) * op.W);
    if (op.K % 64) {  // padding bits must be 0 so they never count
        const uint64_t keep = (1ULL << (op.K % 64)) - 1;
        for (int n = 0; n < op.N; ++n)
            if (w[static_cast<size_t>(n) * op.W + op.W - 1] & ~keep)
                throw std::invalid_argument("op '" + op.name + "': weight padding bits are not zero");
    }
    op.int_thr = d.has("P");
    if (op.int_thr) {
        if (op.and_mode || !want_bits)
            throw std::invalid_argument("op '" + op.name + "': integer thresholds need an XNOR layer with bit output");
        op.P = d.vec<int64_t>("P", op.N);
        auto fl = d.vec<uint8_t>("flip", op.N);
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
        op.rowc = pad(d.vec<float>("rowc", op.N), 0.f);
        op.ecnt.assign(NPAD, 0);  // k − 2·|e| per channel, from the weight bits
        for (int n = 0; n < op.N; ++n) {
            int pc = 0;
            for (int k = 0; k < op.W; ++k) pc += __builtin_popcountll(w[static_cast<size_t>(n) * op.W + k]);
            op.ecnt[n] = op.Kv - 2 * pc;
        }
    }
    return op;
}

void Engine::make_spatial(Op& op, const Rec& d, const BufSpec& bi, const BufSpec& bo) const {
    const std::string& nm = op.name;
    op.H = d.geti("H");
    op.Wd = d.geti("W");
    op.kh = d.geti("kh");
    op.kw = d.geti("kw");
    op.sh = d.geti("sh");
    op.sw = d.geti("sw");
    op.ph = d.has("ph") ? d.geti("ph") : 0;
    op.pw = d.has("pw") ? d.geti("pw") : 0;
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
        op.inv = d.vec<uint64_t>("inv", static_cast<size_t>(bi.ld));
        if (bi.cols % 64 && (op.inv[bi.ld - 1] >> (bi.cols % 64)))
            throw std::invalid_argument("op '" + nm + "': inv padding bits are not zero");
        return;
    }
    const size_t taps = static_cast<size_t>(op.kh) * op.kw;
    if (bi.bits != bo.bits || static_cast<size_t>(bo.ld) != taps * bi.ld ||
        static_cast<size_t>(bo.cols) != taps * (bi.bits ? 64 * static_cast<size_t>(bi.ld) : bi.cols))
        throw std::invalid_argument("op '" + nm + "': im2col output has the wrong width");
    const float pv = d.has("pad") ? static_cast<float>(d.optd("pad", 0.0)) : 0.f;
    if (bi.bits) {
        if (pv != 1.f && pv != -1.f) throw std::invalid_argument("op '" + nm + "': bit pad value must be +1 or -1");
        op.padw.assign(bi.ld, 0);
        if (pv > 0)
            for (int c = 0; c < bi.cols; ++c) op.padw[c >> 6] |= 1ULL << (c & 63);
    } else {
        op.padf = pv;
    }
}


void Engine::make_geo(Op& op, const Rec& d) {
    const int nb = static_cast<int>(bufs_.size());
    auto chk = [&](int id) {
        if (id < 0 || id >= nb) throw std::invalid_argument("op '" + op.name + "': bad buffer reference");
    };
    const std::string& nm = op.name;
    auto bad = [&](const std::string& m) { throw std::invalid_argument("op '" + nm + "': " + m); };
    auto flt = [](const BufSpec& b) { return !b.bits && !b.index; };
    auto opt = [&](const char* key, int dflt) { return d.opti(key, dflt); };
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
        if (!d.has("ins")) bad("concat needs its inputs");
        {
            const auto v = d.vec<int64_t>("ins", d.i64.count("ins") ? d.i64.at("ins").size() : 0);
            for (int64_t id : v) op.ins.push_back(id < INT_MIN || id > INT_MAX ? -1 : static_cast<int>(id));
        }
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
            op.gk = d.geti("k");
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
            op.gk = d.geti("k");
            op.coords = opt("coords", 3);
            const double r = d.has("radius") ? d.optd("radius", 0.0) : -1.0;
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
            op.idx = d.geti("idx");
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
            op.avg = d.has("avg") && (d.optd("avg", 0.0) != 0.0);
            op.offset = d.has("offset") ? static_cast<float>(d.optd("offset", 0.0)) : 0.f;
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

void Engine::run_geo(const Op& op, int N, const std::vector<void*>& ptr, int threads) const {
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

void Engine::forward(const float* x, int N, float* out, int threads, DebugCloud* dbg, std::vector<double>* prof) const {
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
        const double t0 = prof ? thread_ns() : 0.0;
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
        if (prof) (*prof)[i] += thread_ns() - t0;
        if (dbg) {
            const BufSpec& bo = bufs_[op.out];
            const int rows = nrows(bo, N);
            DebugEntry e;
            e.name = op.name;
            e.kind = bo.index ? 2 : bo.bits ? 1 : 0;
            e.rows = rows;
            e.cols = bo.index || bo.bits ? bo.ld : bo.cols;
            const size_t item = bo.bits ? sizeof(uint64_t) : 4;
            e.data.resize(static_cast<size_t>(rows) * e.cols * item);
            std::memcpy(e.data.data(), ptr[op.out], e.data.size());
            if (rawp) {
                e.acc_rows = M;
                e.acc_cols = rawc;
                e.acc.assign(rawv.begin(), rawv.end());
            }
            dbg->push_back(std::move(e));
        }
    }
    const BufSpec& ob = bufs_[output_];
    std::memcpy(out, ptr[output_], sizeof(float) * nrows(ob, N) * ob.cols);
}

// im2col of an NHWC map (rows = pixels): out row (oy, ox) = the kh x kw taps, each tap one input

void Engine::run_im2col(const Op& op, const BufSpec& bi, const BufSpec& bo, const void* in, void* out) const {
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
void Engine::run_fpool(const Op& op, const BufSpec& bi, const float* in, float* out) const {
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
void Engine::run_bitpool(const Op& op, const BufSpec& bi, const uint64_t* in, uint64_t* out) const {
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

void Engine::run_quant(const Op& op, const BufSpec& bi, int M, const float* x, uint64_t* out, int ldo) const {
    // bit = [mul·x + add >= 0] (a folded BatchNorm), or the plain sign (sign(0) = +1)
    const bool affine = !op.mul.empty();
    quant_rows(isa_, x, M, bi.cols, affine ? op.mul.data() : nullptr, affine ? op.add.data() : nullptr, out, ldo);
}

}  // namespace onebit
