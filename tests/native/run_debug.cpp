// Debug run of a .onebit model through libonebit's Model (csrc/model.h), for tests/test_neon_models.py: built for
// x86-64 and for aarch64 (run under qemu-aarch64) from the same sources, its lines are compared op by op.
//
//   run_debug MODEL INPUT.npy ISA
//
// prints "ISA <name>", one "OUT <index> <value %.9g>" per output float, and per cloud b and op one line
//   "OP <b> <name> <kind> <rows> <cols> <hash of the buffer> <acc rows> <acc cols> <hash of the accumulators>"
// (kind 0 float, 1 bits, 2 index; accumulators: XNOR k − 2·popcount, AND [popcount(e AND x) ‖ popcount(x)]).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "model.h"
#include "npy.h"

namespace {
unsigned long long fnv(const void* p, size_t n) {
    const unsigned char* b = static_cast<const unsigned char*>(p);
    unsigned long long h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}
}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: run_debug MODEL INPUT.npy ISA\n");
        return 2;
    }
    try {
        auto m = onebit::Model::load(argv[1], argv[3]);
        npy::Array x = npy::read(argv[2]);
        const int nd = static_cast<int>(x.shape.size());
        const auto oshape = m->output_shape(x.shape.data(), nd);
        size_t n = 1;
        for (int64_t d : oshape) n *= static_cast<size_t>(d);
        std::vector<float> y(n);
        std::vector<onebit::DebugCloud> dbg;
        m->run(x.data.data(), x.shape.data(), nd, y.data(), 1, &dbg);
        std::printf("ISA %s\n", m->isa_name_str());
        for (size_t i = 0; i < n; ++i) std::printf("OUT %zu %.9g\n", i, static_cast<double>(y[i]));
        for (size_t b = 0; b < dbg.size(); ++b)
            for (const auto& e : dbg[b])
                std::printf("OP %zu %s %d %d %d %016llx %d %d %016llx\n", b, e.name.c_str(), e.kind, e.rows, e.cols,
                            fnv(e.data.data(), e.data.size()), e.acc_rows, e.acc_cols,
                            fnv(e.acc.data(), e.acc.size() * sizeof(int32_t)));
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "run_debug: %s\n", ex.what());
        return 1;
    }
    return 0;
}
