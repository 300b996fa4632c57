// Model (model.h): load + validate + plan cache + input shapes.
#include "model.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <stdexcept>

#include "plan.h"

#ifndef ONEBIT_VERSION
#define ONEBIT_VERSION "0.0.0"
#endif

namespace onebit {

const char* version() { return ONEBIT_VERSION; }

int resolve_isa(const std::string& requested) {
    std::string name = requested;
    if (name.empty()) {
        const char* env = std::getenv("ONEBIT_ISA");
        name = env && *env ? env : isa_name(detect_isa());
    }
    // strip + lower, as the Python runtime did
    const auto b = name.find_first_not_of(" \t\n\r"), e = name.find_last_not_of(" \t\n\r");
    name = b == std::string::npos ? "" : name.substr(b, e - b + 1);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string sup = "[";
    for (int id : supported_isas()) sup += (sup.size() > 1 ? ", '" : "'") + std::string(isa_name(id)) + "'";
    sup += "]";
    std::string known = "['avx512', 'avx2', 'scalar'";
    if (detect_isa() != ISA_AVX512 && detect_isa() != ISA_AVX2 && detect_isa() != ISA_SCALAR)
        known += ", '" + std::string(isa_name(detect_isa())) + "'";
    known += "]";
    try {
        return parse_isa(name);
    } catch (const std::invalid_argument& ex) {
        if (std::string(ex.what()).rfind("unknown", 0) == 0)
            throw std::invalid_argument("unknown ISA " + repr_str(name) + " (ONEBIT_ISA / isa=): expected one of " + known);
        throw std::invalid_argument("ISA " + repr_str(name) + " is not supported by this CPU (supported: " + sup + ")");
    }
}

std::unique_ptr<Model> Model::load(const std::string& path, const std::string& isa) {
    Container c = read_container(path);
    const int id = resolve_isa(isa);
    std::unique_ptr<Model> m(new Model());
    m->g_ = validate_graph(std::move(c));
    m->isa_ = id;
    const auto slash = path.find_last_of('/');
    m->base_ = slash == std::string::npos ? path : path.substr(slash + 1);
    return m;
}

namespace {
std::string tuple_repr(const int64_t* shape, int ndim) {
    std::string s = "(";
    for (int k = 0; k < ndim; ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
    return s + (ndim == 1 ? ",)" : ")");
}
}  // namespace

void Model::input_dims(const int64_t* shape, int ndim, int& B, int& N) const {
    const int64_t C = g_.input_channels;
    if (ndim < 0 || ndim > 16 || (ndim > 0 && !shape)) throw std::invalid_argument(base_ + ": bad input shape");
    for (int k = 0; k < ndim; ++k)
        if (shape[k] < 0) throw std::invalid_argument(base_ + ": bad input shape " + tuple_repr(shape, ndim));
    int64_t b, n;
    if (g_.input_hw) {
        const int64_t h = g_.H, w = g_.W;
        std::vector<int64_t> s(shape, shape + ndim);
        int64_t total = 1;
        for (int64_t d : s) total *= d;
        if (ndim == 2 || (ndim == 3 && C == 1 && s[0] != 1 && s[1] == h && s[2] == w)) {
            const int64_t hw = s[ndim - 2] * s[ndim - 1];
            s = {hw ? total / hw : 0, 1, s[ndim - 2], s[ndim - 1]};
        } else if (ndim == 3) {
            s.insert(s.begin(), 1);
        }
        if (s.size() != 4 || s[1] != C || s[2] != h || s[3] != w)
            throw std::invalid_argument(base_ + ": expected images (B, " + std::to_string(C) + ", " + std::to_string(h) +
                                        ", " + std::to_string(w) + ")" +
                                        (C == 1 ? ", (B, " + std::to_string(h) + ", " + std::to_string(w) + ") or (" +
                                                      std::to_string(h) + ", " + std::to_string(w) + ")"
                                                : std::string()) +
                                        ", got shape " + tuple_repr(s.data(), static_cast<int>(s.size())));
        b = s[0];
        n = h * w;
    } else {
        std::vector<int64_t> s(shape, shape + ndim);
        if (ndim == 2) s.insert(s.begin(), 1);
        if (s.size() != 3 || s[2] != C)
            throw std::invalid_argument(base_ + ": expected points (B, N, " + std::to_string(C) + ") or (N, " +
                                        std::to_string(C) + "), got shape " + tuple_repr(s.data(), static_cast<int>(s.size())));
        if (s[1] < 1) throw std::invalid_argument(base_ + ": a cloud needs at least one point");
        if (g_.points && s[1] != g_.points)
            throw std::invalid_argument(base_ + ": this model was exported for clouds of exactly " + std::to_string(g_.points) +
                                        " points (EMA-max offsets folded into its thresholds), got " + std::to_string(s[1]) +
                                        "; re-export without points= to accept any point count");
        b = s[0];
        n = s[1];
    }
    if (b > (1 << 30) || n > (1 << 30)) throw std::invalid_argument(base_ + ": input too large " + tuple_repr(shape, ndim));
    B = static_cast<int>(b);
    N = static_cast<int>(n);
}

std::vector<int64_t> Model::output_shape(const int64_t* shape, int ndim) const {
    int B, N;
    input_dims(shape, ndim, B, N);
    const Value& vo = g_.values.at(g_.output_name);
    if (g_.output_pooled) return {B, vo.channels};
    return {B, vo.nrows(N), vo.channels};
}

std::shared_ptr<const Engine> Model::engine_for(int64_t n_points) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = engines_.find(n_points);
        if (it != engines_.end()) return it->second;
    }
    Plan plan = make_plan(g_, n_points);  // may throw invalid_argument naming the file
    std::shared_ptr<const Engine> eng;
    try {
        eng = std::make_shared<const Engine>(std::move(plan.bufs), plan.recs, plan.output, isa_);
    } catch (const std::invalid_argument& ex) {
        throw FormatError(g_.path + ": " + ex.what());
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (engines_.size() > 8) engines_.clear();
    engines_[n_points] = eng;
    return eng;
}

void Model::run(const float* x, const int64_t* shape, int ndim, float* out, int threads, std::vector<DebugCloud>* dbg,
                std::vector<double>* prof) {
    int B, N;
    input_dims(shape, ndim, B, N);
    const int C = g_.input_channels;
    std::vector<float> nhwc;
    if (g_.input_hw && C > 1) {  // NCHW -> NHWC rows
        nhwc.resize(static_cast<size_t>(B) * N * C);
        for (int b = 0; b < B; ++b)
            for (int c = 0; c < C; ++c)
                for (int p = 0; p < N; ++p)
                    nhwc[(static_cast<size_t>(b) * N + p) * C + c] = x[(static_cast<size_t>(b) * C + c) * N + p];
        x = nhwc.data();
    }
    auto eng = engine_for(N);
    try {
        eng->check_input(x, B, N, C);
    } catch (const std::invalid_argument& ex) {
        throw std::invalid_argument(base_ + ": " + ex.what());
    }
    eng->run(x, B, N, out, threads, dbg, prof);
}

std::vector<std::string> Model::op_names() const {
    std::vector<std::string> names;
    for (const Json& op : g_.ops) names.push_back(op.find("name")->s);
    return names;
}

}  // namespace onebit
