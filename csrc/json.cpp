// Strict JSON reader and Python-style repr (json.h).
#include "json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace onebit {

const Json* Json::find(const std::string& key) const {
    if (type != Object) return nullptr;
    for (const auto& kv : o)
        if (kv.first == key) return &kv.second;
    return nullptr;
}

void Json::set(const std::string& key, Json v) {
    for (auto& kv : o)
        if (kv.first == key) {
            kv.second = std::move(v);
            return;
        }
    o.emplace_back(key, std::move(v));
}

void Json::erase(const std::string& key) {
    for (size_t k = 0; k < o.size(); ++k)
        if (o[k].first == key) {
            o.erase(o.begin() + static_cast<std::ptrdiff_t>(k));
            return;
        }
}

namespace {

// UTF-8 validity (as Python's bytes.decode("utf-8"): no overlongs, no surrogates, <= U+10FFFF)
bool valid_utf8(const unsigned char* p, size_t n) {
    size_t i = 0;
    while (i < n) {
        const unsigned c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        int len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
        else return false;
        if (i + static_cast<size_t>(len) > n) return false;
        for (int k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += static_cast<size_t>(len);
    }
    return true;
}

void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

struct Parser {
    const char* p;
    const char* end;
    int max_depth;

    [[noreturn]] void fail(const char* what) const { throw JsonError(what); }

    void ws() {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
    }

    bool lit(const char* w) {
        const size_t n = std::strlen(w);
        if (static_cast<size_t>(end - p) >= n && std::memcmp(p, w, n) == 0) {
            p += n;
            return true;
        }
        return false;
    }

    unsigned hex4() {
        if (end - p < 4) fail("truncated \\u escape");
        unsigned v = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = *p++;
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
            else fail("bad \\u escape");
        }
        return v;
    }

    std::string string() {
        ++p;  // opening quote
        std::string out;
        for (;;) {
            if (p >= end) fail("unterminated string");
            const unsigned char c = static_cast<unsigned char>(*p);
            if (c == '"') {
                ++p;
                return out;
            }
            if (c < 0x20) fail("control character in string");
            if (c != '\\') {
                out += static_cast<char>(c);
                ++p;
                continue;
            }
            ++p;
            if (p >= end) fail("unterminated escape");
            const char e = *p++;
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                        const char* save = p;
                        p += 2;
                        const unsigned lo = hex4();
                        if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        else p = save;
                    }
                    // a lone surrogate cannot be UTF-8 encoded (Python's str.encode() refuses it too)
                    if (cp >= 0xD800 && cp <= 0xDFFF) fail("lone surrogate in string");
                    put_utf8(out, cp);
                    break;
                }
                default: fail("bad escape");
            }
        }
    }

    Json number() {
        const char* s = p;
        bool is_float = false;
        if (p < end && *p == '-') ++p;
        if (p >= end) fail("bad number");
        if (*p == '0') {
            ++p;
        } else if (*p >= '1' && *p <= '9') {
            while (p < end && *p >= '0' && *p <= '9') ++p;
        } else {
            fail("bad number");
        }
        if (p < end && *p == '.') {
            is_float = true;
            ++p;
            if (p >= end || *p < '0' || *p > '9') fail("bad number");
            while (p < end && *p >= '0' && *p <= '9') ++p;
        }
        if (p < end && (*p == 'e' || *p == 'E')) {
            is_float = true;
            ++p;
            if (p < end && (*p == '+' || *p == '-')) ++p;
            if (p >= end || *p < '0' || *p > '9') fail("bad number");
            while (p < end && *p >= '0' && *p <= '9') ++p;
        }
        Json j;
        if (is_float) {
            j.type = Json::Float;
            const std::string t(s, p);
            j.f = std::strtod(t.c_str(), nullptr);  // overflow gives inf, as Python's float()
        } else {
            j.type = Json::Int;
            const auto r = std::from_chars(s, p, j.i);
            if (r.ec == std::errc::result_out_of_range) {
                j.big = true;
                j.i = *s == '-' ? INT64_MIN : INT64_MAX;
            } else if (r.ec != std::errc() || r.ptr != p) {
                fail("bad number");
            }
        }
        return j;
    }

    Json value(int depth) {
        if (depth > max_depth) fail("nesting too deep");
        ws();
        if (p >= end) fail("unexpected end");
        const char c = *p;
        if (c == '{') {
            ++p;
            Json j;
            j.type = Json::Object;
            ws();
            if (p < end && *p == '}') {
                ++p;
                return j;
            }
            for (;;) {
                ws();
                if (p >= end || *p != '"') fail("expected a key");
                std::string k = string();
                ws();
                if (p >= end || *p != ':') fail("expected ':'");
                ++p;
                Json v = value(depth + 1);
                j.set(k, std::move(v));
                ws();
                if (p < end && *p == ',') {
                    ++p;
                    continue;
                }
                if (p < end && *p == '}') {
                    ++p;
                    return j;
                }
                fail("expected ',' or '}'");
            }
        }
        if (c == '[') {
            ++p;
            Json j;
            j.type = Json::Array;
            ws();
            if (p < end && *p == ']') {
                ++p;
                return j;
            }
            for (;;) {
                j.a.push_back(value(depth + 1));
                ws();
                if (p < end && *p == ',') {
                    ++p;
                    continue;
                }
                if (p < end && *p == ']') {
                    ++p;
                    return j;
                }
                fail("expected ',' or ']'");
            }
        }
        if (c == '"') return Json::str(string());
        Json j;
        if (lit("true")) {
            j.type = Json::Bool;
            j.b = true;
            return j;
        }
        if (lit("false")) {
            j.type = Json::Bool;
            return j;
        }
        if (lit("null")) return j;
        if (c == '-' || (c >= '0' && c <= '9')) return number();
        fail("unexpected character");
    }
};

}  // namespace

Json parse_json(const char* text, size_t len, int max_depth) {
    if (!valid_utf8(reinterpret_cast<const unsigned char*>(text), len)) throw JsonError("not valid UTF-8");
    Parser ps{text, text + len, max_depth};
    Json v = ps.value(0);
    ps.ws();
    if (ps.p != ps.end) throw JsonError("extra data after the value");
    return v;
}

std::string repr_double(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    char buf[64];
    // shortest round-trip digits, then Python's layout: exponent form outside [1e-4, 1e16)
    auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string sci(buf, r.ptr);
    const size_t epos = sci.find('e');
    std::string mant = sci.substr(0, epos);
    const int exp = std::stoi(sci.substr(epos + 1));
    const bool neg = !mant.empty() && mant[0] == '-';
    if (neg) mant.erase(0, 1);
    std::string digits;
    for (char ch : mant)
        if (ch != '.') digits += ch;
    std::string out;
    if (exp < -4 || exp >= 16) {
        out = digits.substr(0, 1);
        if (digits.size() > 1) out += "." + digits.substr(1);
        char e[16];
        std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        out += e;
    } else if (exp < 0) {
        out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    } else {
        const size_t ip = static_cast<size_t>(exp) + 1;
        if (digits.size() <= ip) out = digits + std::string(ip - digits.size(), '0') + ".0";
        else out = digits.substr(0, ip) + "." + digits.substr(ip);
    }
    return neg ? "-" + out : out;
}

std::string repr_str(const std::string& s) {
    const bool has_sq = s.find('\'') != std::string::npos, has_dq = s.find('"') != std::string::npos;
    const char q = has_sq && !has_dq ? '"' : '\'';
    std::string out(1, q);
    for (unsigned char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == static_cast<unsigned char>(q)) out += std::string("\\") + static_cast<char>(c);
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7F) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else out += static_cast<char>(c);
    }
    out += q;
    return out;
}

std::string repr(const Json& v) {
    switch (v.type) {
        case Json::Null: return "None";
        case Json::Bool: return v.b ? "True" : "False";
        case Json::Int: return v.big ? (v.i < 0 ? "-" : "") + std::string("<huge integer>") : std::to_string(v.i);
        case Json::Float: return repr_double(v.f);
        case Json::String: return repr_str(v.s);
        case Json::Array: {
            std::string out = "[";
            for (size_t k = 0; k < v.a.size(); ++k) out += (k ? ", " : "") + repr(v.a[k]);
            return out + "]";
        }
        default: {
            std::string out = "{";
            for (size_t k = 0; k < v.o.size(); ++k) out += (k ? ", " : "") + repr_str(v.o[k].first) + ": " + repr(v.o[k].second);
            return out + "}";
        }
    }
}

bool py_equal(const Json& x, const Json& y) {
    const bool xn = x.is_number() || x.is_bool(), yn = y.is_number() || y.is_bool();
    if (xn || yn) {
        if (!(xn && yn)) return false;
        if ((x.is_int() || x.is_bool()) && (y.is_int() || y.is_bool()))
            return (x.is_bool() ? int64_t(x.b) : x.i) == (y.is_bool() ? int64_t(y.b) : y.i) && x.big == y.big;
        return x.num() == y.num();
    }
    if (x.type != y.type) return false;
    switch (x.type) {
        case Json::Null: return true;
        case Json::String: return x.s == y.s;
        case Json::Array:
            if (x.a.size() != y.a.size()) return false;
            for (size_t k = 0; k < x.a.size(); ++k)
                if (!py_equal(x.a[k], y.a[k])) return false;
            return true;
        default:
            if (x.o.size() != y.o.size()) return false;
            for (const auto& kv : x.o) {
                const Json* o = y.find(kv.first);
                if (!o || !py_equal(kv.second, *o)) return false;
            }
            return true;
    }
}

namespace {
void dump_str(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        if (c == '"') out += "\\\"";
        else if (c == '\\') out += "\\\\";
        else if (c < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            out += b;
        } else out += static_cast<char>(c);
    }
    out += '"';
}

void dump(std::string& out, const Json& v) {
    switch (v.type) {
        case Json::Null: out += "null"; break;
        case Json::Bool: out += v.b ? "true" : "false"; break;
        case Json::Int: out += std::to_string(v.i); break;
        case Json::Float: {
            if (!std::isfinite(v.f)) {
                out += "null";
                break;
            }
            char buf[64];
            auto r = std::to_chars(buf, buf + sizeof buf, v.f);
            std::string t(buf, r.ptr);
            if (t.find_first_of(".eE") == std::string::npos) t += ".0";
            out += t;
            break;
        }
        case Json::String: dump_str(out, v.s); break;
        case Json::Array:
            out += '[';
            for (size_t k = 0; k < v.a.size(); ++k) {
                if (k) out += ',';
                dump(out, v.a[k]);
            }
            out += ']';
            break;
        default:
            out += '{';
            for (size_t k = 0; k < v.o.size(); ++k) {
                if (k) out += ',';
                dump_str(out, v.o[k].first);
                out += ':';
                dump(out, v.o[k].second);
            }
            out += '}';
    }
}
}  // namespace

std::string dump_json(const Json& v) {
    std::string out;
    dump(out, v);
    return out;
}

}  // namespace onebit
