/* The seven message bodies (spec 3): strict decoding in place, and compact encoding in the spec's field order. */
#include "bp_internal.h"
#include "bp_json.h"

#include <string.h>

#define MAX_FIELDS 24

/* ---- field checks (spec 3.1) ---- */

static int is_text64(const bp_str *v)
{
    size_t i;
    if (v->s == NULL || v->len < 1u || v->len > 64u) return 0;
    for (i = 0; i < v->len; i++) {
        if ((unsigned char)v->s[i] < 0x20u || (unsigned char)v->s[i] > 0x7Eu) return 0;
    }
    return 1;
}

static int alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int bp_is_serial(const char *s, size_t len)
{
    size_t i;
    if (s == NULL || len < 1u || len > 64u || !alnum(s[0])) return 0;
    for (i = 1; i < len; i++) {
        if (!alnum(s[i]) && s[i] != '.' && s[i] != ':' && s[i] != '-') return 0;
    }
    return 1;
}

int bp_is_sha256hex(const char *s, size_t len)
{
    size_t i;
    if (s == NULL || len != 64u) return 0;
    for (i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    }
    return 1;
}

static int is_code(const bp_str *v, size_t max)
{
    size_t i;
    if (v->s == NULL || v->len < 1u || v->len > max) return 0;
    for (i = 0; i < v->len; i++) {
        char c = v->s[i];
        if (c == '-') {
            if (i == 0u || i + 1u == v->len || v->s[i - 1u] == '-') return 0;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return 0;
        }
    }
    return 1;
}

/* 0..512 (min..) Unicode characters, none of them a control character (C0, DEL, C1). */
static int is_human_text(const bp_str *v, size_t min)
{
    size_t i = 0, chars = 0;
    if (v->s == NULL) return 0;
    while (i < v->len) {
        uint32_t cp;
        size_t n = bp_utf8_seq((const unsigned char *)v->s + i, v->len - i, &cp);
        if (n == 0u || cp < 0x20u || (cp >= 0x7Fu && cp <= 0x9Fu)) return 0;
        i += n;
        chars++;
    }
    return chars >= min && chars <= 512u;
}

static int is_b64_char(char c)
{
    return alnum(c) || c == '+' || c == '/' || c == '=';
}

/* The CHAIN pattern: 1-8 blocks of BEGIN line, base64 lines of 1-64 characters, END line, all ending in LF. */
int bp_is_pem_chain(const char *s, size_t len)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----\n";
    static const char end[] = "-----END CERTIFICATE-----\n";
    size_t i = 0, blocks = 0;
    while (i < len) {
        size_t lines = 0;
        if (++blocks > 8u || len - i < sizeof begin - 1u || memcmp(s + i, begin, sizeof begin - 1u) != 0) return 0;
        i += sizeof begin - 1u;
        while (i < len && s[i] != '-') {
            size_t n = 0;
            while (i + n < len && is_b64_char(s[i + n])) n++;
            if (n < 1u || n > 64u || i + n >= len || s[i + n] != '\n') return 0;
            i += n + 1u;
            lines++;
        }
        if (lines == 0u || len - i < sizeof end - 1u || memcmp(s + i, end, sizeof end - 1u) != 0) return 0;
        i += sizeof end - 1u;
    }
    return blocks > 0u;
}

/* ---- decoding ---- */

typedef struct keyrec {
    const char *s;
    size_t len;
} keyrec;

static int key_is(const bp_str *k, const char *name)
{
    return k->len == strlen(name) && memcmp(k->s, name, k->len) == 0;
}

/* A required or optional string field; 1 when present, 0 when null, -1 when broken. */
static int str_field(bp_jr *r, bp_str *out)
{
    int n = bp_jr_null(r);
    if (n <= 0) return n == 0 ? 0 : -1;
    return bp_jr_string(r, out) == 0 ? 1 : -1;
}

static int uint_field(bp_jr *r, int *has, uint32_t *out)
{
    int n = bp_jr_null(r), is_int;
    if (n == 0) return 0;
    if (n < 0 || bp_jr_number(r, &is_int, out) != 0 || !is_int) return -1;
    *has = 1;
    return 1;
}

static const char *key_types_field(bp_jr *r, bp_welcome *w)
{
    size_t i;
    if (bp_jr_expect(r, '[') != 0) return "key_types is not an array";
    if (bp_jr_peek(r) == ']') return "key_types is empty";
    for (;;) {
        bp_str *k;
        if (w->n_key_types >= BP_MAX_KEY_TYPES) return "key_types holds more than 16 names";
        k = &w->key_types[w->n_key_types];
        if (bp_jr_string(r, k) != 0 || !is_code(k, 32u)) return "key_types holds a name that is not a code";
        for (i = 0; i < w->n_key_types; i++) {
            if (w->key_types[i].len == k->len && memcmp(w->key_types[i].s, k->s, k->len) == 0) {
                return "key_types holds a name twice";
            }
        }
        w->n_key_types++;
        if (bp_jr_peek(r) == ',') { r->p++; continue; }
        return bp_jr_expect(r, ']') == 0 ? NULL : "key_types is not an array of strings";
    }
}

/* One known field of m's type; returns NULL, or why the body is invalid. *known is 0 for an unknown name. */
static const char *field(bp_msg *m, const bp_str *k, bp_jr *r, unsigned *have, int *known)
{
    int got = -2;
    *known = 1;
    switch (m->type) {
    case BP_MSG_HELLO:
        if (key_is(k, "protocol")) {
            int has = 0;
            got = uint_field(r, &has, &m->u.hello.protocol);
            if (got == 0) return "protocol is null";
            *have |= 1u;
        } else if (key_is(k, "model")) { got = str_field(r, &m->u.hello.model); *have |= 2u; }
        else if (key_is(k, "firmware")) { got = str_field(r, &m->u.hello.firmware); *have |= 4u; }
        else if (key_is(k, "serial")) got = str_field(r, &m->u.hello.serial);
        else if (key_is(k, "revision")) got = uint_field(r, &m->u.hello.has_revision, &m->u.hello.revision);
        break;
    case BP_MSG_WELCOME:
        if (key_is(k, "station")) { got = str_field(r, &m->u.welcome.station); *have |= 1u; }
        else if (key_is(k, "key_types")) {
            const char *why = key_types_field(r, &m->u.welcome);
            if (why != NULL) return why;
            *have |= 2u;
            return NULL;
        }
        else if (key_is(k, "serial")) got = str_field(r, &m->u.welcome.serial);
        else if (key_is(k, "serial_source")) got = str_field(r, &m->u.welcome.serial_source);
        else if (key_is(k, "revision")) got = uint_field(r, &m->u.welcome.has_revision, &m->u.welcome.revision);
        break;
    case BP_MSG_CSR:
        if (key_is(k, "csr")) { got = str_field(r, &m->u.csr.b64); *have |= 1u; }
        break;
    case BP_MSG_CHAIN:
        if (key_is(k, "serial")) { got = str_field(r, &m->u.chain.serial); *have |= 1u; }
        else if (key_is(k, "chain")) { got = str_field(r, &m->u.chain.chain); *have |= 2u; }
        else if (key_is(k, "sha256")) { got = str_field(r, &m->u.chain.sha256); *have |= 4u; }
        break;
    case BP_MSG_STORED:
        if (key_is(k, "sha256")) { got = str_field(r, &m->u.sha256); *have |= 1u; }
        break;
    case BP_MSG_DONE:
        if (key_is(k, "serial")) { got = str_field(r, &m->u.serial); *have |= 1u; }
        break;
    case BP_MSG_ERROR:
        if (key_is(k, "code")) { got = str_field(r, &m->u.error.code); *have |= 1u; }
        else if (key_is(k, "message")) { got = str_field(r, &m->u.error.message); *have |= 2u; }
        else if (key_is(k, "hint")) { got = str_field(r, &m->u.error.hint); *have |= 4u; }
        else if (key_is(k, "retryable")) {
            if (bp_jr_bool(r, &m->u.error.retryable) != 0) return "retryable is not a boolean";
            *have |= 8u;
            return NULL;
        }
        break;
    case BP_MSG_NONE:
        break;
    }
    if (got == -2) {
        *known = 0;
        return NULL;
    }
    return got < 0 ? "a field has the wrong type" : NULL;
}

static const char *check_fields(bp_msg *m, unsigned have)
{
    switch (m->type) {
    case BP_MSG_HELLO: {
        bp_hello *h = &m->u.hello;
        if (have != 7u) return "HELLO needs protocol, model and firmware";
        if (h->protocol != BP_PROTOCOL_VERSION) return "protocol is not 1";
        if (!is_text64(&h->model)) return "model is not 1-64 printable ASCII";
        if (!is_text64(&h->firmware)) return "firmware is not 1-64 printable ASCII";
        if (h->serial.s != NULL && !bp_is_serial(h->serial.s, h->serial.len)) return "serial is not a serial";
        return NULL;
    }
    case BP_MSG_WELCOME: {
        bp_welcome *w = &m->u.welcome;
        if (have != 3u) return "WELCOME needs station and key_types";
        if (!is_text64(&w->station)) return "station is not 1-64 printable ASCII";
        if (w->serial.s != NULL && !bp_is_serial(w->serial.s, w->serial.len)) return "serial is not a serial";
        if (w->serial_source.s != NULL && strcmp(w->serial_source.s, "station") != 0 &&
            strcmp(w->serial_source.s, "device") != 0) {
            return "serial_source is neither station nor device";
        }
        return NULL;
    }
    case BP_MSG_CSR: {
        bp_csr *c = &m->u.csr;
        size_t n;
        if (have != 1u) return "CSR needs csr";
        if (c->b64.len < 4u || bp_b64_decode(c->b64.s, c->b64.len, (uint8_t *)c->b64.s, c->b64.len, &n) != 0) {
            return "csr is not canonical padded base64";
        }
        c->der = (const uint8_t *)c->b64.s;
        c->der_len = n;
        c->b64.s = NULL;
        c->b64.len = 0;
        return NULL;
    }
    case BP_MSG_CHAIN: {
        bp_chain *c = &m->u.chain;
        if (have != 7u) return "CHAIN needs serial, chain and sha256";
        if (!bp_is_serial(c->serial.s, c->serial.len)) return "serial is not a serial";
        if (!bp_is_pem_chain(c->chain.s, c->chain.len)) return "chain is not 1-8 PEM CERTIFICATE blocks";
        if (!bp_is_sha256hex(c->sha256.s, c->sha256.len)) return "sha256 is not 64 lowercase hex digits";
        return NULL;
    }
    case BP_MSG_STORED:
        if (have != 1u || !bp_is_sha256hex(m->u.sha256.s, m->u.sha256.len)) return "sha256 is missing or not hex";
        return NULL;
    case BP_MSG_DONE:
        if (have != 1u || !bp_is_serial(m->u.serial.s, m->u.serial.len)) return "serial is missing or not a serial";
        return NULL;
    case BP_MSG_ERROR: {
        bp_error_msg *e = &m->u.error;
        if (have != 15u) return "ERROR needs code, message, hint and retryable";
        if (!is_code(&e->code, 64u)) return "code is not kebab-case";
        if (!is_human_text(&e->message, 1u)) return "message is not 1-512 characters without controls";
        if (!is_human_text(&e->hint, 0u)) return "hint is not 0-512 characters without controls";
        return NULL;
    }
    case BP_MSG_NONE:
        break;
    }
    return "no such message";
}

const char *bp_decode_body(bp_msg *m, char *body, size_t len)
{
    bp_jr r;
    keyrec keys[MAX_FIELDS];
    size_t nkeys = 0, i;
    unsigned have = 0;
    r.p = body;
    r.end = body + len;
    if (bp_jr_expect(&r, '{') != 0) return "the body is not a JSON object";
    if (bp_jr_peek(&r) != '}') {
        for (;;) {
            bp_str k;
            int known;
            const char *why;
            if (bp_jr_string(&r, &k) != 0 || bp_jr_expect(&r, ':') != 0) return "the body is not valid JSON";
            for (i = 0; i < nkeys; i++) {
                if (keys[i].len == k.len && memcmp(keys[i].s, k.s, k.len) == 0) return "a field name appears twice";
            }
            if (nkeys == MAX_FIELDS) return "too many fields";
            keys[nkeys].s = k.s;
            keys[nkeys].len = k.len;
            nkeys++;
            why = field(m, &k, &r, &have, &known);
            if (why != NULL) return why;
            if (!known) {
                if (k.len < 2u || k.s[0] != 'x' || k.s[1] != '-') return "unknown field";
                if (bp_jr_skip(&r) != 0) return "the body is not valid JSON";
            }
            if (bp_jr_peek(&r) == ',') { r.p++; continue; }
            break;
        }
    }
    if (bp_jr_expect(&r, '}') != 0) return "the body is not valid JSON";
    if (bp_jr_peek(&r) != -1) return "text after the JSON object";
    return check_fields(m, have);
}

/* ---- encoding ---- */

static void opt_str(bp_jw *w, const char *key, const bp_str *v)
{
    if (v->s != NULL) {
        bp_jw_key(w, key);
        bp_jw_str(w, v->s, v->len);
    }
}

static void req_str(bp_jw *w, const char *key, const bp_str *v)
{
    if (v->s == NULL) {
        w->err = 1;
        return;
    }
    opt_str(w, key, v);
}

static void encode_csr(bp_jw *w, const bp_csr *c)
{
    bp_jw_key(w, "csr");
    if (c->der == NULL) {
        req_str(w, "", &c->b64); /* never: keeps the writer's error */
        return;
    }
    bp_jw_raw(w, "\"", 1);
    if (!w->err) {
        size_t n = bp_b64_encode(c->der, c->der_len, w->out + w->len, w->cap - w->len);
        if (n == 0u) w->err = 1;
        w->len += n;
    }
    bp_jw_raw(w, "\"", 1);
}

size_t bp_encode_body(const bp_msg *m, char *out, size_t cap)
{
    bp_jw w;
    size_t i;
    w.out = out;
    w.len = 0;
    w.cap = cap;
    w.err = 0;
    bp_jw_raw(&w, "{", 1);
    switch (m->type) {
    case BP_MSG_HELLO:
        bp_jw_key(&w, "protocol");
        bp_jw_u32(&w, m->u.hello.protocol);
        req_str(&w, "model", &m->u.hello.model);
        req_str(&w, "firmware", &m->u.hello.firmware);
        opt_str(&w, "serial", &m->u.hello.serial);
        if (m->u.hello.has_revision) {
            bp_jw_key(&w, "revision");
            bp_jw_u32(&w, m->u.hello.revision);
        }
        break;
    case BP_MSG_WELCOME:
        req_str(&w, "station", &m->u.welcome.station);
        bp_jw_key(&w, "key_types");
        bp_jw_raw(&w, "[", 1);
        for (i = 0; i < m->u.welcome.n_key_types; i++) {
            if (i > 0u) bp_jw_raw(&w, ",", 1);
            bp_jw_str(&w, m->u.welcome.key_types[i].s, m->u.welcome.key_types[i].len);
        }
        bp_jw_raw(&w, "]", 1);
        opt_str(&w, "serial", &m->u.welcome.serial);
        opt_str(&w, "serial_source", &m->u.welcome.serial_source);
        if (m->u.welcome.has_revision) {
            bp_jw_key(&w, "revision");
            bp_jw_u32(&w, m->u.welcome.revision);
        }
        break;
    case BP_MSG_CSR: encode_csr(&w, &m->u.csr); break;
    case BP_MSG_CHAIN:
        req_str(&w, "serial", &m->u.chain.serial);
        req_str(&w, "chain", &m->u.chain.chain);
        req_str(&w, "sha256", &m->u.chain.sha256);
        break;
    case BP_MSG_STORED: req_str(&w, "sha256", &m->u.sha256); break;
    case BP_MSG_DONE: req_str(&w, "serial", &m->u.serial); break;
    case BP_MSG_ERROR:
        req_str(&w, "code", &m->u.error.code);
        req_str(&w, "message", &m->u.error.message);
        req_str(&w, "hint", &m->u.error.hint);
        bp_jw_key(&w, "retryable");
        bp_jw_lit(&w, m->u.error.retryable ? "true" : "false");
        break;
    case BP_MSG_NONE: w.err = 1; break;
    }
    if (m->x_fields.s != NULL && m->x_fields.len > 0u) {
        if (memchr(m->x_fields.s, '@', m->x_fields.len) != NULL) w.err = 1;
        bp_jw_raw(&w, ",", 1);
        bp_jw_raw(&w, m->x_fields.s, m->x_fields.len);
    }
    bp_jw_raw(&w, "}", 1);
    return w.err ? 0u : w.len;
}
