// onebit-run: run a .onebit model on a .npy file, or describe it.
//
//   onebit-run MODEL INPUT.npy [--out OUT.npy] [--threads T] [--isa NAME]
//   onebit-run --info MODEL
//
// Errors: one line on stderr naming the file, exit status 1 (2 for a usage error).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "model.h"
#include "npy.h"

namespace {

const char* USAGE =
    "usage: onebit-run MODEL INPUT.npy [--out OUT.npy] [--threads T] [--isa NAME]\n"
    "       onebit-run --info MODEL\n"
    "Runs a .onebit model on a .npy of float32/float64 inputs (points (B, N, C) or (N, C); images (B, C, H, W),\n"
    "(B, H, W) or (H, W)) and writes the outputs (logits) to OUT.npy, or prints them as JSON without --out.\n"
    "--info prints the model's interface as JSON. $ONEBIT_ISA or --isa picks avx512 / avx2 / neon / scalar.\n";

std::string jstr(const std::string& s) { return onebit::dump_json(onebit::Json::str(s)); }

std::string shape_json(const std::vector<int64_t>& s) {
    std::string o = "[";
    for (size_t k = 0; k < s.size(); ++k) o += (k ? ", " : "") + std::to_string(s[k]);
    return o + "]";
}

int info(const std::string& path) {
    auto m = onebit::Model::load(path);
    const onebit::Graph& g = m->graph();
    std::vector<int64_t> in, out;
    if (g.input_hw) in = {-1, g.input_channels, g.H, g.W};
    else in = {-1, g.points ? g.points : -1, g.input_channels};
    const onebit::Value& vo = g.values.at(g.output_name);
    if (g.output_pooled) out = {-1, vo.channels};
    else if (vo.has_hw) out = {-1, vo.H * vo.W, vo.channels};
    else if (vo.has_rows) out = {-1, vo.rows, vo.channels};
    else out = {-1, g.points ? g.points * (vo.has_mult ? vo.mult : 1) : -1, vo.channels};
    const onebit::Json* model = g.graph.find("model");
    std::printf("{\"version\": %d, \"onebit\": %s, \"file\": %s, \"file_bytes\": %llu, \"isa\": %s, \"ops\": %zu,\n"
                " \"inputs\": [{\"name\": %s, \"shape\": %s, \"dtype\": \"float32\", \"layout\": %s}],\n"
                " \"outputs\": [{\"name\": %s, \"shape\": %s, \"dtype\": \"float32\"}],\n"
                " \"model\": %s}\n",
                onebit::FORMAT_VERSION, jstr(onebit::version()).c_str(), jstr(path).c_str(),
                static_cast<unsigned long long>(g.file_bytes), jstr(m->isa_name_str()).c_str(), g.ops.size(),
                jstr(g.input_name).c_str(), shape_json(in).c_str(), g.input_hw ? "\"NCHW\"" : "\"BNC\"",
                jstr(g.output_name).c_str(), shape_json(out).c_str(), model ? onebit::dump_json(*model).c_str() : "null");
    return 0;
}

int run(const std::string& model, const std::string& input, const std::string& out, int threads, const std::string& isa) {
    auto m = onebit::Model::load(model, isa);
    npy::Array x = npy::read(input);
    const auto oshape = m->output_shape(x.shape.data(), static_cast<int>(x.shape.size()));
    size_t n = 1;
    for (int64_t d : oshape) n *= static_cast<size_t>(d);
    std::vector<float> y(n);
    m->run(x.data.data(), x.shape.data(), static_cast<int>(x.shape.size()), y.data(), threads);
    if (!out.empty()) {
        npy::write(out, oshape, y.data());
        return 0;
    }
    // no --out: JSON with the predicted class of each row and the outputs
    const size_t rows = oshape[0] * (oshape.size() == 3 ? oshape[1] : 1), cols = oshape.back();
    std::string s = "{\"shape\": " + shape_json(oshape) + ", \"argmax\": [";
    for (size_t r = 0; r < rows; ++r) {
        size_t best = 0;
        for (size_t c = 1; c < cols; ++c)
            if (y[r * cols + c] > y[r * cols + best]) best = c;
        s += (r ? ", " : "") + std::to_string(best);
    }
    s += "], \"output\": [";
    for (size_t r = 0; r < rows; ++r) {
        s += r ? ", [" : "[";
        for (size_t c = 0; c < cols; ++c) {
            char b[32];
            std::snprintf(b, sizeof b, "%s%.9g", c ? ", " : "", static_cast<double>(y[r * cols + c]));
            s += b;
        }
        s += "]";
    }
    std::printf("%s]}\n", s.c_str());
    return 0;
}

std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> pos;
    std::string out, isa;
    int threads = 1;
    bool want_info = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char* flag) -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "onebit-run: %s needs a value\n%s", flag, USAGE);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "-h" || a == "--help") {
            std::fputs(USAGE, stdout);
            return 0;
        } else if (a == "--version") {
            std::printf("onebit-run %s\n", onebit::version());
            return 0;
        } else if (a == "--info") {
            want_info = true;
        } else if (a == "--out" || a == "-o") {
            out = value("--out");
        } else if (a == "--isa") {
            isa = value("--isa");
        } else if (a == "--threads") {
            const std::string t = value("--threads");
            char* end = nullptr;
            const long v = std::strtol(t.c_str(), &end, 10);
            if (!end || *end || v < 1 || v > 1024) {
                std::fprintf(stderr, "onebit-run: --threads must be an integer in [1, 1024], got '%s'\n", t.c_str());
                return 2;
            }
            threads = static_cast<int>(v);
        } else if (a.size() > 1 && a[0] == '-') {
            std::fprintf(stderr, "onebit-run: unknown option %s\n%s", a.c_str(), USAGE);
            return 2;
        } else {
            pos.push_back(a);
        }
    }
    if ((want_info && pos.size() != 1) || (!want_info && pos.size() != 2)) {
        std::fputs(USAGE, stderr);
        return 2;
    }
    try {
        return want_info ? info(pos[0]) : run(pos[0], pos[1], out, threads, isa);
    } catch (const std::exception& e) {
        std::string msg = one_line(e.what());
        if (msg.find(pos[0]) == std::string::npos && (pos.size() < 2 || msg.find(pos[1]) == std::string::npos)) {
            const auto slash = pos[0].find_last_of('/');
            const std::string base = slash == std::string::npos ? pos[0] : pos[0].substr(slash + 1);
            if (msg.rfind(base + ":", 0) != 0) msg = pos[0] + ": " + msg;  // name the file
        }
        std::fprintf(stderr, "onebit-run: %s\n", msg.c_str());
    } catch (...) {
        std::fprintf(stderr, "onebit-run: %s: unknown error\n", pos[0].c_str());
    }
    return 1;
}
