/* A strict JSON reader for the bench protocol's flat bodies, decoding strings in place, and a compact writer. */
#include "bp_json.h"

#include <string.h>

#define MAX_DEPTH 8

static void ws(bp_jr *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

int bp_jr_peek(bp_jr *r)
{
    ws(r);
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

int bp_jr_expect(bp_jr *r, char c)
{
    if (bp_jr_peek(r) != (unsigned char)c) return -1;
    r->p++;
    return 0;
}

static int lit(bp_jr *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return -1;
    r->p += n;
    return 0;
}

static int hex4(const char *p, uint32_t *v)
{
    int i;
    *v = 0;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        uint32_t d;
        if (c >= '0' && c <= '9') d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (uint32_t)(c - 'A' + 10);
        else return -1;
        *v = (*v << 4) | d;
    }
    return 0;
}

static char *put_utf8(char *w, uint32_t cp)
{
    if (cp < 0x80u) {
        *w++ = (char)cp;
    } else if (cp < 0x800u) {
        *w++ = (char)(0xC0u | (cp >> 6));
        *w++ = (char)(0x80u | (cp & 0x3Fu));
    } else if (cp < 0x10000u) {
        *w++ = (char)(0xE0u | (cp >> 12));
        *w++ = (char)(0x80u | ((cp >> 6) & 0x3Fu));
        *w++ = (char)(0x80u | (cp & 0x3Fu));
    } else {
        *w++ = (char)(0xF0u | (cp >> 18));
        *w++ = (char)(0x80u | ((cp >> 12) & 0x3Fu));
        *w++ = (char)(0x80u | ((cp >> 6) & 0x3Fu));
        *w++ = (char)(0x80u | (cp & 0x3Fu));
    }
    return w;
}

/* Length of the valid UTF-8 sequence at p (at most avail bytes), or 0. */
size_t bp_utf8_seq(const unsigned char *p, size_t avail, uint32_t *cp)
{
    size_t n, i;
    uint32_t v, min;
    if (avail == 0u) return 0;
    if (p[0] < 0x80u) { *cp = p[0]; return 1; }
    if (p[0] >= 0xC2u && p[0] <= 0xDFu) { n = 2; v = p[0] & 0x1Fu; min = 0x80u; }
    else if (p[0] >= 0xE0u && p[0] <= 0xEFu) { n = 3; v = p[0] & 0x0Fu; min = 0x800u; }
    else if (p[0] >= 0xF0u && p[0] <= 0xF4u) { n = 4; v = p[0] & 0x07u; min = 0x10000u; }
    else return 0;
    if (avail < n) return 0;
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xC0u) != 0x80u) return 0;
        v = (v << 6) | (p[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFFu || (v >= 0xD800u && v <= 0xDFFFu)) return 0;
    *cp = v;
    return n;
}

int bp_jr_string(bp_jr *r, bp_str *out)
{
    char *w;
    if (bp_jr_expect(r, '"') != 0) return -1;
    w = r->p;
    out->s = w;
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            out->len = (size_t)(w - out->s);
            r->p++;
            *w = '\0';
            return 0;
        }
        if (c < 0x20u) return -1;
        if (c == '\\') {
            uint32_t cp;
            if (r->end - r->p < 2) return -1;
            c = (unsigned char)r->p[1];
            r->p += 2;
            switch (c) {
            case '"': *w++ = '"'; break;
            case '\\': *w++ = '\\'; break;
            case '/': *w++ = '/'; break;
            case 'b': *w++ = '\b'; break;
            case 'f': *w++ = '\f'; break;
            case 'n': *w++ = '\n'; break;
            case 'r': *w++ = '\r'; break;
            case 't': *w++ = '\t'; break;
            case 'u':
                if (r->end - r->p < 4 || hex4(r->p, &cp) != 0) return -1;
                r->p += 4;
                if (cp >= 0xDC00u && cp <= 0xDFFFu) return -1;
                if (cp >= 0xD800u && cp <= 0xDBFFu) {
                    uint32_t lo;
                    if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || hex4(r->p + 2, &lo) != 0) return -1;
                    if (lo < 0xDC00u || lo > 0xDFFFu) return -1;
                    r->p += 6;
                    cp = 0x10000u + ((cp - 0xD800u) << 10) + (lo - 0xDC00u);
                }
                if (cp == 0u) return -1; /* strings are NUL-terminated in place */
                w = put_utf8(w, cp);
                break;
            default: return -1;
            }
        } else {
            uint32_t cp;
            size_t n = bp_utf8_seq((const unsigned char *)r->p, (size_t)(r->end - r->p), &cp);
            if (n == 0u) return -1;
            memmove(w, r->p, n);
            w += n;
            r->p += n;
        }
    }
    return -1;
}

int bp_jr_number(bp_jr *r, int *is_uint32, uint32_t *value)
{
    uint64_t mant = 0;
    long exp10 = 0, e = 0, pending = 0;
    int neg = 0, big = 0, eneg = 0, digits = 0;
    ws(r);
    if (r->p < r->end && *r->p == '-') { neg = 1; r->p++; }
    if (r->p >= r->end || *r->p < '0' || *r->p > '9') return -1;
    if (*r->p == '0') {
        r->p++;
    } else {
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
            int d = *r->p++ - '0';
            if (mant < 100000000000000000ull) mant = mant * 10u + (uint64_t)d;
            else { exp10++; if (d != 0) big = 1; }
        }
    }
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
            int d = *r->p++ - '0';
            digits++;
            if (d == 0) { pending++; continue; }
            for (; pending > 0; pending--) {
                if (mant >= 100000000000000000ull) big = 1; else mant *= 10u;
                exp10--;
            }
            if (mant >= 100000000000000000ull) big = 1; else mant = mant * 10u + (uint64_t)d;
            exp10--;
        }
        if (digits == 0) return -1;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-')) eneg = (*r->p++ == '-');
        if (r->p >= r->end || *r->p < '0' || *r->p > '9') return -1;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
            if (e < 100000L) e = e * 10 + (*r->p - '0');
            r->p++;
        }
        exp10 += eneg ? -e : e;
    }
    *is_uint32 = 0;
    *value = 0;
    if (mant == 0u && !big) { *is_uint32 = 1; return 0; }
    while (mant % 10u == 0u) { mant /= 10u; exp10++; }
    if (big || neg || exp10 < 0 || exp10 > 9) return 0;
    while (exp10-- > 0) mant *= 10u;
    if (mant <= 0xFFFFFFFFu) { *is_uint32 = 1; *value = (uint32_t)mant; }
    return 0;
}

/* Any value, checked and skipped (the x- fields). */
static int skip_value(bp_jr *r, int depth)
{
    int c = bp_jr_peek(r);
    bp_str s;
    if (depth > MAX_DEPTH) return -1;
    if (c == '"') return bp_jr_string(r, &s);
    if (c == 't') return lit(r, "true");
    if (c == 'f') return lit(r, "false");
    if (c == 'n') return lit(r, "null");
    if (c == '[' || c == '{') {
        char close = c == '[' ? ']' : '}';
        r->p++;
        if (bp_jr_peek(r) == (unsigned char)close) { r->p++; return 0; }
        for (;;) {
            if (c == '{' && (bp_jr_string(r, &s) != 0 || bp_jr_expect(r, ':') != 0)) return -1;
            if (skip_value(r, depth + 1) != 0) return -1;
            if (bp_jr_peek(r) == ',') { r->p++; continue; }
            return bp_jr_expect(r, close);
        }
    }
    {
        int is_int;
        uint32_t v;
        return bp_jr_number(r, &is_int, &v);
    }
}

int bp_jr_skip(bp_jr *r)
{
    return skip_value(r, 1);
}

int bp_jr_null(bp_jr *r)
{
    if (bp_jr_peek(r) == 'n') return lit(r, "null");
    return 1;
}

int bp_jr_bool(bp_jr *r, int *v)
{
    int c = bp_jr_peek(r);
    if (c == 't') { *v = 1; return lit(r, "true"); }
    if (c == 'f') { *v = 0; return lit(r, "false"); }
    return -1;
}

/* ---- writer ---- */

void bp_jw_raw(bp_jw *w, const char *s, size_t n)
{
    if (w->err || n > w->cap - w->len) { w->err = 1; return; }
    memcpy(w->out + w->len, s, n);
    w->len += n;
}

void bp_jw_lit(bp_jw *w, const char *s)
{
    bp_jw_raw(w, s, strlen(s));
}

void bp_jw_str(bp_jw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    bp_jw_raw(w, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        switch (c) {
        case '"': bp_jw_raw(w, "\\\"", 2); break;
        case '\\': bp_jw_raw(w, "\\\\", 2); break;
        case '\n': bp_jw_raw(w, "\\n", 2); break;
        case '\r': bp_jw_raw(w, "\\r", 2); break;
        case '\t': bp_jw_raw(w, "\\t", 2); break;
        case '\b': bp_jw_raw(w, "\\b", 2); break;
        case '\f': bp_jw_raw(w, "\\f", 2); break;
        case '@': bp_jw_raw(w, "\\u0040", 6); break;
        default:
            if (c < 0x20u) {
                esc[0] = '\\'; esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
                esc[4] = hex[c >> 4]; esc[5] = hex[c & 15u];
                bp_jw_raw(w, esc, 6);
            } else {
                bp_jw_raw(w, (const char *)&s[i], 1);
            }
        }
    }
    bp_jw_raw(w, "\"", 1);
}

void bp_jw_u32(bp_jw *w, uint32_t v)
{
    char d[10];
    size_t k = 0;
    do { d[k++] = (char)('0' + v % 10u); v /= 10u; } while (v != 0u);
    while (k > 0u) bp_jw_raw(w, &d[--k], 1);
}

void bp_jw_key(bp_jw *w, const char *key)
{
    if (w->len > 0u && w->out[w->len - 1u] != '{' && w->out[w->len - 1u] != '[') bp_jw_raw(w, ",", 1);
    bp_jw_str(w, key, strlen(key));
    bp_jw_raw(w, ":", 1);
}
