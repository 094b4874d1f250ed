/* Internal: the JSON reader (in place) and writer used by the message codec. */
#ifndef BP_JSON_H
#define BP_JSON_H

#include "bp_codec.h"

typedef struct bp_jr {
    char *p, *end;
} bp_jr;

int bp_jr_peek(bp_jr *r);
int bp_jr_expect(bp_jr *r, char c);
/* A string, unescaped in place and NUL-terminated there; checks UTF-8; refuses \u0000. */
int bp_jr_string(bp_jr *r, bp_str *out);
/* A number; *is_uint32 when its value is a whole number in 0..2^32-1 (1, 1.0 and 1e0 alike). */
int bp_jr_number(bp_jr *r, int *is_uint32, uint32_t *value);
int bp_jr_bool(bp_jr *r, int *v);
/* 0: a null was read; 1: the next value is not null; -1: broken. */
int bp_jr_null(bp_jr *r);
int bp_jr_skip(bp_jr *r);
size_t bp_utf8_seq(const unsigned char *p, size_t avail, uint32_t *cp);

typedef struct bp_jw {
    char *out;
    size_t len, cap;
    int err;
} bp_jw;

void bp_jw_raw(bp_jw *w, const char *s, size_t n);
void bp_jw_lit(bp_jw *w, const char *s);
void bp_jw_str(bp_jw *w, const char *s, size_t n);
void bp_jw_u32(bp_jw *w, uint32_t v);
void bp_jw_key(bp_jw *w, const char *key);

#endif
