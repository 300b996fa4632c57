// The planner (plan.h).
#include "plan.h"

#include <cmath>
#include <map>
#include <stdexcept>

namespace onebit {

namespace {

// Wichura's AS241 (Python's statistics.NormalDist.inv_cdf with mu = 0, sigma = 1, operation for operation)
double normal_inv_cdf(double p) {
    const double q = p - 0.5;
    double num, den, r;
    if (std::fabs(q) <= 0.425) {
        r = 0.180625 - q * q;
        num = (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r + 6.7265770927008700853e+4) * r +
                   4.5921953931549871457e+4) * r + 1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r +
                1.3314166789178437745e+2) * r + 3.3871328727963666080e+0) * q;
        den = (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r + 3.9307895800092710610e+4) * r +
                   2.1213794301586595867e+4) * r + 5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r +
                4.2313330701600911252e+1) * r + 1.0);
        return 0.0 + (num / den) * 1.0;
    }
    r = q <= 0.0 ? p : 1.0 - p;
    r = std::sqrt(-std::log(r));
    if (r <= 5.0) {
        r = r - 1.6;
        num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r + 2.41780725177450611770e-1) * r +
                   1.27045825245236838258e+0) * r + 3.64784832476320460504e+0) * r + 5.76949722146069140550e+0) * r +
                4.63033784615654529590e+0) * r + 1.42343711074968357734e+0);
        den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r + 1.51986665636164571966e-2) * r +
                   1.48103976427480074590e-1) * r + 6.89767334985100004550e-1) * r + 1.67638483018380384940e+0) * r +
                2.05319162663775882187e+0) * r + 1.0);
    } else {
        r = r - 5.0;
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 1.24266094738807843860e-3) * r +
                   2.65321895265761230930e-2) * r + 2.96560571828504891230e-1) * r + 1.78482653991729133580e+0) * r +
                5.46378491116411436990e+0) * r + 6.65790464350110377720e+0);
        den = (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r + 1.84631831751005468180e-5) * r +
                   7.86869131145613259100e-4) * r + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r +
                5.99832206555887937690e-1) * r + 1.0);
    }
    double x = num / den;
    if (q < 0.0) x = -x;
    return 0.0 + (x * 1.0);
}

// BiPointNet's official EMA-max offsets (Monte-Carlo, per point count); mirrors onebit.nn.pool
const std::map<int64_t, double> OFFICIAL_EMA = {{20, 1.8268},   {64, 2.2983},   {258, 2.7829},
                                                {1024, 3.2041}, {2048, 3.4025}, {4096, 3.5836}};

std::vector<float> f32_of(const Tensor& t) {
    const float* p = t.as<float>();
    return std::vector<float>(p, p + t.numel());
}

std::vector<uint8_t> unpack_bits(const Tensor& t, int64_t n) {  // little bit order, first n bits
    std::vector<uint8_t> out(static_cast<size_t>(n));
    const uint8_t* b = t.as<uint8_t>();
    for (int64_t c = 0; c < n; ++c) out[c] = (b[c >> 3] >> (c & 7)) & 1;
    return out;
}

int64_t int_at(const Tensor& t, int64_t i) {
    switch (t.dtype) {
        case DType::U8: return t.as<uint8_t>()[i];
        case DType::I16: return t.as<int16_t>()[i];
        case DType::I32: return t.as<int32_t>()[i];
        case DType::I64: return t.as<int64_t>()[i];
        default: return 0;
    }
}

struct Planner {
    const Graph& g;
    int64_t n_points;
    std::map<std::string, int> ids;

    std::string nm(const Json& op) const { return repr_str(op.find("name")->s); }

    double offset(const Json& op, int64_t n) const {
        const Json* off = op.find("offset");
        if (!off) return 0.0;
        const std::string& rule = off->find("rule")->s;
        if (rule == "const") return off->find("value")->num();
        if (rule == "ema") {
            if (off->find("offsets")->s == "official") {
                auto it = OFFICIAL_EMA.find(n);
                if (it == OFFICIAL_EMA.end())
                    throw std::invalid_argument(g.path + ": op " + nm(op) + " uses the official EMA-max offsets, which "
                                                "exist only for n in [20, 64, 258, 1024, 2048, 4096], not n=" +
                                                std::to_string(n));
                return it->second;
            }
            return ema_offset(n);
        }
        return 0.0;
    }

    int id(const Json& op, const char* key) const { return ids.at(op.find(key)->s); }

    void linear(const Json& op, Rec& rec) const {
        const int64_t k = op.find("in_features")->i, n = op.find("out_features")->i;
        const Value& vo = g.values.at(op.find("output")->s);
        const Json* pj = op.find("pool");
        const std::string pool = pj ? pj->s : "none";
        int mode;
        if (vo.kind == Value::Bits) mode = pool == "or" ? OUT_OR : OUT_BITS;
        else mode = pool == "none" ? OUT_F32 : pool == "max" ? OUT_MAX : OUT_AVG;
        int64_t kv = k;
        if (const Json* tc = op.get("tap_channels")) kv = k / (64 * ((tc->i + 63) / 64)) * tc->i;
        rec.num["K"] = static_cast<double>(k);
        rec.num["N"] = static_cast<double>(n);
        rec.num["out_mode"] = mode;
        rec.num["Kv"] = static_cast<double>(kv);
        const Json* group = op.find("group");
        if (group) rec.num["group"] = group->num();
        const std::string& prod = op.find("product")->s;
        if (prod == "float") {
            std::vector<float> wt(static_cast<size_t>(k * n));
            if (op.find("weight_format")->s == "f32") {
                const float* w = g.tensor(op, "weight").as<float>();
                for (int64_t r = 0; r < n; ++r)
                    for (int64_t c = 0; c < k; ++c) wt[c * n + r] = w[r * k + c];
            } else {  // binary weights, real input: W̃ = a·signs + b expanded once at load
                const uint64_t* w = g.tensor(op, "weight").as<uint64_t>();
                const float* a = g.tensor(op, "wscale").as<float>();
                const float* b = g.tensor(op, "wshift").as<float>();
                const int64_t words = (k + 63) / 64;
                for (int64_t r = 0; r < n; ++r)
                    for (int64_t c = 0; c < k; ++c) {
                        const float s = (w[r * words + c / 64] >> (c % 64)) & 1 ? 1.f : -1.f;
                        wt[c * n + r] = a[r] * s + b[r];
                    }
            }
            rec.num["type"] = OP_FLINEAR;
            rec.f32["wt"] = std::move(wt);
        } else {
            rec.num["type"] = OP_BLINEAR;
            const Tensor& w = g.tensor(op, "weight");
            rec.u64["weight"] = std::vector<uint64_t>(w.as<uint64_t>(), w.as<uint64_t>() + w.numel());
            rec.num["and_mode"] = prod == "and";
            const Json* xs = op.get("input_scale");
            if (xs && xs->s == "mean_abs") {
                rec.num["xscale"] = op.has("scale_input") ? 2 : 1;
                if (op.has("scale_input")) rec.num["in1"] = id(op, "scale_input");
            }
        }
        if (op.has("bound")) {
            const auto flip = unpack_bits(g.tensor(op, "flip"), n);
            const Tensor& bound = g.tensor(op, "bound");
            std::vector<int64_t> P(static_cast<size_t>(n));
            for (int64_t c = 0; c < n; ++c) P[c] = int_at(bound, c) - 1;
            rec.i64["P"] = std::move(P);
            rec.u8["flip"] = flip;
            rec.f32["mul"] = std::vector<float>(static_cast<size_t>(n), 0.f);
            rec.f32["add"] = std::vector<float>(static_cast<size_t>(n), 0.f);
            return;
        }
        const Json* clamp = op.find("clamp");
        double lo = -INFINITY, hi = INFINITY;
        if (clamp) {
            if (!clamp->a[0].is_null()) lo = clamp->a[0].num();
            if (!clamp->a[1].is_null()) hi = clamp->a[1].num();
        }
        // EMA-max: δ*(n) for the rows pooled together (a group, or every row of the input)
        const double off = offset(op, group ? group->i : g.values.at(op.find("input")->s).nrows(n_points));
        std::vector<float> mul = op.has("scale") ? f32_of(g.tensor(op, "scale")) : std::vector<float>(static_cast<size_t>(n), 1.f);
        rec.f32["add"] = f32_of(g.tensor(op, "bias"));
        rec.num["lo"] = lo;
        rec.num["hi"] = hi;
        rec.num["offset"] = off;
        if (prod == "and") {
            rec.f32["rowc"] = f32_of(g.tensor(op, "row_scale"));
        } else if (prod == "xnor" && vo.kind == Value::Bits) {
            const std::vector<float>& scale = mul;  // "scale" is present for binary products
            const std::vector<float>& bias = rec.f32["add"];
            std::vector<int64_t> P(static_cast<size_t>(n));
            std::vector<uint8_t> flip(static_cast<size_t>(n));
            for (int64_t c = 0; c < n; ++c) {
                int64_t tau;
                if (!threshold(scale[c], bias[c], static_cast<float>(lo), static_cast<float>(hi), static_cast<float>(off), kv,
                               tau, flip[c]))
                    throw std::invalid_argument(g.path + ": op " + nm(op) + ": channel " + std::to_string(c) +
                                                ": the binarized output is not monotone in the binary product");
                P[c] = popcount_bound(tau, flip[c], kv);
            }
            rec.i64["P"] = std::move(P);
            rec.u8["flip"] = std::move(flip);
        }
        rec.f32["mul"] = std::move(mul);
    }

    void geo(const Json& op, const std::string& kind, Rec& rec) const {
        static const std::map<std::string, int> types = {{"knn", OP_KNN},       {"fps", OP_FPS},     {"ball_query", OP_BALLQ},
                                                         {"gather", OP_GATHER}, {"edge", OP_EDGE},   {"group", OP_GROUP},
                                                         {"pool", OP_POOL},     {"concat", OP_CONCAT}};
        rec.num["type"] = types.at(kind);
        const Value& vi = g.values.at(op.find("input")->s);
        auto opt = [&](const char* key, double dflt) {
            const Json* v = op.find(key);
            return v ? v->num() : dflt;
        };
        if (kind == "knn") {
            rec.num["k"] = op.find("k")->num();
            rec.num["coords"] = opt("coords", static_cast<double>(vi.channels));
        } else if (kind == "fps") {
            rec.num["coords"] = opt("coords", static_cast<double>(vi.channels));
            rec.num["start"] = 0;
        } else if (kind == "ball_query") {
            rec.num["in1"] = id(op, "centres");
            rec.num["k"] = op.find("k")->num();
            rec.num["radius"] = op.find("radius")->num();
            rec.num["coords"] = opt("coords", 3);
        } else if (kind == "gather" || kind == "edge") {
            rec.num["in1"] = id(op, "index");
        } else if (kind == "group") {
            rec.num["in1"] = id(op, "centres");
            rec.num["idx"] = id(op, "index");
            rec.num["coords"] = opt("coords", 3);
            if (op.has("features")) rec.num["feat"] = id(op, "features");
        } else if (kind == "pool") {
            const Json* gj = op.get("group");
            const int64_t n = gj ? gj->i : vi.nrows(n_points);
            rec.num["avg"] = op.find("kind")->s == "avg";
            rec.num["offset"] = offset(op, n);
            if (gj) rec.num["group"] = static_cast<double>(gj->i);
        } else {  // concat
            std::vector<int64_t> ins;
            for (const Json& r : op.find("inputs")->a) ins.push_back(ids.at(r.s));
            rec.i64["ins"] = std::move(ins);
        }
    }
};

}  // namespace

double ema_offset(int64_t n) {
    const double upper = -std::expm1(std::log(0.5) / static_cast<double>(n));
    return -normal_inv_cdf(upper);
}

bool threshold(float s, float c, float lo, float hi, float offset, int64_t k, int64_t& tau, uint8_t& flip) {
    int64_t first = -1, last = -1;
    bool gap = false;
    for (int64_t j = 0; j <= k; ++j) {
        const float d = static_cast<float>(-k + 2 * j);
        float v = s * d;
        v = v + c;
        v = v < lo ? lo : v;  // np.maximum / np.minimum (no NaN can occur: finite scales)
        v = v > hi ? hi : v;
        v = v - offset;
        if (v >= 0) {
            if (first < 0) first = j;
            else if (last != j - 1) gap = true;
            last = j;
        }
    }
    flip = 0;
    if (first < 0) {
        tau = k + 1;
        return true;
    }
    if (gap) return false;
    if (first == 0 && last == k) {
        tau = -k;
        return true;
    }
    if (last == k) {
        tau = -k + 2 * first;
        return true;
    }
    if (first == 0) {
        tau = -k + 2 * last;
        flip = 1;
        return true;
    }
    return false;
}

int64_t popcount_bound(int64_t tau, uint8_t flip, int64_t k) {
    auto floordiv = [](int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); };
    const int64_t p = flip ? -floordiv(-(k - tau), 2) - 1 : floordiv(k - tau, 2);
    return p < -1 ? -1 : p > k ? k : p;
}

Plan make_plan(const Graph& g, int64_t n_points) {
    Plan plan;
    Planner pl{g, n_points, {}};
    std::vector<std::string> order{g.input_name};
    for (const Json& op : g.ops) order.push_back(op.find("output")->s);
    for (const std::string& name : order) {
        const Value& v = g.values.at(name);
        pl.ids[name] = static_cast<int>(plan.bufs.size());
        BufSpec b;
        b.bits = v.kind == Value::Bits;
        b.pooled = v.pooled;
        b.cols = static_cast<int>(v.channels);
        b.rows = static_cast<int>(v.has_hw ? v.H * v.W : v.has_rows ? v.rows : 0);
        b.mult = static_cast<int>(v.has_mult ? v.mult : 1);
        b.index = v.kind == Value::Index;
        plan.bufs.push_back(b);
    }
    for (const Json& op : g.ops) {
        Rec rec;
        rec.name = op.find("name")->s;
        rec.num["in0"] = pl.id(op, "input");
        rec.num["out"] = pl.id(op, "output");
        const std::string& t = op.find("op")->s;
        if (t == "sign") {
            rec.num["type"] = OP_QUANT;
            if (op.has("scale")) {
                rec.f32["mul"] = f32_of(g.tensor(op, "scale"));
                rec.f32["add"] = f32_of(g.tensor(op, "bias"));
            }
        } else if (t == "add") {
            rec.num["type"] = OP_ADD;
            rec.num["in1"] = pl.id(op, "other");
            const Json* clamp = op.find("clamp");
            rec.num["lo"] = clamp && !clamp->a[0].is_null() ? clamp->a[0].num() : -INFINITY;
            rec.num["hi"] = clamp && !clamp->a[1].is_null() ? clamp->a[1].num() : INFINITY;
        } else if (t == "avgpool") {
            rec.num["type"] = OP_GAP;
        } else if (t == "affine") {
            rec.num["type"] = OP_AFFINE;
            rec.f32["mul"] = f32_of(g.tensor(op, "scale"));
            rec.f32["add"] = f32_of(g.tensor(op, "bias"));
        } else if (t == "bmm") {
            rec.num["type"] = OP_BMM;
            rec.num["in1"] = pl.id(op, "matrix");
        } else if (t == "im2col" || t == "maxpool") {
            const Value& vi = g.values.at(op.find("input")->s);
            rec.num["type"] = t == "im2col" ? OP_IM2COL : OP_BITPOOL;
            rec.num["H"] = static_cast<double>(vi.H);
            rec.num["W"] = static_cast<double>(vi.W);
            const Json& kern = *op.find("kernel");
            const Json& str = *op.find("stride");
            rec.num["kh"] = kern.a[0].num();
            rec.num["kw"] = kern.a[1].num();
            rec.num["sh"] = str.a[0].num();
            rec.num["sw"] = str.a[1].num();
            const Json* pad = op.find("padding");
            rec.num["ph"] = pad ? pad->a[0].num() : 0;
            rec.num["pw"] = pad ? pad->a[1].num() : 0;
            if (t == "im2col") {
                const Json* pv = op.find("pad_value");
                rec.num["pad"] = pv ? pv->num() : 0.0;
            } else if (vi.kind == Value::Bits) {
                const int64_t c = vi.channels, words = (c + 63) / 64;
                const auto bits = unpack_bits(g.tensor(op, "invert"), c);
                std::vector<uint64_t> inv(static_cast<size_t>(words), 0);
                for (int64_t ch = 0; ch < c; ++ch)
                    if (bits[ch]) inv[ch / 64] |= 1ULL << (ch % 64);
                rec.u64["inv"] = std::move(inv);
            }
        } else if (t == "linear") {
            pl.linear(op, rec);
        } else {
            pl.geo(op, t, rec);
        }
        plan.recs.push_back(std::move(rec));
    }
    plan.output = pl.ids.at(g.output_name);
    return plan;
}

}  // namespace onebit
