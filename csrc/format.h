// The .onebit container (docs/format.md, "Container"): a safetensors file whose __metadata__ holds the
// magic, the version, the graph JSON and CRC-32 checksums of the graph and of the data section.
// read_container() checks everything the container defines and throws FormatError naming the file.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "json.h"

namespace onebit {

// A file that is not a valid .onebit model. The message starts with the file's path.
struct FormatError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

constexpr int FORMAT_VERSION = 1;
constexpr uint64_t MAX_HEADER = 64ull << 20;  // a larger JSON header is corrupt, not a model

enum class DType { F32, I32, I16, U8, U64, I64 };
const char* dtype_code(DType t);   // "F32", ...
const char* dtype_numpy(DType t);  // "float32", ... (NumPy's name, used in messages)
size_t dtype_size(DType t);

struct Tensor {
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    std::vector<unsigned char> data;  // little-endian, as stored
    int64_t numel() const;
    template <class T>
    const T* as() const { return reinterpret_cast<const T*>(data.data()); }
};

struct Container {
    std::string path;
    uint64_t file_bytes = 0;
    std::map<std::string, Tensor> tensors;
    std::vector<std::string> tensor_order;  // as listed in the header
    std::string graph_text;                 // the graph JSON string of the metadata
    Json graph;                             // parsed (an object)
};

uint32_t crc32(const unsigned char* p, size_t n, uint32_t crc = 0);

// Read and check a .onebit container (header length, JSON, magic, version, every tensor entry, both
// checksums); the graph is parsed but not validated (graph.h does that).
Container read_container(const std::string& path);
// The same from bytes already in memory (path only names them in messages).
Container parse_container(const std::string& path, const unsigned char* blob, size_t size);

}  // namespace onebit
