// A loaded model: the validated file (format.h, graph.h), the kernel path, and one engine per point count
// it has seen (plan.h, engine.h). Everything the C API, the CLI and the Python binding do goes through here.
//
// Errors: FormatError (a bad file, the message starts with its path); std::invalid_argument (a bad input,
// ISA name or a rule without a value for this point count; the message names the file).
// run() may be called from several threads at once on one Model.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine.h"
#include "format.h"
#include "graph.h"

namespace onebit {

const char* version();

// The kernel path for a name ("" = $ONEBIT_ISA, else the best this CPU supports); throws std::invalid_argument.
int resolve_isa(const std::string& name);

class Model {
   public:
    static std::unique_ptr<Model> load(const std::string& path, const std::string& isa = "");

    const Graph& graph() const { return g_; }
    int isa() const { return isa_; }
    const char* isa_name_str() const { return isa_name(isa_); }
    const std::string& path() const { return g_.path; }

    // The input's (B, N, C) after the shape rules of docs/format.md: points (B, N, C) or (N, C); images
    // (B, C, H, W), or (B, H, W) / (H, W) with one channel. Throws std::invalid_argument naming the file.
    void input_dims(const int64_t* shape, int ndim, int& B, int& N) const;
    // The shape run() returns for an input shape: (B, classes) for a pooled output, else (B, rows, C).
    std::vector<int64_t> output_shape(const int64_t* shape, int ndim) const;
    // out must hold the product of output_shape() floats.
    void run(const float* x, const int64_t* shape, int ndim, float* out, int threads,
             std::vector<DebugCloud>* dbg = nullptr, std::vector<double>* prof = nullptr);
    std::vector<std::string> op_names() const;

    std::shared_ptr<const Engine> engine_for(int64_t n_points);

   private:
    Graph g_;
    int isa_ = 0;
    std::mutex mu_;
    std::map<int64_t, std::shared_ptr<const Engine>> engines_;
    std::string base_;  // the file name, for input messages
};

}  // namespace onebit
