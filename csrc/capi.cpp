// The C API (include/onebit.h): a thin wall around Model; no exception crosses it.
#include "onebit.h"

#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "model.h"

struct onebit_model {
    std::unique_ptr<onebit::Model> m;
};

namespace {
void set_err(char* err, size_t len, const char* msg) {
    if (!err || !len) return;
    std::strncpy(err, msg, len - 1);
    err[len - 1] = '\0';
    for (size_t k = 0; err[k]; ++k)  // one line
        if (err[k] == '\n' || err[k] == '\r') err[k] = ' ';
}
}  // namespace

extern "C" {

onebit_model* onebit_load(const char* path, char* err, size_t err_len) {
    if (err && err_len) err[0] = '\0';
    if (!path) {
        set_err(err, err_len, "onebit_load: path is NULL");
        return nullptr;
    }
    try {
        auto* h = new onebit_model;
        try {
            h->m = onebit::Model::load(path);
        } catch (...) {
            delete h;
            throw;
        }
        return h;
    } catch (const std::exception& e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "onebit_load: unknown error");
    }
    return nullptr;
}

int64_t onebit_output_size(const onebit_model* m, const int64_t* shape, int ndim) {
    if (!m) return -1;
    try {
        int64_t n = 1;
        for (int64_t d : m->m->output_shape(shape, ndim)) n *= d;
        return n;
    } catch (...) {
        return -1;
    }
}

int onebit_run(onebit_model* m, const float* input, const int64_t* shape, int ndim, float* out, int64_t out_len,
               int threads, char* err, size_t err_len) {
    if (err && err_len) err[0] = '\0';
    if (!m || !out) {
        set_err(err, err_len, "onebit_run: model or output is NULL");
        return -1;
    }
    try {
        int64_t need = 1;
        for (int64_t d : m->m->output_shape(shape, ndim)) need *= d;
        if (need > out_len) {
            set_err(err, err_len, (m->m->path() + ": output needs " + std::to_string(need) + " floats, got room for " +
                                   std::to_string(out_len)).c_str());
            return -1;
        }
        int64_t in = 1;
        for (int k = 0; k < ndim; ++k) in *= shape[k];
        if (in > 0 && !input) {
            set_err(err, err_len, "onebit_run: input is NULL");
            return -1;
        }
        m->m->run(input, shape, ndim, out, threads);
        return 0;
    } catch (const std::exception& e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "onebit_run: unknown error");
    }
    return -1;
}

const char* onebit_isa(const onebit_model* m) { return m ? m->m->isa_name_str() : "scalar"; }

void onebit_free(onebit_model* m) { delete m; }

const char* onebit_version(void) { return onebit::version(); }

}  // extern "C"
