// Minimal .npy reading (float32 / float64, C order, little-endian) and writing (float32), for onebit-run.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace npy {

struct Array {
    std::vector<int64_t> shape;
    std::vector<float> data;
};

inline std::runtime_error err(const std::string& path, const std::string& msg) { return std::runtime_error(path + ": " + msg); }

inline Array read(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw err(path, std::string("cannot read: ") + std::strerror(errno));
    std::vector<unsigned char> blob;
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) blob.insert(blob.end(), buf, buf + got);
    std::fclose(f);
    if (blob.size() < 10 || std::memcmp(blob.data(), "\x93NUMPY", 6) != 0) throw err(path, "not a .npy file");
    const int major = blob[6];
    size_t hlen, off;
    if (major == 1) {
        hlen = blob[8] | (blob[9] << 8);
        off = 10;
    } else if (major == 2 || major == 3) {
        if (blob.size() < 12) throw err(path, "truncated .npy header");
        hlen = blob[8] | (blob[9] << 8) | (static_cast<size_t>(blob[10]) << 16) | (static_cast<size_t>(blob[11]) << 24);
        off = 12;
    } else {
        throw err(path, "unsupported .npy version " + std::to_string(major));
    }
    if (hlen > blob.size() - off) throw err(path, "truncated .npy header");
    const std::string h(reinterpret_cast<const char*>(blob.data() + off), hlen);
    auto field = [&](const char* key) {
        const size_t p = h.find(std::string("'") + key + "'");
        if (p == std::string::npos) throw err(path, std::string(".npy header has no '") + key + "'");
        size_t q = h.find(':', p);
        if (q == std::string::npos) throw err(path, "bad .npy header");
        ++q;
        while (q < h.size() && h[q] == ' ') ++q;
        return q;
    };
    size_t q = field("descr");
    const size_t qe = h.find('\'', q + 1);
    if (q >= h.size() || h[q] != '\'' || qe == std::string::npos) throw err(path, "bad .npy descr");
    const std::string descr = h.substr(q + 1, qe - q - 1);
    int item;
    if (descr == "<f4" || descr == "=f4") item = 4;
    else if (descr == "<f8" || descr == "=f8") item = 8;
    else throw err(path, "dtype " + descr + " is not supported (float32 or float64, little-endian)");
    q = field("fortran_order");
    if (h.compare(q, 5, "False") != 0) throw err(path, "Fortran-ordered arrays are not supported (save in C order)");
    q = field("shape");
    if (q >= h.size() || h[q] != '(') throw err(path, "bad .npy shape");
    const size_t qs = h.find(')', q);
    if (qs == std::string::npos) throw err(path, "bad .npy shape");
    Array a;
    const std::string dims = h.substr(q + 1, qs - q - 1);
    size_t pos = 0;
    unsigned __int128 total = 1;
    while (pos < dims.size()) {
        while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
        if (pos >= dims.size()) break;
        size_t end = pos;
        while (end < dims.size() && dims[end] >= '0' && dims[end] <= '9') ++end;
        if (end == pos || end - pos > 12) throw err(path, "bad .npy shape");
        const int64_t d = std::stoll(dims.substr(pos, end - pos));
        a.shape.push_back(d);
        total *= static_cast<unsigned __int128>(d);
        if (total > (static_cast<unsigned __int128>(1) << 40)) throw err(path, "array too large");
        pos = end;
    }
    if (a.shape.size() > 8) throw err(path, "too many dimensions");
    const size_t n = static_cast<size_t>(total);
    const size_t data_off = off + hlen;
    if (blob.size() - data_off != n * item)
        throw err(path, "data is " + std::to_string(blob.size() - data_off) + " bytes, the header says " +
                            std::to_string(n * item) + " (truncated?)");
    a.data.resize(n);
    if (item == 4) {
        std::memcpy(a.data.data(), blob.data() + data_off, n * 4);
    } else {
        for (size_t i = 0; i < n; ++i) {
            double d;
            std::memcpy(&d, blob.data() + data_off + 8 * i, 8);
            a.data[i] = static_cast<float>(d);
        }
    }
    return a;
}

inline void write(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
    std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
    size_t n = 1;
    for (size_t k = 0; k < shape.size(); ++k) {
        h += std::to_string(shape[k]) + (shape.size() == 1 || k + 1 < shape.size() ? "," : "");
        if (k + 1 < shape.size()) h += " ";
        n *= static_cast<size_t>(shape[k]);
    }
    h += "), }";
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw err(path, std::string("cannot write: ") + std::strerror(errno));
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(h.size() & 0xFF),
                                   static_cast<unsigned char>(h.size() >> 8)};
    bool ok = std::fwrite(pre, 1, 10, f) == 10 && std::fwrite(h.data(), 1, h.size(), f) == h.size() &&
              std::fwrite(data, sizeof(float), n, f) == n;
    ok = std::fclose(f) == 0 && ok;
    if (!ok) throw err(path, "cannot write");
}

}  // namespace npy
