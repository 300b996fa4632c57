// The C API's overhead per call: onebit_run (shape checks, output size, the engine-cache lookup, error
// handling) against the engine it calls (Engine::check_input + Engine::run: the part every caller pays,
// the old Python path included), on the same model and input, interleaved in alternating blocks.
//
//   cmake --build build --target onebit-bench-capi
//   build/onebit-bench-capi MODEL [POINTS] [BATCH]      (defaults: 1024 points, batch 1; one thread)
//
// Prints the median time per call of both and their difference (the overhead), in microseconds.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <ctime>

#include "model.h"
#include "onebit.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL [POINTS] [BATCH]\n", argv[0]);
        return 2;
    }
    const int N = argc > 2 ? std::atoi(argv[2]) : 1024, B = argc > 3 ? std::atoi(argv[3]) : 1;
    char err[512];
    onebit_model* cm = onebit_load(argv[1], err, sizeof err);
    if (!cm) {
        std::fprintf(stderr, "%s\n", err);
        return 1;
    }
    auto m = onebit::Model::load(argv[1]);
    const int C = m->graph().input_channels;
    std::mt19937 rng(0);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<size_t>(B) * N * C);
    for (float& v : x) v = nd(rng);
    const int64_t shape[3] = {B, N, C};
    const int64_t n = onebit_output_size(cm, shape, 3);
    std::vector<float> out(n), out2(n);
    auto eng = m->engine_for(N);
    using clk = std::chrono::steady_clock;
    auto cpu_us = []() {  // this thread's CPU time: robust to the host descheduling us
        timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return 1e6 * static_cast<double>(ts.tv_sec) + 1e-3 * static_cast<double>(ts.tv_nsec);
    };
    auto direct = [&]() {
        eng->check_input(x.data(), B, N, C);
        eng->run(x.data(), B, N, out2.data(), 1);
    };
    auto capi = [&]() {
        if (onebit_run(cm, x.data(), shape, 3, out.data(), n, 1, err, sizeof err)) std::abort();
    };
    for (int i = 0; i < 200; ++i) direct(), capi();  // warm-up
    // calibrate a block to ~20 ms
    int iters = 1;
    for (;;) {
        auto t0 = clk::now();
        for (int i = 0; i < iters; ++i) direct();
        if (std::chrono::duration<double>(clk::now() - t0).count() > 0.02) break;
        iters *= 2;
    }
    std::vector<double> td, tc, diff, cd, cc, cdiff;
    for (int r = 0; r < 101; ++r) {
        const double c0 = cpu_us();
        auto t0 = clk::now();
        for (int i = 0; i < iters; ++i) direct();
        const double c1 = cpu_us();
        auto t1 = clk::now();
        for (int i = 0; i < iters; ++i) capi();
        const double c2 = cpu_us();
        auto t2 = clk::now();
        const double a = std::chrono::duration<double, std::micro>(t1 - t0).count() / iters;
        const double b = std::chrono::duration<double, std::micro>(t2 - t1).count() / iters;
        td.push_back(a);
        tc.push_back(b);
        diff.push_back(b - a);
        cd.push_back((c1 - c0) / iters);
        cc.push_back((c2 - c1) / iters);
        cdiff.push_back((c2 - c1 - (c1 - c0)) / iters);
    }
    auto med = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    if (out != out2) {
        std::fprintf(stderr, "outputs differ\n");
        return 1;
    }
    std::printf("model %s, batch %d, %d points, isa %s, %d calls per block, 101 blocks (medians)\n", argv[1], B, N,
                onebit_isa(cm), iters);
    std::printf("               engine (check_input + run)   onebit_run (C API)   overhead per call\n");
    std::printf("wall time      %10.3f us                %10.3f us        %8.3f us\n", med(td), med(tc), med(diff));
    std::printf("thread CPU     %10.3f us                %10.3f us        %8.3f us\n", med(cd), med(cc), med(cdiff));
    onebit_free(cm);
    return 0;
}
