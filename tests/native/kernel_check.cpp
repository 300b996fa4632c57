// Kernel-level check of every ISA path this CPU has against the portable kernels, on deterministic random inputs,
// built natively (x86-64) and cross-built for aarch64 (run under qemu-aarch64) by tests/test_neon_kernels.py.
//
// Within one run:
//  * integer kernels (pc_tile, thresholded tiles / rows / OR rows) and the kernels without FMA (pack_ge,
//    quant_rows, the affine epilogue) of every vector ISA must equal the portable path bit for bit;
//  * the FMA kernels (fgemm, fbits, flinear_small) of AVX-512 and NEON must equal a reference FMA chain in k order
//    (std::fmaf, one rounding per step), and the portable / AVX2 paths the multiply-then-add chain.
// Every case then prints "CASE <name> <isa> <hash of the outputs>": the test compares the aarch64 run's neon
// hashes with the x86 run's avx512 hashes and the two scalar runs, i.e. the NEON kernels give the x86 engine's
// bits. Exit status 1 (and FAIL lines) on any mismatch.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels.h"

using namespace onebit;

namespace {

uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
uint64_t next_u64() {  // splitmix64: the same stream on every host
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
int rand_int(int lo, int hi) { return lo + static_cast<int>(next_u64() % static_cast<uint64_t>(hi - lo + 1)); }
// floats of three kinds: general (24-bit mantissas, rounding exercised), small dyadic (exact ties), zero
float rand_float(int kind) {
    if (kind == 0) return static_cast<float>(static_cast<int64_t>(next_u64() >> 40) - (1LL << 23)) * 1.1920929e-07f;
    if (kind == 1) return static_cast<float>(rand_int(-8, 8)) * 0.25f;
    return 0.f;
}
std::vector<float> rand_floats(size_t n, int kind) {
    std::vector<float> v(n);
    for (auto& x : v) x = rand_float(kind == 3 ? rand_int(0, 2) : kind);
    return v;
}
// random words, optionally only the first `bits` bits of each row of W words (padding bits 0)
std::vector<uint64_t> rand_words(size_t rows, int W, int bits) {
    std::vector<uint64_t> v(rows * W);
    for (size_t r = 0; r < rows; ++r)
        for (int w = 0; w < W; ++w) {
            uint64_t x = next_u64();
            const int valid = bits - 64 * w;
            if (valid <= 0) x = 0;
            else if (valid < 64) x &= (1ULL << valid) - 1;
            v[r * W + w] = x;
        }
    return v;
}

uint64_t fnv(const void* p, size_t n, uint64_t h = 1469598103934665603ULL) {
    const unsigned char* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}
template <class T>
uint64_t hashv(const std::vector<T>& v) { return fnv(v.data(), v.size() * sizeof(T)); }

int failures = 0, checks = 0;
std::vector<int> isas;

template <class T>
void expect_same(const char* name, int isa, const std::vector<T>& got, const std::vector<T>& want) {
    ++checks;
    if (got.size() == want.size() && std::memcmp(got.data(), want.data(), got.size() * sizeof(T)) == 0) return;
    ++failures;
    size_t i = 0;
    while (i < got.size() && std::memcmp(&got[i], &want[i], sizeof(T)) == 0) ++i;
    std::printf("FAIL %s %s: first difference at element %zu of %zu\n", name, isa_name(isa), i, got.size());
}
void report(const std::string& name, int isa, uint64_t h) {
    std::printf("CASE %s %s %016llx\n", name.c_str(), isa_name(isa), static_cast<unsigned long long>(h));
}
bool fma_isa(int isa) { return isa == ISA_AVX512 || isa == ISA_NEON; }

// panels of NP channels from (N, W) row-major weights (zero words for padded channels)
std::vector<uint64_t> panels_of(const std::vector<uint64_t>& w, int N, int W) {
    const int panels = (N + NP - 1) / NP;
    std::vector<uint64_t> p(static_cast<size_t>(panels) * W * NP, 0);
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < W; ++k) p[(static_cast<size_t>(n / NP) * W + k) * NP + n % NP] = w[static_cast<size_t>(n) * W + k];
    return p;
}

std::vector<int64_t> rand_thresholds(int n, int K) {
    std::vector<int64_t> P(n);
    for (auto& p : P) {
        const int kind = rand_int(0, 9);
        // the engine's thresholds lie in [-1, K] (never / always set at the ends)
        if (kind == 0) p = -1;
        else if (kind == 1) p = K;
        else if (kind == 2) p = rand_int(0, 1) ? 0 : K - 1;
        else p = K / 2 + rand_int(-(K / 16 + 2), K / 16 + 2);
    }
    return P;
}

// ---------------------------------------------------------------- integer kernels
void check_pc_tile() {
    const int Ws[] = {1, 2, 3, 4, 5, 8, 16, 31, 32, 33, 70};
    for (int W : Ws)
        for (int R = 1; R <= MR; ++R)
            for (int and_mode = 0; and_mode < 2; ++and_mode) {
                const int K = 64 * W - rand_int(0, 63);
                const size_t ldx = W + rand_int(0, 2);
                std::vector<uint64_t> X(R * ldx);
                for (auto& x : X) x = next_u64();
                const auto wp = panels_of(rand_words(NP, W, K), NP, W);
                const std::string name = std::string("pc_tile/") + (and_mode ? "and" : "xor") + "/W" +
                                         std::to_string(W) + "/R" + std::to_string(R);
                std::vector<uint32_t> want(MR * NP, 0);
                pc_tile(ISA_SCALAR, and_mode, X.data(), ldx, R, wp.data(), W, want.data());
                for (int isa : isas) {
                    std::vector<uint32_t> got(MR * NP, 0);
                    pc_tile(isa, and_mode, X.data(), ldx, R, wp.data(), W, got.data());
                    expect_same(name.c_str(), isa, got, want);
                    report(name, isa, hashv(got));
                }
            }
}

void check_thr_tile() {
    const int Ws[] = {1, 3, 4, 5, 9, 16, 40};
    for (int W : Ws)
        for (int R = 1; R <= MR; ++R)
            for (int or_mode = 0; or_mode < 2; ++or_mode) {
                const int K = 64 * W - rand_int(0, 63);
                const size_t ldx = W;
                const auto X = rand_words(R, W, K);
                const auto wp = panels_of(rand_words(NP, W, K), NP, W);
                const auto P = rand_thresholds(NP, K);
                const uint32_t flip = static_cast<uint32_t>(next_u64());
                const std::string name = std::string("thr_tile/") + (or_mode ? "or" : "rows") + "/W" +
                                         std::to_string(W) + "/R" + std::to_string(R);
                std::vector<uint32_t> want(2 * MR + 1, 0x5A5A5A5Au);
                thr_tile_isa(ISA_SCALAR, or_mode, X.data(), ldx, R, wp.data(), W, P.data(), flip, want.data(), 2,
                             &want[2 * MR]);
                for (int isa : isas) {
                    std::vector<uint32_t> got(2 * MR + 1, 0x5A5A5A5Au);
                    thr_tile_isa(isa, or_mode, X.data(), ldx, R, wp.data(), W, P.data(), flip, got.data(), 2,
                                 &got[2 * MR]);
                    expect_same(name.c_str(), isa, got, want);
                    report(name, isa, hashv(got));
                }
            }
}

void check_short_rows() {
    const int Ms[] = {1, 5, 31, 32, 33, 100, 257};
    for (int W = 1; W <= SHORT_W; ++W)
        for (int M : Ms) {
            const int K = 64 * W - (W == 4 && M < 40 ? 0 : rand_int(0, 63));  // K = 256 (counts of 256) included
            const size_t ldx = W + (M & 1);
            auto X = rand_words(M, static_cast<int>(ldx), K);
            if (M == 33) std::fill(X.begin(), X.end(), ~0ULL);  // every count 0 or K
            const auto wp = panels_of(rand_words(NP, W, K), NP, W);
            // thresholds: random around K/2, and some far from it so that OR pooling sees early and late channels
            auto P = rand_thresholds(NP, K);
            for (int j = 0; j < NP; j += 5) P[j] = K / 2 - K / 4 - rand_int(0, 3);
            const std::string base = "/W" + std::to_string(W) + "/M" + std::to_string(M);
            const size_t ldo32 = 1 + (M & 1);
            std::vector<uint32_t> want(M * ldo32, 0xA5A5A5A5u);
            thr_rows_isa(ISA_SCALAR, X.data(), ldx, M, wp.data(), W, P.data(), want.data(), ldo32);
            std::vector<uint32_t> want_or(4);
            const uint32_t valids[4] = {~0u, 0xFFFFu, 0x00FF00F0u, 0x7u};
            for (int v = 0; v < 4; ++v) want_or[v] = or_rows_isa(ISA_SCALAR, X.data(), ldx, M, wp.data(), W, P.data(), valids[v]);
            for (int isa : isas) {
                std::vector<uint32_t> got(M * ldo32, 0xA5A5A5A5u);
                thr_rows_isa(isa, X.data(), ldx, M, wp.data(), W, P.data(), got.data(), ldo32);
                expect_same(("thr_rows" + base).c_str(), isa, got, want);
                report("thr_rows" + base, isa, hashv(got));
                std::vector<uint32_t> got_or(4);
                for (int v = 0; v < 4; ++v) got_or[v] = or_rows_isa(isa, X.data(), ldx, M, wp.data(), W, P.data(), valids[v]);
                expect_same(("or_rows" + base).c_str(), isa, got_or, want_or);
                report("or_rows" + base, isa, hashv(got_or));
            }
        }
}

void check_affine_bits() {
    for (int and_mode = 0; and_mode < 2; ++and_mode)
        for (int cmax : {32, 17, 16, 5, 1})
            for (int R = 1; R <= MR; ++R) {
                const int W = rand_int(1, 6), K = 64 * W - rand_int(0, 63);
                std::vector<uint32_t> pc(MR * NP);
                for (auto& p : pc) p = static_cast<uint32_t>(rand_int(0, K));
                std::vector<int32_t> px(MR), ecnt(NP);
                for (auto& p : px) p = rand_int(0, K);
                for (auto& e : ecnt) e = rand_int(-K, K);
                const int kind = rand_int(0, 1);
                const auto mul = rand_floats(NP, kind), rowc = rand_floats(NP, kind), add = rand_floats(NP, kind);
                const float lo = kind ? -1.f : -1e30f, hi = kind ? 1.f : 1e30f, off = rand_float(kind) * 0.5f;
                const std::string name = std::string("affine_bits/") + (and_mode ? "and" : "xnor") + "/c" +
                                         std::to_string(cmax) + "/R" + std::to_string(R);
                std::vector<uint32_t> want(MR, 0);
                affine_bits_isa(ISA_SCALAR, and_mode, pc.data(), R, px.data(), ecnt.data(), mul.data(), rowc.data(),
                                add.data(), K, lo, hi, off, cmax, want.data());
                for (int isa : isas) {
                    std::vector<uint32_t> got(MR, 0);
                    affine_bits_isa(isa, and_mode, pc.data(), R, px.data(), ecnt.data(), mul.data(), rowc.data(),
                                    add.data(), K, lo, hi, off, cmax, got.data());
                    expect_same(name.c_str(), isa, got, want);
                    report(name, isa, hashv(got));
                }
            }
}

// ---------------------------------------------------------------- float kernels
void check_pack_quant() {
    for (int N : {1, 15, 16, 17, 63, 64, 65, 100, 128, 200})
        for (int kind = 0; kind < 3; ++kind) {
            const auto z = rand_floats(N, kind == 2 ? 3 : kind);
            const float off = kind == 1 ? 0.25f : rand_float(0);
            const int words = (N + 63) / 64;
            const std::string name = "pack_ge/N" + std::to_string(N) + "/k" + std::to_string(kind);
            std::vector<uint64_t> want(words, 0x8000000000000000ULL);  // |= into existing bits
            pack_ge(ISA_SCALAR, z.data(), N, off, want.data());
            for (int isa : isas) {
                std::vector<uint64_t> got(words, 0x8000000000000000ULL);
                pack_ge(isa, z.data(), N, off, got.data());
                expect_same(name.c_str(), isa, got, want);
                report(name, isa, hashv(got));
            }
            // quant_rows: plain sign and BN + sign of M rows
            const int M = 3;
            const auto x = rand_floats(static_cast<size_t>(M) * N, kind == 2 ? 3 : kind);
            const auto mul = rand_floats(N, kind == 2 ? 3 : kind), add = rand_floats(N, kind == 2 ? 3 : kind);
            for (int affine = 0; affine < 2; ++affine) {
                const size_t ldo = words + 1;
                const std::string qn = "quant_rows/N" + std::to_string(N) + "/k" + std::to_string(kind) + "/a" +
                                       std::to_string(affine);
                std::vector<uint64_t> wantq(M * ldo, 7);
                quant_rows(ISA_SCALAR, x.data(), M, N, affine ? mul.data() : nullptr, affine ? add.data() : nullptr,
                           wantq.data(), ldo);
                for (int isa : isas) {
                    std::vector<uint64_t> got(M * ldo, 7);
                    quant_rows(isa, x.data(), M, N, affine ? mul.data() : nullptr, affine ? add.data() : nullptr,
                               got.data(), ldo);
                    expect_same(qn.c_str(), isa, got, wantq);
                    report(qn, isa, hashv(got));
                }
            }
        }
}

// reference chains: z = Σ_k x_k w_k from 0 (fgemm) or from the bias (fbits / flinear), fused or multiply-then-add
float chain(bool fused, float init, const float* x, const float* w, int K, size_t ldw) {
    float s = init;
    for (int k = 0; k < K; ++k) {
        if (fused) s = std::fmaf(x[k], w[k * ldw], s);
        else {
            const float p = x[k] * w[k * ldw];
            s = s + p;
        }
    }
    return s;
}

void check_fgemm() {
    const int Rs[] = {1, 3, 4, 6, 7, 13};
    const int Ks[] = {1, 3, 9, 64};
    const int Ns[] = {1, 5, 16, 21, 64, 70};
    for (int R : Rs)
        for (int K : Ks)
            for (int N : Ns) {
                const int kind = (R + K + N) % 2;
                const auto x = rand_floats(static_cast<size_t>(R) * K, kind);
                const auto wt = rand_floats(static_cast<size_t>(K) * N, kind);
                std::vector<float> ref_f(static_cast<size_t>(R) * N), ref_m(ref_f.size());
                for (int r = 0; r < R; ++r)
                    for (int n = 0; n < N; ++n) {
                        ref_f[r * N + n] = chain(true, 0.f, x.data() + r * K, wt.data() + n, K, N);
                        ref_m[r * N + n] = chain(false, 0.f, x.data() + r * K, wt.data() + n, K, N);
                    }
                const std::string name = "fgemm/R" + std::to_string(R) + "/K" + std::to_string(K) + "/N" + std::to_string(N);
                for (int isa : isas) {
                    std::vector<float> z(ref_f.size(), -7.f);
                    fgemm(isa, x.data(), R, K, wt.data(), N, z.data());
                    expect_same(name.c_str(), isa, z, fma_isa(isa) ? ref_f : ref_m);
                    report(name, isa, hashv(z));
                }
            }
}

void check_fbits_flinear() {
    const int Ks[] = {1, 2, 3, 4, 5, 12};
    const int Ns[] = {1, 10, 16, 33, 64, 65, 100, 128};
    for (int K : Ks)
        for (int N : Ns)
            for (int or_mode = 0; or_mode < 2; ++or_mode) {
                const int kind = (K + N + or_mode) % 2, R = 1 + (K * 7 + N) % 9;
                const auto x = rand_floats(static_cast<size_t>(R) * K, kind);
                const auto ws = rand_floats(static_cast<size_t>(K) * N, kind);
                auto add = rand_floats(N, kind);
                const float lo = kind ? -1.5f : -0.75f, hi = kind ? 1.5f : 0.75f, off = kind ? 0.25f : rand_float(0) * 0.1f;
                if (kind == 0 && K > 1)  // some biases put row 0 between the fused and the unfused value: the bit
                    for (int c = 0; c < N; c += 3) {  // tells an FMA chain from a multiply-then-add chain
                        const float s = chain(false, 0.f, x.data(), ws.data() + c, K, N);
                        for (int t = 0; t < 64; ++t) {
                            const float a = off - s + static_cast<float>(rand_int(-8, 8)) * std::fabs(s) * 1.2e-7f;
                            const float vf = chain(true, a, x.data(), ws.data() + c, K, N);
                            const float vm = chain(false, a, x.data(), ws.data() + c, K, N);
                            if ((vf - off >= 0.f) != (vm - off >= 0.f)) {
                                add[c] = a;
                                break;
                            }
                        }
                    }
                const int words = (N + 63) / 64;
                const size_t ldo = or_mode ? 0 : words + 1;
                const size_t osz = or_mode ? words : R * ldo;
                // references: v = chain from add, clamped, bit = [v - off >= 0]
                std::vector<uint64_t> ref_f(osz, or_mode ? 1 : 0x3C3C3C3C3C3C3C3CULL), ref_m = ref_f;
                std::vector<float> yref(static_cast<size_t>(R) * N);
                for (int r = 0; r < R; ++r) {
                    for (int c0 = 0; c0 < 64 * words; c0 += 64) {
                        uint64_t mf = 0, mm = 0;
                        for (int j = 0; j < 64 && c0 + j < N; ++j) {
                            const int c = c0 + j;
                            const float vf = chain(true, add[c], x.data() + r * K, ws.data() + c, K, N);
                            const float vm = chain(false, add[c], x.data() + r * K, ws.data() + c, K, N);
                            const float tf = vf < lo ? lo : (vf > hi ? hi : vf), tm = vm < lo ? lo : (vm > hi ? hi : vm);
                            mf |= static_cast<uint64_t>(tf - off >= 0.f) << j;
                            mm |= static_cast<uint64_t>(tm - off >= 0.f) << j;
                            yref[r * N + c] = tf;
                        }
                        if (or_mode) {
                            ref_f[c0 >> 6] |= mf;
                            ref_m[c0 >> 6] |= mm;
                        } else {
                            ref_f[r * ldo + (c0 >> 6)] = mf;
                            ref_m[r * ldo + (c0 >> 6)] = mm;
                        }
                    }
                }
                const std::string name = std::string("fbits/K") + std::to_string(K) + "/N" + std::to_string(N) +
                                         (or_mode ? "/or" : "/rows");
                for (int isa : isas) {
                    std::vector<uint64_t> got(osz, or_mode ? 1 : 0x3C3C3C3C3C3C3C3CULL);
                    fbits(isa, x.data(), R, K, ws.data(), add.data(), N, lo, hi, off, got.data(), ldo, or_mode);
                    expect_same(name.c_str(), isa, got, fma_isa(isa) ? ref_f : ref_m);
                    report(name, isa, hashv(got));
                }
                if (or_mode || K > 4) continue;
                const std::string fl = "flinear_small/K" + std::to_string(K) + "/N" + std::to_string(N);
                for (int isa : isas) {
                    std::vector<float> y(yref.size(), -9.f);
                    if (!flinear_small(isa, x.data(), R, K, ws.data(), add.data(), N, lo, hi, y.data())) continue;
                    for (auto& v : y) v = v == 0.f ? 0.f : v;  // +0 and -0 compare and hash alike
                    expect_same(fl.c_str(), isa, y, yref);     // the FMA chain (only AVX-512 / NEON have this kernel)
                    report(fl, isa, hashv(y));
                }
            }
}

}  // namespace

int main() {
    const int best = detect_isa();
    isas.push_back(ISA_SCALAR);
    if (best == ISA_AVX512) isas.push_back(ISA_AVX2);
    if (best != ISA_SCALAR) isas.push_back(best);
    std::printf("BEST %s\n", isa_name(best));
    check_pc_tile();
    check_thr_tile();
    check_short_rows();
    check_affine_bits();
    check_pack_quant();
    check_fgemm();
    check_fbits_flinear();
    std::printf("CHECKS %d FAILURES %d\n", checks, failures);
    return failures ? 1 : 0;
}
