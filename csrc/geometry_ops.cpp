// Geometric ops of the point models (see geometry_ops.h): exact reproductions of onebit.geometry.
//
// Floating-point note: points are chosen on the selection distance E of onebit.geometry: Σ_c (a_c − b_c)²
// with the float32 inputs upcast to double, each square and each add a separate rounding (this file is
// built with -ffp-contract=off), channels in order. torch computes the same operations in the same order in
// float64, so E, and every index chosen from it (kNN, FPS, ball query; ties to the lower index), is
// bit-identical to the reference on any CPU and whether the torch model runs in float32 or float64.
#include "geometry_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels.h"

namespace onebit {
namespace geo {

namespace {

// the k smallest of d[0..M) by (value, index), ascending, into out[0..k); bd: scratch of k values.
// ids (optional): the index of entry j is ids[j] (increasing), else j.
template <class T>
inline void select_k(const T* d, int M, int k, int32_t* out, T* bd, const int32_t* ids = nullptr) {
    int n = 0;
    for (int j = 0; j < M; ++j) {
        const T v = d[j];
        if (n == k) {
            if (!(v < bd[k - 1])) continue;  // equal to the k-th: the lower index (already in) wins
            --n;
        }
        int p = n;
        while (p > 0 && bd[p - 1] > v) {  // strictly greater moves: equal values keep index order
            bd[p] = bd[p - 1];
            out[p] = out[p - 1];
            --p;
        }
        bd[p] = v;
        out[p] = ids ? ids[j] : j;
        ++n;
    }
}

}  // namespace

namespace {
// channel-major copy of channels [0, C) of N rows (the distance loops over points then vectorise)
std::vector<float> channel_major(const float* x, int N, int ld, int C) {
    std::vector<float> xs(static_cast<size_t>(C) * N);
    for (int j = 0; j < N; ++j)
        for (int c = 0; c < C; ++c) xs[static_cast<size_t>(c) * N + j] = x[static_cast<size_t>(j) * ld + c];
    return xs;
}

// d[j] = E(x_j, q) = Σ_c (x_jc − q_c)² in double (sign of the difference irrelevant), channel order, no FMA
void dist_to(const std::vector<float>& xs, int N, int C, const float* q, double* d) {
    for (int c = 0; c < C; ++c) {
        const double qc = q[c];
        const float* col = xs.data() + static_cast<size_t>(c) * N;
        if (c == 0)
            for (int j = 0; j < N; ++j) {
                const double t = static_cast<double>(col[j]) - qc;
                d[j] = t * t;
            }
        else
            for (int j = 0; j < N; ++j) {
                const double t = static_cast<double>(col[j]) - qc;
                d[j] = d[j] + t * t;
            }
    }
}
}  // namespace

void knn(int isa, const float* x, int N, int ld, int C, int k, int32_t* idx, int threads) {
    if (C <= 4) {
        const std::vector<float> xs = channel_major(x, N, ld, C);
#pragma omp parallel num_threads(threads) if (threads > 1)
        {
            std::vector<double> bd(k), d(N);
#pragma omp for schedule(static)
            for (int i = 0; i < N; ++i) {
                dist_to(xs, N, C, x + static_cast<size_t>(i) * ld, d.data());  // (x_j − x_i)² = (x_i − x_j)²
                select_k(d.data(), N, k, idx + static_cast<size_t>(i) * k, bd.data());
            }
        }
        return;
    }
    // Wide features: the float GEMM form ‖x_i‖² + ‖x_j‖² − 2 x_i·x_j finds the candidates fast, but it
    // cancels badly when neighbours are close relative to the feature norms; every candidate within its
    // error bound of the k-th is re-ranked by the exact distance Σ_c (x_ic − x_jc)² in double (float32
    // differences and squares are exact there), so the neighbours are those of exact arithmetic (torch in
    // float64), ties to the lower index.
    std::vector<float> xt(static_cast<size_t>(C) * N), aa(N);
    float aamax = 0.f;
    for (int j = 0; j < N; ++j) {
        const float* r = x + static_cast<size_t>(j) * ld;
        float s = 0.f;
        for (int c = 0; c < C; ++c) {
            xt[static_cast<size_t>(c) * N + j] = r[c];
            s += r[c] * r[c];
        }
        aa[j] = s;
        aamax = std::max(aamax, s);
    }
    const float gamma = static_cast<float>(2 * C + 16) * 1.1920929e-07f;  // generous bound on the relative error
    constexpr int RB = 16;
    const int nblocks = (N + RB - 1) / RB;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
    std::vector<float> xb(static_cast<size_t>(RB) * C), z(static_cast<size_t>(RB) * N), d(N), tmp(k);
    std::vector<double> exact(N), bdd(k);
    std::vector<int32_t> cand(N);
#pragma omp for schedule(dynamic, 2)
    for (int blk = 0; blk < nblocks; ++blk) {
        const int i0 = blk * RB;
        const int R = std::min(RB, N - i0);
        for (int r = 0; r < R; ++r)
            std::memcpy(xb.data() + static_cast<size_t>(r) * C, x + static_cast<size_t>(i0 + r) * ld, sizeof(float) * C);
        fgemm(isa, xb.data(), R, C, xt.data(), N, z.data());
        for (int r = 0; r < R; ++r) {
            const int i = i0 + r;
            const float* zr = z.data() + static_cast<size_t>(r) * N;
            const float ai = aa[i];
            for (int j = 0; j < N; ++j) d[j] = (ai + aa[j]) + -2.f * zr[j];
            // the k-th smallest approximate distance: sorted insertion, almost every candidate is rejected
            // by one compare with the current k-th
            int nt = 0;
            for (int j = 0; j < N; ++j) {
                const float v = d[j];
                if (nt == k) {
                    if (!(v < tmp[k - 1])) continue;
                    --nt;
                }
                int p = nt++;
                while (p > 0 && tmp[p - 1] > v) {
                    tmp[p] = tmp[p - 1];
                    --p;
                }
                tmp[p] = v;
            }
            const float lim = tmp[k - 1] + 2.f * gamma * (ai + aamax);
            const float* xi = x + static_cast<size_t>(i) * ld;
            int nc = 0;
            for (int j = 0; j < N; ++j) {
                if (!(d[j] <= lim)) continue;
                const float* xj = x + static_cast<size_t>(j) * ld;
                double e = 0.0;
                for (int c = 0; c < C; ++c) {
                    const double t = static_cast<double>(xi[c]) - static_cast<double>(xj[c]);
                    e += t * t;
                }
                exact[nc] = e;
                cand[nc++] = j;
            }
            select_k(exact.data(), nc, k, idx + static_cast<size_t>(i) * k, bdd.data(), cand.data());
        }
    }
    }  // omp parallel
}


void fps(const float* x, int N, int ld, int C, int S, int start, int32_t* idx) {
    const std::vector<float> xs = channel_major(x, N, ld, C);
    std::vector<double> mind(N, std::numeric_limits<double>::infinity()), d(N);
    std::vector<float> c(C);
    int cur = start;
    for (int t = 0; t < S; ++t) {
        idx[t] = cur;
        for (int q = 0; q < C; ++q) c[q] = x[static_cast<size_t>(cur) * ld + q];
        dist_to(xs, N, C, c.data(), d.data());  // (x_j − c)², channel order, as the reference
        for (int j = 0; j < N; ++j) mind[j] = std::min(mind[j], d[j]);
        int best = 0;
        double bestv = mind[0];
        for (int j = 1; j < N; ++j)
            if (mind[j] > bestv) {  // strictly greater: the first maximal index wins
                bestv = mind[j];
                best = j;
            }
        cur = best;
    }
}

void ball_query(const float* xyz, int N, int ldx, const float* ctr, int S, int ldc, int C, float r2, int K,
                int32_t* idx, int threads) {
    const std::vector<float> xs = channel_major(xyz, N, ldx, C);
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
    std::vector<double> d(N);
    const double r2d = r2;  // float32(radius²), compared with the double E as the reference does
#pragma omp for schedule(static)
    for (int s = 0; s < S; ++s) {
        const float* c = ctr + static_cast<size_t>(s) * ldc;
        int32_t* o = idx + static_cast<size_t>(s) * K;
        dist_to(xs, N, C, c, d.data());  // (x_j − c)² = (c − x_j)², the reference's values
        int n = 0;
        for (int j = 0; j < N && n < K; ++j)
            if (d[j] < r2d) o[n++] = j;
        if (n == 0) {
            // nothing inside: the nearest point, lowest index on ties
            int nearest = 0;
            for (int j = 1; j < N; ++j)
                if (d[j] < d[nearest]) nearest = j;
            for (int t = 0; t < K; ++t) o[t] = nearest;
            continue;
        }
        for (int t = n; t < K; ++t) o[t] = o[0];
    }
    }  // omp parallel
}

void gather_f(const float* x, int ldx, int C, const int32_t* idx, int R, float* out, int ldo) {
    for (int r = 0; r < R; ++r)
        std::memcpy(out + static_cast<size_t>(r) * ldo, x + static_cast<size_t>(idx[r]) * ldx, sizeof(float) * C);
}

void gather_b(const uint64_t* x, int W, const int32_t* idx, int R, uint64_t* out) {
    for (int r = 0; r < R; ++r)
        std::memcpy(out + static_cast<size_t>(r) * W, x + static_cast<size_t>(idx[r]) * W, sizeof(uint64_t) * W);
}

void edge_f(const float* x, int N, int ld, int C, const int32_t* idx, int k, float* out) {
    const int ldo = 2 * C;
    for (int i = 0; i < N; ++i) {
        const float* xi = x + static_cast<size_t>(i) * ld;
        for (int t = 0; t < k; ++t) {
            const float* xj = x + static_cast<size_t>(idx[static_cast<size_t>(i) * k + t]) * ld;
            float* o = out + (static_cast<size_t>(i) * k + t) * ldo;
            for (int c = 0; c < C; ++c) o[c] = xj[c] - xi[c];
            std::memcpy(o + C, xi, sizeof(float) * C);
        }
    }
}

namespace {
// bits [pos, pos + C) of o = [a_c >= b_c] (b null: [a_c >= 0]); o zeroed by the caller
inline void ge_bits(const float* a, const float* b, int C, uint64_t* o, int pos) {
    for (int c = 0; c < C; ++c) {
        const bool on = b ? a[c] >= b[c] : a[c] >= 0.f;
        const int p = pos + c;
        o[p >> 6] |= static_cast<uint64_t>(on) << (p & 63);
    }
}
}  // namespace

void edge_b(int isa, const float* x, int N, int ld, int C, const int32_t* idx, int k, uint64_t* out, int ldo) {
    std::vector<uint64_t> self(static_cast<size_t>(ldo)), cw(static_cast<size_t>((C + 63) / 64));
    std::vector<float> diff(C);
    for (int i = 0; i < N; ++i) {
        const float* xi = x + static_cast<size_t>(i) * ld;
        // the centre half [x_i >= 0] (bits C .. 2C) is the same for the k rows of point i
        std::fill(self.begin(), self.end(), 0);
        std::fill(cw.begin(), cw.end(), 0);
        pack_ge(isa, xi, C, 0.f, cw.data());
        put_bits(self.data(), C, cw.data(), C);
        for (int t = 0; t < k; ++t) {
            const float* xj = x + static_cast<size_t>(idx[static_cast<size_t>(i) * k + t]) * ld;
            uint64_t* o = out + (static_cast<size_t>(i) * k + t) * ldo;
            std::memcpy(o, self.data(), sizeof(uint64_t) * ldo);
            // sign(x_j − x_i): the float difference is >= 0 exactly when x_j >= x_i (sign(0) = +1)
            for (int c = 0; c < C; ++c) diff[c] = xj[c] - xi[c];
            pack_ge(isa, diff.data(), C, 0.f, o);
        }
    }
}

void group_f(const float* xyz, int ldx, const float* ctr, int ldc, int D, const float* fF, int ldf, int F,
             const int32_t* idx, int S, int K, float* out) {
    const int ldo = D + F;
    for (int s = 0; s < S; ++s) {
        const float* c = ctr + static_cast<size_t>(s) * ldc;
        for (int t = 0; t < K; ++t) {
            const int j = idx[static_cast<size_t>(s) * K + t];
            float* o = out + (static_cast<size_t>(s) * K + t) * ldo;
            const float* p = xyz + static_cast<size_t>(j) * ldx;
            for (int d = 0; d < D; ++d) o[d] = p[d] - c[d];
            if (F) std::memcpy(o + D, fF + static_cast<size_t>(j) * ldf, sizeof(float) * F);
        }
    }
}

void group_b(const float* xyz, int ldx, const float* ctr, int ldc, int D, const float* fF, const uint64_t* fB,
             int ldf, int F, const int32_t* idx, int S, int K, uint64_t* out, int ldo) {
    for (int s = 0; s < S; ++s) {
        const float* c = ctr + static_cast<size_t>(s) * ldc;
        for (int t = 0; t < K; ++t) {
            const int j = idx[static_cast<size_t>(s) * K + t];
            uint64_t* o = out + (static_cast<size_t>(s) * K + t) * ldo;
            std::memset(o, 0, sizeof(uint64_t) * ldo);
            ge_bits(xyz + static_cast<size_t>(j) * ldx, c, D, o, 0);  // sign(x_j − c) = [x_j >= c]
            if (!F) continue;
            if (fB) put_bits(o, D, fB + static_cast<size_t>(j) * ldf, F);
            else ge_bits(fF + static_cast<size_t>(j) * ldf, nullptr, F, o, D);
        }
    }
}

void pool_groups(const float* x, int rows, int C, int g, bool avg, float off, float* out) {
    const int G = rows / g;
    std::vector<double> acc(avg ? C : 0);
    for (int q = 0; q < G; ++q) {
        const float* xs = x + static_cast<size_t>(q) * g * C;
        float* o = out + static_cast<size_t>(q) * C;
        if (avg) {
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int r = 0; r < g; ++r)
                for (int c = 0; c < C; ++c) acc[c] += xs[static_cast<size_t>(r) * C + c];
            for (int c = 0; c < C; ++c) o[c] = static_cast<float>(acc[c] / g) - off;
            continue;
        }
        std::memcpy(o, xs, sizeof(float) * C);
        for (int r = 1; r < g; ++r)
            for (int c = 0; c < C; ++c) o[c] = std::max(o[c], xs[static_cast<size_t>(r) * C + c]);
        for (int c = 0; c < C; ++c) o[c] -= off;
    }
}

void put_bits(uint64_t* dst, int bit, const uint64_t* src, int n) {
    const int w0 = bit >> 6, sh = bit & 63;
    const int words = (n + 63) / 64;
    for (int w = 0; w < words; ++w) {
        uint64_t v = src[w];
        const int valid = std::min(64, n - 64 * w);
        if (valid < 64) v &= (1ULL << valid) - 1;
        dst[w0 + w] |= v << sh;
        if (sh && (sh + valid > 64)) dst[w0 + w + 1] |= v >> (64 - sh);
    }
}

}  // namespace geo
}  // namespace onebit
