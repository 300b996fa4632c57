// onebit_runtime._engine: the Python binding of libonebit (pybind11). The runtime's Python side only
// converts arrays: loading, validation, planning and running are libonebit's (model.h). Also exposes the
// kernels on their own for the kernel tests and benchmarks, and a plan-level Engine for tests of the
// engine's own record checks.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine.h"
#include "format.h"
#include "kernels.h"
#include "linear.h"
#include "model.h"
#include "plan.h"

namespace py = pybind11;
using namespace onebit;

namespace {

using clk = std::chrono::steady_clock;

// ---------------------------------------------------------------- models
using farr = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::vector<int64_t> shape_of(const py::array& x) { return std::vector<int64_t>(x.shape(), x.shape() + x.ndim()); }

py::array_t<float> run_model(Model& m, farr x, int threads) {
    const auto shape = shape_of(x);
    const auto oshape = m.output_shape(shape.data(), static_cast<int>(shape.size()));
    py::array_t<float> out(std::vector<py::ssize_t>(oshape.begin(), oshape.end()));
    const float* xp = x.data();
    float* op = out.mutable_data();
    {
        py::gil_scoped_release release;
        m.run(xp, shape.data(), static_cast<int>(shape.size()), op, threads);
    }
    return out;
}

py::tuple run_debug(Model& m, farr x) {
    const auto shape = shape_of(x);
    const auto oshape = m.output_shape(shape.data(), static_cast<int>(shape.size()));
    py::array_t<float> out(std::vector<py::ssize_t>(oshape.begin(), oshape.end()));
    std::vector<DebugCloud> dbg;
    m.run(x.data(), shape.data(), static_cast<int>(shape.size()), out.mutable_data(), 1, &dbg);
    py::list clouds;
    for (const DebugCloud& c : dbg) {
        py::dict d;
        for (const DebugEntry& e : c) {
            py::dict entry;
            if (e.kind == 2) {
                py::array_t<int32_t> a({e.rows, e.cols});
                std::memcpy(a.mutable_data(), e.data.data(), e.data.size());
                entry["index"] = a;
            } else if (e.kind == 1) {
                py::array_t<uint64_t> a({e.rows, e.cols});
                std::memcpy(a.mutable_data(), e.data.data(), e.data.size());
                entry["bits"] = a;
            } else {
                py::array_t<float> a({e.rows, e.cols});
                std::memcpy(a.mutable_data(), e.data.data(), e.data.size());
                entry["float"] = a;
            }
            if (!e.acc.empty() || e.acc_rows) {
                py::array_t<int32_t> a({e.acc_rows, e.acc_cols});
                std::memcpy(a.mutable_data(), e.acc.data(), sizeof(int32_t) * e.acc.size());
                entry["acc"] = a;
            }
            d[py::str(e.name)] = entry;
        }
        clouds.append(d);
    }
    return py::make_tuple(out, clouds);
}

// per-op native thread CPU time (ns) of one run
py::list profile_model(Model& m, farr x, int threads) {
    const auto shape = shape_of(x);
    const auto oshape = m.output_shape(shape.data(), static_cast<int>(shape.size()));
    size_t n = 1;
    for (int64_t d : oshape) n *= static_cast<size_t>(d);
    std::vector<float> out(n);
    std::vector<double> prof;
    {
        py::gil_scoped_release release;
        m.run(x.data(), shape.data(), static_cast<int>(shape.size()), out.data(), threads, nullptr, &prof);
    }
    const auto names = m.op_names();
    py::list l;
    for (size_t i = 0; i < names.size() && i < prof.size(); ++i) l.append(py::make_tuple(names[i], prof[i]));
    return l;
}

py::tuple read_file(const std::string& path) {
    Container c = read_container(path);
    py::dict tensors;
    for (const std::string& name : c.tensor_order) {
        const Tensor& t = c.tensors.at(name);
        const char* fmt = t.dtype == DType::F32 ? "<f4" : t.dtype == DType::I32 ? "<i4" : t.dtype == DType::I16 ? "<i2"
                          : t.dtype == DType::U8 ? "u1" : t.dtype == DType::U64 ? "<u8" : "<i8";
        py::array a(py::dtype(fmt), std::vector<py::ssize_t>(t.shape.begin(), t.shape.end()));
        if (!t.data.empty()) std::memcpy(a.mutable_data(), t.data.data(), t.data.size());
        tensors[py::str(name)] = a;
    }
    return py::make_tuple(tensors, c.graph_text);
}

// ---------------------------------------------------------------- a plan from Python dicts (engine tests)
Rec rec_of(const py::dict& d) {
    Rec r;
    for (auto item : d) {
        const std::string k = py::str(item.first);
        py::handle v = item.second;
        if (k == "name") {
            r.name = py::str(v);
        } else if (py::isinstance<py::bool_>(v) || py::isinstance<py::int_>(v) || py::isinstance<py::float_>(v)) {
            r.num[k] = v.cast<double>();
        } else if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
            r.i64[k] = v.cast<std::vector<int64_t>>();
        } else {
            py::array a = py::array::ensure(v);
            if (!a) throw std::invalid_argument("op '" + r.name + "': field '" + k + "' has an unsupported type");
            const char kind = a.dtype().kind();
            if (kind == 'f') r.f32[k] = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a).cast<std::vector<float>>();
            else if (kind == 'u' && a.dtype().itemsize() == 8)
                r.u64[k] = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(a).cast<std::vector<uint64_t>>();
            else r.i64[k] = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a).cast<std::vector<int64_t>>();
        }
    }
    return r;
}

struct PyEngine {
    std::unique_ptr<Engine> e;
    py::array_t<float> run(farr x, int threads) {
        if (x.ndim() != 3) throw std::invalid_argument("input must have shape (B, N, C)");
        const int B = static_cast<int>(x.shape(0)), N = static_cast<int>(x.shape(1));
        e->check_input(x.data(), B, N, static_cast<int>(x.shape(2)));
        py::array_t<float> out({B, e->out_rows(N), e->out_cols()});
        e->run(x.data(), B, N, out.mutable_data(), threads);
        return out;
    }
};

PyEngine make_engine(const py::list& buffers, const py::list& ops, int output, const std::string& isa) {
    std::vector<BufSpec> bufs;
    for (auto item : buffers) {
        auto d = item.cast<py::dict>();
        BufSpec b;
        b.bits = d["bits"].cast<bool>();
        b.pooled = d["pooled"].cast<bool>();
        b.cols = d["cols"].cast<int>();
        b.rows = d.contains("rows") ? d["rows"].cast<int>() : 0;
        b.mult = d.contains("mult") ? d["mult"].cast<int>() : 1;
        b.index = d.contains("index") && d["index"].cast<bool>();
        bufs.push_back(b);
    }
    std::vector<Rec> recs;
    for (auto item : ops) recs.push_back(rec_of(item.cast<py::dict>()));
    return PyEngine{std::make_unique<Engine>(std::move(bufs), recs, output, parse_isa(isa))};
}

// ---------------------------------------------------------------- standalone kernels (tests, bench)
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
    m.doc() = "libonebit for Python: load / validate / plan / run .onebit models, and the kernels on their own";
    py::register_exception<FormatError>(m, "FormatError", PyExc_ValueError);
    m.attr("FormatError").attr("__doc__") = "A .onebit file is truncated, corrupted or inconsistent (the message names the file).";
    m.attr("FORMAT_VERSION") = FORMAT_VERSION;
    m.attr("__version__") = version();
    m.def("version", []() { return std::string(version()); });
    m.def("best_isa", []() { return std::string(isa_name(detect_isa())); }, "Best ISA this CPU supports.");
    m.def("supported_isas", []() {
        std::vector<std::string> v;
        for (int id : supported_isas()) v.push_back(isa_name(id));
        return v;
    });
    m.def("resolve_isa", [](const std::string& name) { return std::string(isa_name(resolve_isa(name))); },
          py::arg("name") = "", "The ISA for a name ('' = $ONEBIT_ISA, else the best this CPU supports).");
    m.def("max_threads", []() { return omp_get_max_threads(); });
    m.def("ema_offset", &ema_offset, py::arg("n"), "BiPointNet's EMA-max offset δ*(n) = Φ⁻¹(0.5^(1/n)).");
    m.def("read", &read_file, py::arg("path"), "(tensors, graph JSON) of a checked .onebit container.");
    py::class_<Model>(m, "Model")
        .def(py::init([](const std::string& path, const std::string& isa) { return Model::load(path, isa); }),
             py::arg("path"), py::arg("isa") = "")
        .def("run", &run_model, py::arg("x"), py::arg("threads") = 1)
        .def("run_debug", &run_debug, py::arg("x"))
        .def("profile", &profile_model, py::arg("x"), py::arg("threads") = 1)
        .def("output_shape", [](const Model& md, const std::vector<int64_t>& s) {
            return md.output_shape(s.data(), static_cast<int>(s.size()));
        })
        .def_property_readonly("path", [](const Model& md) { return md.path(); })
        .def_property_readonly("isa", [](const Model& md) { return std::string(md.isa_name_str()); })
        .def_property_readonly("file_bytes", [](const Model& md) { return md.graph().file_bytes; })
        .def_property_readonly("graph_json", [](const Model& md) { return md.graph().graph_text; })
        .def_property_readonly("input_channels", [](const Model& md) { return md.graph().input_channels; })
        .def_property_readonly("output_channels", [](const Model& md) { return md.graph().output_channels; })
        .def_property_readonly("output_pooled", [](const Model& md) { return md.graph().output_pooled; })
        .def_property_readonly("points", [](const Model& md) -> py::object {
            return md.graph().points ? py::object(py::int_(md.graph().points)) : py::object(py::none());
        })
        .def_property_readonly("input_hw", [](const Model& md) -> py::object {
            const Graph& g = md.graph();
            return g.input_hw ? py::object(py::make_tuple(g.H, g.W)) : py::object(py::none());
        })
        .def_property_readonly("op_names", &Model::op_names);
    m.def("popcount_gemm", &popcount_gemm, py::arg("x"), py::arg("w"), py::arg("and_mode") = false,
          py::arg("isa") = "scalar", "pc[m, n] = popcount(x[m] xor/and w[n]) over packed 64-bit words.");
    m.def("threshold_gemm", &threshold_gemm, py::arg("x"), py::arg("w"), py::arg("P"), py::arg("flip"),
          py::arg("or_mode") = false, py::arg("isa") = "scalar", py::arg("threads") = 1,
          "Packed bits (popcount(x xor w) <= P) ^ flip; or_mode ORs over rows.");
    m.def("bench_gemm", &bench_gemm, py::arg("M"), py::arg("N"), py::arg("K"), py::arg("isa"), py::arg("reps") = 7,
          py::arg("min_block_s") = 0.05, py::arg("threads") = 1, py::arg("pooled") = false,
          "Median (wall s, calling-thread CPU s) of one M x K by N x K binary layer: thresholded bits out, or "
          "with pooled=True OR-pooled over the M rows (the early exit disabled by an unreachable threshold).");
    py::class_<PyEngine>(m, "Engine")
        .def(py::init(&make_engine), py::arg("buffers"), py::arg("ops"), py::arg("output"), py::arg("isa"))
        .def("run", &PyEngine::run, py::arg("x"), py::arg("threads") = 1)
        .def_property_readonly("in_channels", [](const PyEngine& e) { return e.e->in_channels(); });
}
