// Validation of a .onebit graph (docs/format.md, "Graph" and "Geometric ops"): every op's type, value
// references (declared, computed before use, written once), feature counts, tensors (names, dtypes,
// shapes), thresholds and flip bits in range, zero padding bits, finite scales, clamp and offset rules.
// validate_graph() throws FormatError naming the file and the op.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "format.h"
#include "json.h"

namespace onebit {

// How many rows a value has: one (pooled), an H x W map, a fixed count, or `mult` per point.
struct RowDesc {
    enum Kind { Pooled, Hw, Rows, Mult, None } kind = None;
    int64_t a = 0, b = 0;
    bool operator==(const RowDesc& o) const { return kind == o.kind && a == o.a && b == o.b; }
    bool operator!=(const RowDesc& o) const { return !(*this == o); }
    std::string repr() const;  // Python's tuple: ('mult', 1), ('hw', 5, 5), ('pooled',), None
};

struct Value {
    enum Kind { Float, Bits, Index } kind = Float;
    int64_t channels = 0;
    bool pooled = false;
    bool has_hw = false;
    int64_t H = 0, W = 0;
    bool has_rows = false, has_mult = false;
    int64_t rows = 0, mult = 1;
    RowDesc desc() const;
    int64_t nrows(int64_t n_points) const;  // rows for clouds of n_points points
};

struct Graph {
    std::string path;
    uint64_t file_bytes = 0;
    std::map<std::string, Tensor> tensors;
    std::string graph_text;
    Json graph;
    std::map<std::string, Value> values;
    std::vector<Json> ops;       // the validated ops, in order (a concat also gets "input" = its first input)
    std::string input_name, output_name;
    int input_channels = 0, output_channels = 0;
    bool input_hw = false;
    int H = 0, W = 0;            // input map size (image models)
    int64_t points = 0;          // graph.input.points (0: any point count)
    bool output_pooled = false;  // one row per cloud (pooled, or a 1x1 map)
    const Tensor& tensor(const Json& op, const char* key) const;  // a tensor the validation checked
};

Graph validate_graph(Container&& c);

}  // namespace onebit
