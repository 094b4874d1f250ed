/* Internal to the kit: shared between the codec's files. */
#ifndef BP_INTERNAL_H
#define BP_INTERNAL_H

#include "bp_codec.h"

/* Decodes the JSON body of m->type in place (body[0..len) is changed); NULL when valid, else why not. */
const char *bp_decode_body(bp_msg *m, char *body, size_t len);
/* Writes the compact JSON body of m into out; returns its length, 0 when it does not fit or a field is invalid. */
size_t bp_encode_body(const bp_msg *m, char *out, size_t cap);
/* Writes "@1 TYPE len " into out (BP_MAX_HEADER bytes at most); returns its length. */
size_t bp_fmt_header(char *out, const char *type, size_t body_len);

#endif
