/*
 * bp_codec.h - the bench protocol's codec (schemas/bench-protocol.md, protocol 1, revision 1.1): CRC-32, base64,
 * the frame envelope, the receiver's HUNT/FRAME/SKIP machine and the seven messages as strict JSON.
 *
 * Pure C99: no heap, no I/O, no OS calls. Decoding works in place: string fields are unescaped inside the frame
 * buffer and NUL-terminated there, so a decoded message points into the buffer it was decoded from.
 */
#ifndef BP_CODEC_H
#define BP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A frame, from '@' to LF inclusive, is at most this long (spec 2.2). */
#define BP_MAX_FRAME 16384u
/** The protocol version in every frame. */
#define BP_PROTOCOL_VERSION 1u
/** The revision of protocol 1 this kit implements (1 = 1.1). */
#define BP_REVISION 1u
/** WELCOME.key_types holds at most this many names. */
#define BP_MAX_KEY_TYPES 16u
/** The longest header "@1 TYPE 12345 " a frame of ours can have. */
#define BP_MAX_HEADER 26u
/** Frame overhead besides the body: header, space, 8 hex digits, LF. */
#define BP_FRAME_OVERHEAD (BP_MAX_HEADER + 10u)

/* ---- CRC-32/ISO-HDLC (zlib's crc32): bp_crc32_update(0, "123456789", 9) == 0xCBF43926 ---- */
uint32_t bp_crc32_update(uint32_t crc, const uint8_t *p, size_t n);

/* ---- base64, RFC 4648 section 4, padded, canonical ---- */
/** Length of the base64 text for n bytes. */
size_t bp_b64_len(size_t n);
/** Encodes; returns the text length, or 0 when out (cap bytes) is too small. No NUL is written. */
size_t bp_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap);
/** Decodes canonical padded base64 (no whitespace, zero unused bits); returns 0 and *out_len, or -1. out may be in. */
int bp_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);

/* ---- messages ---- */
typedef enum bp_msg_type {
    BP_MSG_NONE = 0,
    BP_MSG_HELLO,
    BP_MSG_WELCOME,
    BP_MSG_CSR,
    BP_MSG_CHAIN,
    BP_MSG_STORED,
    BP_MSG_DONE,
    BP_MSG_ERROR
} bp_msg_type;

/** The wire name ("HELLO" ...), or "?" */
const char *bp_msg_type_name(bp_msg_type t);

/** A string: s is NUL-terminated and len bytes long (s == NULL: absent). */
typedef struct bp_str {
    const char *s;
    size_t len;
} bp_str;

typedef struct bp_hello {
    uint32_t protocol;
    bp_str model, firmware, serial; /* serial optional */
    int has_revision;
    uint32_t revision;
} bp_hello;

typedef struct bp_welcome {
    bp_str station;
    bp_str key_types[BP_MAX_KEY_TYPES];
    size_t n_key_types;
    bp_str serial, serial_source; /* optional */
    int has_revision;
    uint32_t revision;
} bp_welcome;

typedef struct bp_csr {
    bp_str b64;          /* not used by the codec's output: decoding turns the base64 into der in place */
    const uint8_t *der;  /* the DER: decoded in place from the base64 (checked canonical); written as base64 */
    size_t der_len;
} bp_csr;

typedef struct bp_chain {
    bp_str serial, chain, sha256;
} bp_chain;

typedef struct bp_error_msg {
    bp_str code, message, hint;
    int retryable;
} bp_error_msg;

typedef struct bp_msg {
    bp_msg_type type;
    union {
        bp_hello hello;
        bp_welcome welcome;
        bp_csr csr;
        bp_chain chain;
        bp_str sha256; /* STORED */
        bp_str serial; /* DONE */
        bp_error_msg error;
    } u;
    /* Encoding only: raw JSON members appended before the closing brace, e.g. "x-boot-count":3 (no '@'). */
    bp_str x_fields;
} bp_msg;

/* ---- decoding (spec 2.6) ---- */
typedef enum bp_frame_result {
    BP_FRAME_OK = 0,
    BP_FRAME_MALFORMED,         /* frame-malformed */
    BP_FRAME_CRC_MISMATCH,      /* frame-crc-mismatch */
    BP_FRAME_TOO_LARGE,         /* frame-too-large (reported by the receiver, bp_rx) */
    BP_FRAME_UNSUPPORTED_VERSION,
    BP_FRAME_UNKNOWN_TYPE,
    BP_FRAME_MESSAGE_INVALID
} bp_frame_result;

/** The spec's code for a result ("frame-crc-mismatch" ...), "" for BP_FRAME_OK. */
const char *bp_frame_result_code(bp_frame_result r);
/** Whether the result is a frame-level (frame-*) one: retryable, counted towards too-many-frame-errors. */
int bp_frame_result_is_frame_level(bp_frame_result r);

/** Why a frame failed: a fixed text, and for CRC errors both values. */
typedef struct bp_decode_info {
    const char *reason;
    uint32_t crc_trailer, crc_computed;
    uint32_t version;
} bp_decode_info;

/**
 * Checks and decodes one frame: `line` starts at '@' and excludes the delimiter. The body is decoded in place (the
 * bytes of `line` are changed). `info` may be NULL.
 */
bp_frame_result bp_decode_frame(uint8_t *line, size_t len, bp_msg *out, bp_decode_info *info);

/* ---- encoding ---- */
/**
 * Writes the frame for `m` (compact JSON, '@' as \u0040, CRC, LF) into out; returns its length, or 0 when it does
 * not fit in cap bytes or a field cannot be written. Fields are written in the spec's order; optional ones only when
 * present (revision: has_revision).
 */
size_t bp_encode_frame(const bp_msg *m, uint8_t *out, size_t cap);

/* ---- the receiver (spec 2.5) ---- */
typedef enum bp_rx_event {
    BP_RX_NONE = 0,
    BP_RX_FRAME,      /* rx->buf[0..rx->len) is a complete frame (no delimiter) */
    BP_RX_TOO_LARGE,  /* 16,384 bytes without a delimiter: report frame-too-large now */
    BP_RX_OVER_BUFFER /* a frame longer than the buffer (but within the spec's limit) ended: it was dropped */
} bp_rx_event;

typedef struct bp_rx {
    uint8_t *buf;
    size_t cap;      /* bytes of buf used for a frame; BP_MAX_FRAME - 1 or less */
    size_t len;      /* bytes held */
    size_t seen;     /* bytes of the current frame, held or not */
    uint8_t state;   /* HUNT, FRAME, SKIP */
    uint32_t dropped; /* bytes dropped without a report (noise, cut-short frames) */
} bp_rx;

/** cap: the buffer's size; a buffer of BP_MAX_FRAME - 1 bytes or more gives the spec's behaviour exactly. */
void bp_rx_init(bp_rx *rx, uint8_t *buf, size_t cap);
/** Forgets any partial frame; back to HUNT. */
void bp_rx_reset(bp_rx *rx);
/** Takes one byte. After BP_RX_FRAME the frame is buf[0..len) until the next call. */
bp_rx_event bp_rx_byte(bp_rx *rx, uint8_t b);

/* ---- field checks shared with the device ---- */
int bp_is_serial(const char *s, size_t len);
int bp_is_sha256hex(const char *s, size_t len);
/** CHAIN.chain's pattern (spec 3.5): 1-8 PEM CERTIFICATE blocks, base64 lines of 1-64 characters, LF endings. */
int bp_is_pem_chain(const char *s, size_t len);

#ifdef __cplusplus
}
#endif
#endif
