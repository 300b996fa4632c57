// The .onebit container reader (format.h): every check of docs/format.md's "Container" section.
#include "format.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <tuple>

namespace onebit {

const char* dtype_code(DType t) {
    switch (t) {
        case DType::F32: return "F32";
        case DType::I32: return "I32";
        case DType::I16: return "I16";
        case DType::U8: return "U8";
        case DType::U64: return "U64";
        default: return "I64";
    }
}

const char* dtype_numpy(DType t) {
    switch (t) {
        case DType::F32: return "float32";
        case DType::I32: return "int32";
        case DType::I16: return "int16";
        case DType::U8: return "uint8";
        case DType::U64: return "uint64";
        default: return "int64";
    }
}

size_t dtype_size(DType t) {
    switch (t) {
        case DType::F32: case DType::I32: return 4;
        case DType::I16: return 2;
        case DType::U8: return 1;
        default: return 8;
    }
}

int64_t Tensor::numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
}

uint32_t crc32(const unsigned char* p, size_t n, uint32_t crc) {
    static uint32_t table[256];
    static const bool init = [] {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        return true;
    }();
    (void)init;
    crc = ~crc;
    for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

namespace {

bool parse_dtype(const std::string& s, DType& t) {
    static const std::pair<const char*, DType> names[] = {{"F32", DType::F32}, {"I32", DType::I32}, {"I16", DType::I16},
                                                          {"U8", DType::U8},   {"U64", DType::U64}, {"I64", DType::I64}};
    for (const auto& n : names)
        if (s == n.first) {
            t = n.second;
            return true;
        }
    return false;
}

std::string shape_repr(const Json& v) { return repr(v); }

}  // namespace

Container read_container(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw FormatError(path + ": cannot read: " + std::strerror(errno));
    std::vector<unsigned char> blob;
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) blob.insert(blob.end(), buf, buf + got);
    const bool err = std::ferror(f);
    const int e = errno;
    std::fclose(f);
    if (err) throw FormatError(path + ": cannot read: " + std::strerror(e ? e : EIO));
    return parse_container(path, blob.data(), blob.size());
}

Container parse_container(const std::string& path, const unsigned char* blob, size_t size) {
    auto bad = [&](const std::string& msg) { return FormatError(path + ": " + msg); };
    if (size < 8)
        throw bad("file is " + std::to_string(size) + " bytes, too short for a .onebit header (truncated?)");
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; --k) hlen = (hlen << 8) | blob[k];
    if (hlen > MAX_HEADER || hlen > size - 8)
        throw bad("header length " + std::to_string(hlen) + " does not fit in a " + std::to_string(size) +
                  "-byte file (truncated or not a .onebit file)");
    Json header;
    try {
        header = parse_json(reinterpret_cast<const char*>(blob + 8), static_cast<size_t>(hlen));
    } catch (const JsonError& ex) {
        throw bad(std::string("header is not valid JSON (") + ex.what() + "); the file is corrupted");
    }
    if (!header.is_object()) throw bad("header is not a JSON object");
    const Json* metap = header.find("__metadata__");
    Json meta = metap ? *metap : Json();
    header.erase("__metadata__");
    const Json* fmt = meta.find("format");
    if (!meta.is_object() || !fmt || !fmt->is_str() || fmt->s != "onebit")
        throw bad("not a .onebit file (safetensors metadata lacks format='onebit')");
    const Json* ver = meta.find("version");
    if (!ver || !ver->is_str() || ver->s != std::to_string(FORMAT_VERSION))
        throw bad("format version " + (ver ? repr(*ver) : std::string("None")) +
                  " is not supported (this onebit reads " + std::to_string(FORMAT_VERSION) + ")");
    const Json* graph = meta.find("graph");
    if (!graph || !graph->is_str()) throw bad("metadata has no graph");
    const Json* gcrc = meta.find("graph_crc32");
    const std::string& gtext = graph->s;
    if (!gcrc || !gcrc->is_str() ||
        gcrc->s != std::to_string(crc32(reinterpret_cast<const unsigned char*>(gtext.data()), gtext.size())))
        throw bad("graph checksum mismatch: the graph JSON is corrupted");
    const unsigned char* data = blob + 8 + hlen;
    const size_t dlen = size - 8 - static_cast<size_t>(hlen);
    const Json* dcrc = meta.find("data_crc32");
    if (!dcrc || !dcrc->is_str() || dcrc->s != std::to_string(crc32(data, dlen)))
        throw bad("data checksum mismatch: tensor data is truncated or corrupted");
    Container c;
    c.path = path;
    c.file_bytes = size;
    try {
        c.graph = parse_json(gtext.data(), gtext.size());
    } catch (const JsonError&) {
        throw bad("graph is not valid JSON");
    }
    if (!c.graph.is_object()) throw bad("graph is not a JSON object");
    c.graph_text = gtext;

    std::vector<std::tuple<uint64_t, uint64_t, std::string>> spans;
    for (const auto& kv : header.o) {
        const std::string& name = kv.first;
        const Json& e = kv.second;
        if (!e.is_object() || e.o.size() != 3 || !e.has("dtype") || !e.has("shape") || !e.has("data_offsets"))
            throw bad("tensor " + repr_str(name) + ": malformed entry");
        const Json& jd = *e.find("dtype");
        DType dt;
        if (!jd.is_str() || !parse_dtype(jd.s, dt)) throw bad("tensor " + repr_str(name) + ": unsupported dtype " + repr(jd));
        const Json& shape = *e.find("shape");
        const Json& offs = *e.find("data_offsets");
        bool ok = shape.is_array();
        if (ok)
            for (const Json& s : shape.a) ok = ok && s.is_int() && !s.big && s.i >= 0 && s.i < (int64_t(1) << 31);
        if (!ok) throw bad("tensor " + repr_str(name) + ": bad shape " + shape_repr(shape));
        if (!(offs.is_array() && offs.a.size() == 2 && offs.a[0].is_int() && offs.a[1].is_int()))
            throw bad("tensor " + repr_str(name) + ": bad data_offsets " + repr(offs));
        const Json& jb = offs.a[0];
        const Json& je = offs.a[1];
        // bytes = prod(shape) * itemsize, in 128 bits (a hostile shape cannot overflow)
        unsigned __int128 nbytes = dtype_size(dt);
        bool huge = false;
        for (const Json& s : shape.a) {
            nbytes *= static_cast<unsigned __int128>(s.i);
            if (nbytes > (static_cast<unsigned __int128>(1) << 80)) huge = true, nbytes = static_cast<unsigned __int128>(1) << 80;
        }
        const bool in_range = !jb.big && !je.big && jb.i >= 0 && jb.i <= je.i && static_cast<uint64_t>(je.i) <= dlen;
        if (!in_range || huge || static_cast<unsigned __int128>(je.i - jb.i) != nbytes) {
            std::string nb;
            if (huge) nb = "a huge number of";
            else {
                unsigned __int128 v = nbytes;
                do {
                    nb.insert(nb.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
                    v /= 10;
                } while (v);
            }
            throw bad("tensor " + repr_str(name) + ": offsets " + repr(offs) + " do not match shape " + repr(shape) +
                      " (" + nb + " bytes) in " + std::to_string(dlen) + " bytes of data");
        }
        spans.emplace_back(static_cast<uint64_t>(jb.i), static_cast<uint64_t>(je.i), name);
        Tensor t;
        t.dtype = dt;
        for (const Json& s : shape.a) t.shape.push_back(s.i);
        t.data.assign(data + jb.i, data + je.i);
        c.tensors[name] = std::move(t);
        c.tensor_order.push_back(name);
    }
    std::sort(spans.begin(), spans.end());
    uint64_t pos = 0;
    for (const auto& sp : spans) {
        if (std::get<0>(sp) != pos)
            throw bad("tensor " + repr_str(std::get<2>(sp)) + ": data overlaps or leaves a gap at byte " + std::to_string(pos));
        pos = std::get<1>(sp);
    }
    if (pos != dlen) throw bad(std::to_string(dlen - pos) + " trailing bytes after the last tensor");
    return c;
}

}  // namespace onebit
