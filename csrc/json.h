// A small strict JSON reader for the .onebit header and graph (RFC 8259; no NaN / Infinity literals),
// with Python-like semantics where the loader's checks and messages need them: integers and floats are
// distinct types (a JSON number without '.', 'e' or 'E' is an integer), booleans are neither, objects keep
// their key order and a repeated key keeps its first position with its last value (as Python's json
// module), and repr() prints a value as Python's repr() would (error messages quote the file's values).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace onebit {

struct JsonError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Json {
    enum Type { Null, Bool, Int, Float, String, Array, Object };
    Type type = Null;
    bool b = false;
    int64_t i = 0;       // Int (saturated when the literal does not fit in 64 bits: then big is set)
    bool big = false;
    double f = 0.0;      // Float
    std::string s;       // String (UTF-8)
    std::vector<Json> a; // Array
    std::vector<std::pair<std::string, Json>> o;  // Object, in key order

    bool is_null() const { return type == Null; }
    bool is_bool() const { return type == Bool; }
    bool is_int() const { return type == Int; }            // Python: type(v) is int
    bool is_number() const { return type == Int || type == Float; }  // int | float, not bool
    bool is_str() const { return type == String; }
    bool is_array() const { return type == Array; }
    bool is_object() const { return type == Object; }
    double num() const { return type == Int ? static_cast<double>(i) : type == Float ? f : type == Bool ? (b ? 1.0 : 0.0) : 0.0; }

    // Object members: nullptr when absent (a JSON null member is present and is_null()).
    const Json* find(const std::string& key) const;
    bool has(const std::string& key) const { return find(key) != nullptr; }
    // Python's dict.get(key) is None: absent or null
    const Json* get(const std::string& key) const {
        const Json* v = find(key);
        return v && !v->is_null() ? v : nullptr;
    }
    void set(const std::string& key, Json v);
    void erase(const std::string& key);

    static Json str(std::string v) {
        Json j;
        j.type = String;
        j.s = std::move(v);
        return j;
    }
    static Json integer(int64_t v) {
        Json j;
        j.type = Int;
        j.i = v;
        return j;
    }
};

// Parse exactly one JSON value (surrounding whitespace allowed); throws JsonError. Nesting deeper than
// max_depth is an error (a corrupt file must not exhaust the stack). The text must be valid UTF-8.
Json parse_json(const char* text, size_t len, int max_depth = 256);

// Python's repr() of the value (for messages): 'str', 3, 1.5, True, None, [1, 2], {'k': v}.
std::string repr(const Json& v);
std::string repr_str(const std::string& s);
// Python's repr() of a float (shortest round trip: 0.1, 1e-05, 1e+16, inf, nan).
std::string repr_double(double d);

// Python's == between two JSON values (1 == 1.0 == True; dicts compare as unordered maps).
bool py_equal(const Json& x, const Json& y);

// Compact JSON text of a value (sorted keys are not forced: object order is kept).
std::string dump_json(const Json& v);

}  // namespace onebit
