// Graph validation (graph.h): the checks of docs/format.md, with messages naming the file and the op.
#include "graph.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

namespace onebit {

std::string RowDesc::repr() const {
    switch (kind) {
        case Pooled: return "('pooled',)";
        case Hw: return "('hw', " + std::to_string(a) + ", " + std::to_string(b) + ")";
        case Rows: return "('rows', " + std::to_string(a) + ")";
        case Mult: return "('mult', " + std::to_string(a) + ")";
        default: return "None";
    }
}

RowDesc Value::desc() const {
    RowDesc d;
    if (pooled) d.kind = RowDesc::Pooled;
    else if (has_hw) d.kind = RowDesc::Hw, d.a = H, d.b = W;
    else if (has_rows) d.kind = RowDesc::Rows, d.a = rows;
    else d.kind = RowDesc::Mult, d.a = has_mult ? mult : 1;
    return d;
}

int64_t Value::nrows(int64_t n_points) const {
    const RowDesc d = desc();
    switch (d.kind) {
        case RowDesc::Pooled: return 1;
        case RowDesc::Hw: return d.a * d.b;
        case RowDesc::Rows: return d.a;
        default: return n_points * d.a;
    }
}

const Tensor& Graph::tensor(const Json& op, const char* key) const { return tensors.at(op.find(key)->s); }

namespace {

const char* OP_TYPES[] = {"linear", "sign", "bmm", "im2col", "maxpool", "add", "avgpool", "affine",
                          "knn", "fps", "ball_query", "gather", "edge", "group", "pool", "concat"};
const char* OP_TYPES_REPR =
    "['linear', 'sign', 'bmm', 'im2col', 'maxpool', 'add', 'avgpool', 'affine', 'knn', 'fps', 'ball_query', "
    "'gather', 'edge', 'group', 'pool', 'concat']";
bool is_geo(const std::string& t) {
    return t == "knn" || t == "fps" || t == "ball_query" || t == "gather" || t == "edge" || t == "group" ||
           t == "pool" || t == "concat";
}

// _times: rows of a value with k rows per row of desc (None where that is not a point / group row set)
RowDesc times(const RowDesc& d, int64_t k) {
    RowDesc r;
    if (d.kind != RowDesc::Rows && d.kind != RowDesc::Mult) return r;
    const __int128 v = static_cast<__int128>(d.a) * k;
    r.kind = d.kind;
    r.a = v > (static_cast<__int128>(1) << 62) ? (int64_t(1) << 62) + 1 : static_cast<int64_t>(v);  // no real value is that large
    return r;
}

bool is_str_in(const Json* v, std::initializer_list<const char*> names) {
    if (!v || !v->is_str()) return false;
    for (const char* n : names)
        if (v->s == n) return true;
    return false;
}

bool pos_int(const Json* v, int64_t lo = 1) { return v && v->is_int() && v->i >= lo; }

// Python's `x in (int | float) and not bool and math.isfinite(x)` (big ints are out of float range)
bool finite_number(const Json* v) { return v && v->is_number() && !v->big && std::isfinite(v->num()); }

std::string opt_repr(const Json* v) { return v ? repr(*v) : "None"; }

struct Checker {
    Graph& g;
    std::map<std::string, RowDesc> space;  // index value -> the row space it points into

    FormatError bad(const std::string& msg) const { return FormatError(g.path + ": " + msg); }
    static std::string nm(const Json& op) { return repr_str(op.find("name")->s); }
    FormatError geo_bad(const Json& op, const std::string& msg) const {
        return bad("op " + nm(op) + " (" + op.find("op")->s + "): " + msg);
    }

    const Value& val(const Json& op, const char* key) const { return g.values.at(op.find(key)->s); }

    // _tensor: op[key] names a tensor of this dtype and shape
    const Tensor& tensor(const Json& op, const char* key, DType dt, std::vector<int64_t> shape) const {
        const Json* name = op.find(key);
        const Json* opname = op.find("name");
        const std::string on = opt_repr(opname);
        if (!name || !name->is_str() || !g.tensors.count(name->s))
            throw bad("op " + on + ": tensor " + key + "=" + opt_repr(name) + " is missing");
        const Tensor& t = g.tensors.at(name->s);
        if (t.dtype != dt || t.shape != shape) {
            auto lst = [](const std::vector<int64_t>& s) {
                std::string o = "[";
                for (size_t k = 0; k < s.size(); ++k) o += (k ? ", " : "") + std::to_string(s[k]);
                return o + "]";
            };
            throw bad("op " + on + ": tensor " + repr_str(name->s) + " is " + dtype_numpy(t.dtype) + lst(t.shape) +
                      ", expected " + dtype_numpy(dt) + lst(shape));
        }
        return t;
    }

    void check_finite(const Json& op, const Tensor& t, const char* key) const {
        const float* p = t.as<float>();
        for (int64_t k = 0; k < t.numel(); ++k)
            if (!std::isfinite(p[k])) throw bad("op " + nm(op) + ": tensor " + key + " has non-finite values");
    }

    void check_clamp(const Json& op) const {
        const Json* c = op.find("clamp");
        bool ok = !c || (c->is_array() && c->a.size() == 2);
        if (c && ok)
            for (const Json& e : c->a) ok = ok && (e.is_null() || finite_number(&e));
        if (!ok) throw bad("op " + nm(op) + ": clamp must be [lo|null, hi|null]");
    }

    // the offset rule; `avg_pool`: an EMA offset is refused (the pool op's mean)
    bool offset_ok(const Json& op, bool avg_pool) const {
        const Json* off = op.find("offset");
        if (!off) return true;  // {"rule": "none"}
        const Json* rule = off->is_object() ? off->find("rule") : nullptr;
        if (!is_str_in(rule, {"none", "const", "ema"})) return false;
        if (rule->s == "const") {
            const Json* v = off->find("value");
            // Python: isinstance(value, int | float) (a bool is an int there) and math.isfinite(value)
            if (!v || !(v->is_number() || v->is_bool()) || v->big || !std::isfinite(v->num())) return false;
        }
        if (rule->s == "ema" && (!is_str_in(off->find("offsets"), {"closed", "official"}) || avg_pool)) return false;
        return true;
    }

    // ------------------------------------------------------------------ values
    void check_value(const std::string& name, const Json& v) {
        const Json* kind = v.is_object() ? v.find("kind") : nullptr;
        const Json* ch = v.is_object() ? v.find("channels") : nullptr;
        const Json* pooled = v.is_object() ? v.find("pooled") : nullptr;
        if (!v.is_object() || !is_str_in(kind, {"float", "bits", "index"}) || !ch || !ch->is_int() || ch->i < 1 ||
            ch->i > (1 << 24) || !pooled || !pooled->is_bool())
            throw bad("value " + repr_str(name) + ": needs kind (float/bits/index), channels (int) and pooled (bool)");
        Value out;
        out.kind = kind->s == "float" ? Value::Float : kind->s == "bits" ? Value::Bits : Value::Index;
        out.channels = ch->i;
        out.pooled = pooled->b;
        // _check_value_rows
        const Json* rows = v.find("rows");
        const Json* mult = v.find("mult");
        const Json* hw = v.get("hw");
        if (rows && !(pos_int(rows) && rows->i <= (1 << 26)))
            throw bad("value " + repr_str(name) + ": rows must be a positive integer");
        if (mult && !(pos_int(mult) && mult->i <= (1 << 16)))
            throw bad("value " + repr_str(name) + ": mult must be a positive integer");
        if ((rows || mult) && (out.pooled || hw || (rows && mult)))
            throw bad("value " + repr_str(name) + ": rows / mult exclude each other, pooled and hw");
        if (out.kind == Value::Index && (out.pooled || hw))
            throw bad("value " + repr_str(name) + ": an index value has point or group rows");
        if (hw) {
            bool ok = hw->is_array() && hw->a.size() == 2 && !out.pooled;
            if (ok)
                for (const Json& d : hw->a) ok = ok && d.is_int() && d.i >= 1 && d.i <= (1 << 13);
            if (!ok) throw bad("value " + repr_str(name) + ": hw must be [H, W] (a spatial map, not pooled)");
            out.has_hw = true;
            out.H = hw->a[0].i;
            out.W = hw->a[1].i;
        }
        if (rows) out.has_rows = true, out.rows = rows->i;
        if (mult) out.has_mult = true, out.mult = mult->i;
        g.values[name] = out;
    }

    // ------------------------------------------------------------------ plain ops
    // (kh, kw, sh, sw, ph, pw, Ho, Wo) of an im2col / maxpool op, checked against its values
    std::vector<int64_t> window(const Json& op, const Value& vi, const Value& vo) const {
        auto pair = [&](const char* key, int64_t lo) {
            const Json* v = op.find(key);
            Json dflt;
            if (!v && std::string(key) == "padding") {
                dflt.type = Json::Array;
                dflt.a = {Json::integer(0), Json::integer(0)};
                v = &dflt;
            }
            bool ok = v && v->is_array() && v->a.size() == 2;
            if (ok)
                for (const Json& d : v->a) ok = ok && d.is_int() && d.i >= lo && d.i <= (int64_t(1) << 30);
            if (!ok) throw bad("op " + nm(op) + ": " + key + " must be two integers >= " + std::to_string(lo));
            return std::make_pair(v->a[0].i, v->a[1].i);
        };
        const auto [kh, kw] = pair("kernel", 1);
        const auto [sh, sw] = pair("stride", 1);
        const auto [ph, pw] = pair("padding", 0);
        if (!vi.has_hw || !vo.has_hw) throw bad("op " + nm(op) + ": input and output must be [H, W] maps");
        const int64_t h = vi.H, w = vi.W;
        if (ph >= kh || pw >= kw || h + 2 * ph < kh || w + 2 * pw < kw)
            throw bad("op " + nm(op) + ": window " + std::to_string(kh) + "x" + std::to_string(kw) + " (padding " +
                      std::to_string(ph) + "," + std::to_string(pw) + ") does not fit the " + std::to_string(h) + "x" +
                      std::to_string(w) + " map");
        const int64_t ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1;
        if (vo.H != ho || vo.W != wo)
            throw bad("op " + nm(op) + ": output map must be [" + std::to_string(ho) + ", " + std::to_string(wo) +
                      "], got [" + std::to_string(vo.H) + ", " + std::to_string(vo.W) + "]");
        return {kh, kw, sh, sw, ph, pw, ho, wo};
    }

    static const char* kind_name(const Value& v) { return v.kind == Value::Float ? "float" : v.kind == Value::Bits ? "bits" : "index"; }
    static std::string hw_repr(const Value& v) {
        return v.has_hw ? "[" + std::to_string(v.H) + ", " + std::to_string(v.W) + "]" : "None";
    }
    static bool same_hw(const Value& a, const Value& b) { return a.has_hw == b.has_hw && a.H == b.H && a.W == b.W; }

    void check_im2col(const Json& op, const Value& vi, const Value& vo) {
        const auto win = window(op, vi, vo);
        const int64_t c = vi.channels;
        const int64_t width = win[0] * win[1] * (vi.kind == Value::Bits ? 64 * ((c + 63) / 64) : c);
        if (vi.kind != vo.kind || vo.channels != width)
            throw bad("op " + nm(op) + ": im2col of a " + kind_name(vi) + " map with " + std::to_string(c) + " channels gives " +
                      kind_name(vi) + " rows of " + std::to_string(width));
        const Json* pv = op.find("pad_value");
        const bool ok = !pv || (finite_number(pv) && (vi.kind != Value::Bits || pv->num() == 1.0 || pv->num() == -1.0));
        if (!ok) throw bad("op " + nm(op) + ": bad pad_value " + repr(*pv) + " (bits: +1 or -1)");
    }

    void check_maxpool(const Json& op, const Value& vi, const Value& vo) {
        const auto win = window(op, vi, vo);
        if ((win[4] != 0 || win[5] != 0) && vi.kind == Value::Bits)
            throw bad("op " + nm(op) + ": bit max pool without padding only");
        const int64_t c = vi.channels;
        if (vi.kind != vo.kind || vo.channels != c)
            throw bad("op " + nm(op) + ": maxpool maps a map to one of the same kind and channels");
        if (vi.kind == Value::Float) {
            if (op.has("invert")) throw bad("op " + nm(op) + ": invert applies to bit pooling only");
            return;
        }
        const Tensor& inv = tensor(op, "invert", DType::U8, {(c + 7) / 8});
        if (c % 8 && (inv.as<uint8_t>()[inv.numel() - 1] >> (c % 8)))
            throw bad("op " + nm(op) + ": invert padding bits are not zero");
    }

    void check_sign(const Json& op, const Value& vi, const Value& vo) {
        if (vi.kind != Value::Float || vo.kind != Value::Bits || vi.channels != vo.channels || vi.pooled != vo.pooled ||
            !same_hw(vi, vo))
            throw bad("op " + nm(op) + ": sign maps a float value to bits of the same shape");
        if (op.has("scale") != op.has("bias")) throw bad("op " + nm(op) + ": an affine sign needs both scale and bias");
        for (const char* key : {"scale", "bias"})
            if (op.has(key)) check_finite(op, tensor(op, key, DType::F32, {vi.channels}), key);
    }

    void check_add(const Json& op, const Value& vi, const Value& vo) {
        const Value& v1 = val(op, "other");
        if (!(vi.kind == Value::Float && v1.kind == Value::Float && vo.kind == Value::Float) ||
            !(vi.channels == v1.channels && v1.channels == vo.channels) || !same_hw(vi, v1) || !same_hw(vi, vo) ||
            !(vi.pooled == v1.pooled && v1.pooled == vo.pooled))
            throw bad("op " + nm(op) + ": add needs two float values of the output's shape");
        check_clamp(op);
    }

    void check_affine(const Json& op, const Value& vi, const Value& vo) {
        if (vi.kind != Value::Float || vo.kind != Value::Float || vi.channels != vo.channels || vi.pooled != vo.pooled ||
            !same_hw(vi, vo))
            throw bad("op " + nm(op) + ": affine maps a float value to one of the same shape");
        for (const char* key : {"scale", "bias"}) check_finite(op, tensor(op, key, DType::F32, {vi.channels}), key);
    }

    void check_avgpool(const Json& op, const Value& vi, const Value& vo) {
        if (vi.kind != Value::Float || vo.kind != Value::Float || vi.channels != vo.channels || vi.pooled || !vo.pooled ||
            vo.has_hw)
            throw bad("op " + nm(op) + ": avgpool maps a float map to one pooled float row");
    }

    void check_bmm(const Json& op, const Value& vi, const Value& vo) {
        const Value& vm = val(op, "matrix");
        const int64_t k = vi.channels;
        if (vi.kind != Value::Float || vm.kind != Value::Float || vo.kind != Value::Float || vm.channels != k * k ||
            !vm.pooled || vo.channels != k || vo.pooled != vi.pooled)
            throw bad("op " + nm(op) + ": bmm needs float (rows, k) x pooled (k*k) -> (rows, k)");
    }

    // in_features that count: conv rows (tap_channels C) count taps·C without each tap's word padding
    int64_t valid_features(const Json& op) const {
        const int64_t k = op.find("in_features")->i;
        const Json* tc = op.get("tap_channels");
        if (!tc) return k;
        const int64_t tw = tc->is_int() && tc->i >= 1 && tc->i <= k ? 64 * ((tc->i + 63) / 64) : 0;
        const Json* wf = op.find("weight_format");
        if (!tw || !is_str_in(wf, {"bits"}) || k % tw)
            throw bad("op " + nm(op) + ": tap_channels " + repr(*tc) + " does not divide in_features " + std::to_string(k) +
                      " in 64-bit taps");
        return k / tw * tc->i;
    }

    static DType bound_dtype(int64_t k) { return k + 1 <= 255 ? DType::U8 : k + 1 <= 32767 ? DType::I16 : DType::I32; }

    void check_linear(const Json& op, const Value& vi, const Value& vo) {
        const std::string name = nm(op);
        const Json* jk = op.find("in_features");
        const Json* jn = op.find("out_features");
        if (!jk || !jn || !jk->is_int() || !jn->is_int() || jk->i != vi.channels || jn->i != vo.channels || jk->i < 1 || jn->i < 1)
            throw bad("op " + name + ": in/out_features do not match its values");
        const int64_t k = jk->i, n = jn->i;
        const Json* prod = op.find("product");
        const Json* poolj = op.find("pool");
        Json none = Json::str("none");
        if (!poolj) poolj = &none;
        if (!is_str_in(prod, {"float", "xnor", "and"}) || !is_str_in(poolj, {"none", "max", "avg", "or"}))
            throw bad("op " + name + ": product must be one of ['float', 'xnor', 'and'], pool one of ['none', 'max', 'avg', 'or']");
        const std::string& pr = prod->s;
        const std::string& pool = poolj->s;
        const Json* xs = op.get("input_scale");
        if (xs) {
            if (!is_str_in(xs, {"mean_abs"}))
                throw bad("op " + name + ": input_scale must be one of ['mean_abs'], got " + repr(*xs));
            if (op.has("scale_input")) {
                const Value& vk = val(op, "scale_input");
                if (vi.kind != Value::Bits || vk.kind != Value::Float || vk.desc() != vi.desc() || !same_hw(vk, vi) ||
                    vk.pooled != vi.pooled || op.has("group"))
                    throw bad("op " + name + ": scale_input must be a float value with the rows of its bit input (no group)");
            } else if (vi.kind != Value::Float || op.has("tap_channels")) {
                throw bad("op " + name + ": input_scale " + repr(*xs) + " without scale_input reads a float value (no tap_channels)");
            }
            if ((pr != "xnor" && pr != "and") || vo.kind != Value::Float || op.has("bound"))
                throw bad("op " + name + ": input_scale " + repr(*xs) + " needs an xnor or and product with a float output (no bound)");
        } else if (op.has("scale_input")) {
            throw bad("op " + name + ": scale_input without input_scale");
        } else if ((pr == "float") != (vi.kind == Value::Float)) {
            throw bad("op " + name + ": a " + pr + " product cannot read a " + kind_name(vi) + " value");
        }
        if (vo.pooled != (vi.pooled || (pool != "none" && !op.has("group"))))
            throw bad("op " + name + ": output pooled flag does not match pool=" + repr_str(pool));
        if (op.has("group")) {
            if (pool == "none") throw geo_bad(op, "group needs a pool (max, avg or or)");
            group_rows(op, op.find("group"), vi, vo);
        } else if (!vo.pooled && !same_hw(vi, vo)) {
            throw bad("op " + name + ": output map " + hw_repr(vo) + " differs from the input's " + hw_repr(vi));
        } else if (!vo.pooled && vi.desc() != vo.desc()) {
            throw bad("op " + name + ": output rows " + vo.desc().repr() + " differ from the input's " + vi.desc().repr());
        }
        const int64_t kv = valid_features(op);
        if ((pool == "or") != (vo.kind == Value::Bits && pool != "none") ||
            ((pool == "max" || pool == "avg") && vo.kind != Value::Float))
            throw bad("op " + name + ": pool=" + repr_str(pool) + " does not match output kind " + repr_str(kind_name(vo)));
        const int64_t w = (k + 63) / 64;
        const Json* fmt = op.find("weight_format");
        if (is_str_in(fmt, {"f32"})) {
            if (pr != "float") throw bad("op " + name + ": float weights need product 'float'");
            tensor(op, "weight", DType::F32, {n, k});
        } else if (is_str_in(fmt, {"bits"})) {
            const Tensor& bits = tensor(op, "weight", DType::U64, {n, w});
            const uint64_t* b = bits.as<uint64_t>();
            if (k % 64)
                for (int64_t r = 0; r < n; ++r)
                    if (b[r * w + w - 1] >> (k % 64)) throw bad("op " + name + ": weight padding bits are not zero");
            const Json* tc = op.get("tap_channels");
            if (tc && tc->i % 64) {
                const int64_t tw = (tc->i + 63) / 64;  // words per tap: the padding bits of each tap's last word are zero
                for (int64_t r = 0; r < n; ++r)
                    for (int64_t t = tw - 1; t < w; t += tw)
                        if (b[r * w + t] >> (tc->i % 64)) throw bad("op " + name + ": weight padding bits are not zero");
            }
            if (pr == "float") {
                tensor(op, "wscale", DType::F32, {n});
                tensor(op, "wshift", DType::F32, {n});
            }
        } else {
            throw bad("op " + name + ": weight_format must be 'f32' or 'bits'");
        }
        if (op.has("bound")) {
            if (pr != "xnor" || vo.kind != Value::Bits)
                throw bad("op " + name + ": integer thresholds need an xnor product with bit output");
            const Tensor& bound = tensor(op, "bound", bound_dtype(kv), {n});
            const Tensor& flipb = tensor(op, "flip", DType::U8, {(n + 7) / 8});
            if (n % 8 && (flipb.as<uint8_t>()[flipb.numel() - 1] >> (n % 8)))
                throw bad("op " + name + ": flip padding bits are not zero");
            for (int64_t c = 0; c < n; ++c) {
                const int64_t v = bound.dtype == DType::U8 ? bound.as<uint8_t>()[c]
                                  : bound.dtype == DType::I16 ? bound.as<int16_t>()[c] : bound.as<int32_t>()[c];
                if (v < 0 || v > kv + 1)
                    throw bad("op " + name + ": bound out of range [0, " + std::to_string(kv + 1) + "]");
            }
        } else {
            std::vector<const char*> keys{"bias"};
            if (pr != "float" || op.has("scale")) keys.push_back("scale");
            if (pr == "and") keys.push_back("row_scale");
            for (const char* key : keys) check_finite(op, tensor(op, key, DType::F32, {n}), key);
            check_clamp(op);
            if (!offset_ok(op, false)) throw bad("op " + name + ": bad offset " + repr(*op.find("offset")));
        }
        if (pr == "and" && !is_str_in(fmt, {"bits"})) throw bad("op " + name + ": the AND product needs bit weights");
    }

    // ------------------------------------------------------------------ geometric ops
    static bool float_rows(const Value& v) { return v.kind == Value::Float && !v.pooled && !v.has_hw; }

    int64_t coords(const Json& op, int64_t dflt, std::initializer_list<const Value*> vals) const {
        const Json* c = op.find("coords");
        int64_t lo = INT64_MAX;
        bool ok = !c || pos_int(c);
        const int64_t cv = c ? c->i : dflt;
        for (const Value* v : vals) {
            lo = std::min(lo, v->channels);
            if (cv > v->channels) ok = false;
        }
        if (!ok || cv < 1)
            throw geo_bad(op, "coords must be an integer in [1, " + std::to_string(lo) + "], got " + (c ? repr(*c) : std::to_string(dflt)));
        return cv;
    }

    const Value& indexes(const Json& op, const char* key, const Value& target) const {
        const std::string& ref = op.find(key)->s;
        const Value& ix = g.values.at(ref);
        if (ix.kind != Value::Index) throw geo_bad(op, std::string(key) + " " + repr_str(ref) + " is not an index value");
        auto it = space.find(ref);
        const RowDesc sp = it == space.end() ? RowDesc() : it->second;
        if (sp != target.desc())
            throw geo_bad(op, "index " + repr_str(ref) + " points into rows " + sp.repr() + ", not into the " +
                                  target.desc().repr() + " rows it is used on");
        return ix;
    }

    void group_rows(const Json& op, const Json* gj, const Value& vi, const Value& vo) const {
        if (!pos_int(gj) || vo.pooled || vi.has_hw)
            throw geo_bad(op, "group must be a positive integer on point or group rows, got " + opt_repr(gj));
        const RowDesc di = vi.desc();
        if ((di.kind != RowDesc::Rows && di.kind != RowDesc::Mult) || times(vo.desc(), gj->i) != di)
            throw geo_bad(op, "pooling groups of " + std::to_string(gj->i) + " rows of " + di.repr() + " cannot give " +
                                  vo.desc().repr());
    }

    void check_knn(const Json& op, const Value& vi, const Value& vo) {
        const Json* k = op.find("k");
        if (!pos_int(k)) throw geo_bad(op, "k must be a positive integer, got " + opt_repr(k));
        RowDesc m1{RowDesc::Mult, 1, 0};
        if (!float_rows(vi) || vi.desc() != m1) throw geo_bad(op, "the input must be float rows, one per point");
        if (vo.kind != Value::Index || vo.desc() != m1 || vo.channels != k->i)
            throw geo_bad(op, "the output must be an index value of " + std::to_string(k->i) + " columns, one row per point");
        coords(op, vi.channels, {&vi});
        space[op.find("output")->s] = vi.desc();
    }

    void check_fps(const Json& op, const Value& vi, const Value& vo) {
        const Json* s = op.find("npoint");
        if (!pos_int(s)) throw geo_bad(op, "npoint must be a positive integer, got " + opt_repr(s));
        if (!float_rows(vi)) throw geo_bad(op, "the input must be float point rows");
        if (vo.kind != Value::Index || vo.desc() != RowDesc{RowDesc::Rows, s->i, 0} || vo.channels != 1)
            throw geo_bad(op, "the output must be an index value of " + std::to_string(s->i) + " rows and 1 column");
        const Json* st = op.find("start");
        if (st && !py_equal(*st, Json::integer(0))) throw geo_bad(op, "only start index 0 is supported");
        coords(op, vi.channels, {&vi});
        space[op.find("output")->s] = vi.desc();
    }

    void check_ball_query(const Json& op, const Value& vi, const Value& vo) {
        const Value& vc = val(op, "centres");
        const Json* k = op.find("k");
        const Json* r = op.find("radius");
        if (!pos_int(k)) throw geo_bad(op, "k (nsample) must be a positive integer, got " + opt_repr(k));
        if (!finite_number(r) || r->num() <= 0) throw geo_bad(op, "radius must be a finite number > 0, got " + opt_repr(r));
        if (!float_rows(vi) || !float_rows(vc)) throw geo_bad(op, "points and centres must be float rows");
        if (vo.kind != Value::Index || vo.desc() != vc.desc() || vo.channels != k->i)
            throw geo_bad(op, "the output must be an index value of " + std::to_string(k->i) + " columns, one row per centre");
        if (coords(op, 3, {&vi, &vc}) > 4)
            throw geo_bad(op, "coords must be at most 4 (the exact channel-ordered distance of the reference)");
        space[op.find("output")->s] = vi.desc();
    }

    void check_gather(const Json& op, const Value& vi, const Value& vo) {
        if (vi.kind == Value::Index || vi.pooled || vi.has_hw) throw geo_bad(op, "the input must be float or bit rows");
        const Value& ix = indexes(op, "index", vi);
        if (vo.kind != vi.kind || vo.channels != vi.channels || vo.desc() != times(ix.desc(), ix.channels))
            throw geo_bad(op, "the output has the input's kind and channels, one row per index");
    }

    void check_edge(const Json& op, const Value& vi, const Value& vo) {
        if (!float_rows(vi) || vi.desc() != RowDesc{RowDesc::Mult, 1, 0})
            throw geo_bad(op, "the input must be float rows, one per point");
        const Value& ix = indexes(op, "index", vi);
        if (ix.desc() != vi.desc()) throw geo_bad(op, "the index needs one row per point");
        if (vo.kind == Value::Index || vo.channels != 2 * vi.channels || vo.desc() != RowDesc{RowDesc::Mult, ix.channels, 0})
            throw geo_bad(op, "the output is float or bits of " + std::to_string(2 * vi.channels) + " channels, " +
                                  std::to_string(ix.channels) + " rows per point");
    }

    void check_group(const Json& op, const Value& vi, const Value& vo) {
        const Value& vc = val(op, "centres");
        if (!float_rows(vi) || !float_rows(vc)) throw geo_bad(op, "points and centres must be float rows");
        const Value& ix = indexes(op, "index", vi);
        if (ix.desc() != vc.desc()) throw geo_bad(op, "the index needs one row per centre");
        const int64_t d = coords(op, 3, {&vi, &vc});
        int64_t f = 0;
        if (op.has("features")) {
            const Value& vf = val(op, "features");
            if (vf.kind == Value::Index || vf.desc() != vi.desc() || (vf.kind == Value::Bits && vo.kind != Value::Bits))
                throw geo_bad(op, "features must be float (or, for a bits output, bit) rows like the points");
            f = vf.channels;
        }
        if (vo.kind == Value::Index || vo.channels != d + f || vo.desc() != times(vc.desc(), ix.channels))
            throw geo_bad(op, "the output is float or bits of " + std::to_string(d + f) + " channels, " +
                                  std::to_string(ix.channels) + " rows per centre");
    }

    void check_pool(const Json& op, const Value& vi, const Value& vo) {
        const Json* kind = op.find("kind");
        if (!is_str_in(kind, {"max", "avg"}))
            throw geo_bad(op, "kind must be one of ['max', 'avg'], got " + opt_repr(kind));
        if (!float_rows(vi) || vo.kind != Value::Float || vo.channels != vi.channels)
            throw geo_bad(op, "pool maps float rows to float rows of the same channels");
        const Json* gj = op.get("group");
        if (!gj) {
            if (!vo.pooled) throw geo_bad(op, "without a group the output is one pooled row");
        } else {
            group_rows(op, gj, vi, vo);
        }
        if (!offset_ok(op, kind->s == "avg")) {
            const Json* off = op.find("offset");
            throw geo_bad(op, "bad offset " + opt_repr(off));
        }
    }

    void check_concat(const Json& op, const Value&, const Value& vo) {
        int64_t sum = 0;
        bool ok = true;
        for (const Json& r : op.find("inputs")->a) {
            const Value& v = g.values.at(r.s);
            if (v.kind != vo.kind || v.kind == Value::Index || v.desc() != vo.desc()) ok = false;
            sum += v.channels;
        }
        if (!ok) throw geo_bad(op, "inputs must be float or bit values with the output's kind and rows");
        if (sum != vo.channels) throw geo_bad(op, "output channels must be the sum of the inputs'");
    }

    // ------------------------------------------------------------------ the graph
    void run() {
        const Json& gr = g.graph;
        const Json* inp = gr.find("input");
        const Json* ich = inp && inp->is_object() ? inp->find("channels") : nullptr;
        if (!inp || !inp->is_object() || !ich || !ich->is_int() || ich->i < 1 || ich->i > (1 << 16))
            throw bad("graph.input must give the number of input channels");
        const Json* iname = inp->find("name");
        if (!iname || !iname->is_str()) throw bad("graph.input needs a name");
        const Json* values = gr.find("values");
        const Json* ops = gr.find("ops");
        if (!values || !values->is_object() || !ops || !ops->is_array() || ops->a.empty())
            throw bad("graph needs 'values' (object) and a non-empty 'ops' list");
        for (const auto& kv : values->o) check_value(kv.first, kv.second);
        // graph.input must equal {"kind": "float", "channels": C, "pooled": false[, "hw": ...]}
        Json want;
        want.type = Json::Object;
        want.set("kind", Json::str("float"));
        want.set("channels", *ich);
        Json f;
        f.type = Json::Bool;
        want.set("pooled", f);
        if (inp->has("hw")) want.set("hw", *inp->find("hw"));
        const Json* declared = values->find(iname->s);
        if (!declared || !py_equal(*declared, want))
            throw bad("graph.input must be a float per-point value (or a float [H, W] map, as graph.input)");
        std::set<std::string> defined{iname->s};
        for (size_t i = 0; i < ops->a.size(); ++i) {
            Json op = ops->a[i];
            const Json* t = op.is_object() ? op.find("op") : nullptr;
            bool known = false;
            if (t && t->is_str())
                for (const char* n : OP_TYPES) known = known || t->s == n;
            const Json* oname = op.is_object() ? op.find("name") : nullptr;
            if (!known || !oname || !oname->is_str())
                throw bad("op #" + std::to_string(i) + ": needs 'name' and 'op' in " + OP_TYPES_REPR);
            const std::string type = t->s;
            const std::string name = repr_str(oname->s);
            if (type == "concat") {  // reads a list of values: "input" stands for the first
                const Json* ins = op.find("inputs");
                bool ok = ins && ins->is_array() && ins->a.size() >= 2;
                if (ok)
                    for (const Json& r : ins->a) ok = ok && r.is_str();
                if (!ok) throw bad("op " + name + ": concat needs 'inputs', a list of at least two value names");
                op.set("input", ins->a[0]);
            }
            std::vector<std::string> second;
            if (type == "bmm") second = {"matrix"};
            else if (type == "add") second = {"other"};
            else if (type == "ball_query") second = {"centres"};
            else if (type == "gather" || type == "edge") second = {"index"};
            else if (type == "group") {
                second = {"centres", "index"};
                if (op.has("features")) second.push_back("features");
            }
            if (type == "linear" && op.has("scale_input")) second = {"scale_input"};
            std::vector<std::pair<std::string, const Json*>> reads;
            reads.emplace_back("input", op.find("input"));
            for (const auto& k : second) reads.emplace_back(k, op.find(k));
            if (type == "concat")
                for (size_t r = 1; r < op.find("inputs")->a.size(); ++r) reads.emplace_back("inputs", &op.find("inputs")->a[r]);
            auto all = reads;
            all.emplace_back("output", op.find("output"));
            for (const auto& kr : all)
                if (!kr.second || !kr.second->is_str() || !g.values.count(kr.second->s))
                    throw bad("op " + name + ": " + kr.first + "=" + opt_repr(kr.second) + " is not a declared value");
            for (const auto& kr : reads)
                if (!defined.count(kr.second->s))
                    throw bad("op " + name + ": reads " + repr_str(kr.second->s) + " before it is computed");
            const std::string& out = op.find("output")->s;
            if (defined.count(out)) throw bad("op " + name + ": value " + repr_str(out) + " is written twice");
            const Value& vi = g.values.at(op.find("input")->s);
            const Value& vo = g.values.at(out);
            if (!is_geo(type)) {
                for (const auto& kr : all)
                    if (g.values.at(kr.second->s).kind == Value::Index)
                        throw bad("op " + name + ": index values are read and written by geometric ops only");
                if (type != "linear" && !vo.pooled && vi.desc() != vo.desc() && type != "im2col" && type != "maxpool")
                    throw bad("op " + name + ": input and output rows differ");
            }
            if (type == "linear") check_linear(op, vi, vo);
            else if (type == "sign") check_sign(op, vi, vo);
            else if (type == "bmm") check_bmm(op, vi, vo);
            else if (type == "im2col") check_im2col(op, vi, vo);
            else if (type == "maxpool") check_maxpool(op, vi, vo);
            else if (type == "add") check_add(op, vi, vo);
            else if (type == "avgpool") check_avgpool(op, vi, vo);
            else if (type == "affine") check_affine(op, vi, vo);
            else if (type == "knn") check_knn(op, vi, vo);
            else if (type == "fps") check_fps(op, vi, vo);
            else if (type == "ball_query") check_ball_query(op, vi, vo);
            else if (type == "gather") check_gather(op, vi, vo);
            else if (type == "edge") check_edge(op, vi, vo);
            else if (type == "group") check_group(op, vi, vo);
            else if (type == "pool") check_pool(op, vi, vo);
            else check_concat(op, vi, vo);
            defined.insert(out);
            g.ops.push_back(std::move(op));
        }
        const Json* out = gr.find("output");
        if (!out || !out->is_str() || !defined.count(out->s) || g.values.at(out->s).kind != Value::Float)
            throw bad("graph.output " + opt_repr(out) + " must be a computed float value");
        const Json* pts = inp->get("points");
        if (pts && (!pts->is_int() || pts->i < 1)) throw bad("graph.input.points must be a positive integer or absent");
        g.points = pts ? pts->i : 0;
        g.input_name = iname->s;
        g.output_name = out->s;
        g.input_channels = static_cast<int>(ich->i);
        const Value& vo = g.values.at(out->s);
        g.output_channels = static_cast<int>(vo.channels);
        g.output_pooled = vo.pooled || (vo.has_hw && vo.H == 1 && vo.W == 1);
        const Value& vin = g.values.at(iname->s);
        g.input_hw = vin.has_hw;
        g.H = static_cast<int>(vin.H);
        g.W = static_cast<int>(vin.W);
    }
};

}  // namespace

Graph validate_graph(Container&& c) {
    Graph g;
    g.path = c.path;
    g.file_bytes = c.file_bytes;
    g.tensors = std::move(c.tensors);
    g.graph_text = std::move(c.graph_text);
    g.graph = std::move(c.graph);
    Checker ck{g, {}};
    ck.run();
    return g;
}

}  // namespace onebit
