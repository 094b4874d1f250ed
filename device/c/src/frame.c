/* The frame envelope (spec 2.2, 2.4, 2.6) and the receiver's HUNT/FRAME/SKIP machine (spec 2.5). */
#include "bp_codec.h"
#include "bp_internal.h"

#include <string.h>

enum { RX_HUNT = 0, RX_FRAME = 1, RX_SKIP = 2 };

static const char *const type_names[] = {"?", "HELLO", "WELCOME", "CSR", "CHAIN", "STORED", "DONE", "ERROR"};

const char *bp_msg_type_name(bp_msg_type t)
{
    if ((unsigned)t < sizeof type_names / sizeof type_names[0]) {
        return type_names[t];
    }
    return "?";
}

const char *bp_frame_result_code(bp_frame_result r)
{
    switch (r) {
    case BP_FRAME_OK: return "";
    case BP_FRAME_MALFORMED: return "frame-malformed";
    case BP_FRAME_CRC_MISMATCH: return "frame-crc-mismatch";
    case BP_FRAME_TOO_LARGE: return "frame-too-large";
    case BP_FRAME_UNSUPPORTED_VERSION: return "unsupported-version";
    case BP_FRAME_UNKNOWN_TYPE: return "unknown-message-type";
    case BP_FRAME_MESSAGE_INVALID: return "message-invalid";
    }
    return "message-invalid";
}

int bp_frame_result_is_frame_level(bp_frame_result r)
{
    return r == BP_FRAME_MALFORMED || r == BP_FRAME_CRC_MISMATCH || r == BP_FRAME_TOO_LARGE;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void set_reason(bp_decode_info *info, const char *reason)
{
    if (info != NULL) {
        info->reason = reason;
    }
}

/* Reads a decimal without leading zeros of 1..max_digits digits ending at a space; advances *pos past the space. */
static int read_decimal(const uint8_t *p, size_t end, size_t *pos, unsigned max_digits, uint32_t *value)
{
    size_t i = *pos;
    unsigned digits = 0;
    uint32_t v = 0;
    while (i < end && p[i] >= '0' && p[i] <= '9') {
        if (++digits > max_digits) return -1;
        v = v * 10u + (uint32_t)(p[i] - '0');
        i++;
    }
    if (digits == 0 || i >= end || p[i] != ' ') return -1;
    if (digits > 1 && p[*pos] == '0') return -1;
    *value = v;
    *pos = i + 1u;
    return 0;
}

bp_frame_result bp_decode_frame(uint8_t *line, size_t len, bp_msg *out, bp_decode_info *info)
{
    size_t pos = 1, type_start, type_len, body_start, body_end, i;
    uint32_t trailer = 0, computed, version, body_len;
    memset(out, 0, sizeof *out);
    set_reason(info, "");
    /* 1: size and trailer shape */
    if (len < 11u || line[0] != '@' || line[len - 9u] != ' ') {
        set_reason(info, "the frame is too short or has no CRC trailer");
        return BP_FRAME_MALFORMED;
    }
    for (i = len - 8u; i < len; i++) {
        int h = hexval(line[i]);
        if (h < 0) {
            set_reason(info, "the CRC trailer is not 8 hex digits");
            return BP_FRAME_MALFORMED;
        }
        trailer = (trailer << 4) | (uint32_t)h;
    }
    /* 2: CRC over everything up to and including the space before the trailer */
    computed = bp_crc32_update(0, line, len - 8u);
    if (info != NULL) {
        info->crc_trailer = trailer;
        info->crc_computed = computed;
    }
    if (computed != trailer) {
        set_reason(info, "frame CRC mismatch");
        return BP_FRAME_CRC_MISMATCH;
    }
    /* 3, 4: version */
    if (read_decimal(line, len - 9u, &pos, 9u, &version) != 0) {
        set_reason(info, "the version is not a decimal number without leading zeros");
        return BP_FRAME_MALFORMED;
    }
    if (info != NULL) info->version = version;
    if (version != BP_PROTOCOL_VERSION) {
        set_reason(info, "unsupported protocol version");
        return BP_FRAME_UNSUPPORTED_VERSION;
    }
    /* 5: type and length */
    type_start = pos;
    while (pos < len - 9u && line[pos] >= 'A' && line[pos] <= 'Z') pos++;
    type_len = pos - type_start;
    if (type_len == 0u || type_len > 16u || pos >= len - 9u || line[pos] != ' ') {
        set_reason(info, "the type is not 1-16 capital letters");
        return BP_FRAME_MALFORMED;
    }
    pos++;
    if (read_decimal(line, len - 9u + 1u, &pos, 5u, &body_len) != 0) {
        set_reason(info, "the length is not a decimal of at most 5 digits without leading zeros");
        return BP_FRAME_MALFORMED;
    }
    body_start = pos;
    body_end = len - 9u;
    if (body_start > body_end || body_end - body_start != body_len) {
        set_reason(info, "the length field does not match the body");
        return BP_FRAME_MALFORMED;
    }
    for (i = body_start; i < body_end; i++) {
        if (line[i] == '@' || line[i] == '\r' || line[i] == '\n') {
            set_reason(info, "the body holds a byte a frame may not carry");
            return BP_FRAME_MALFORMED;
        }
    }
    /* 6: type */
    for (i = 1; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (strlen(type_names[i]) == type_len && memcmp(type_names[i], line + type_start, type_len) == 0) {
            out->type = (bp_msg_type)i;
        }
    }
    if (out->type == BP_MSG_NONE) {
        set_reason(info, "unknown message type");
        return BP_FRAME_UNKNOWN_TYPE;
    }
    /* 7: body */
    {
        const char *why = bp_decode_body(out, (char *)line + body_start, body_len);
        if (why != NULL) {
            set_reason(info, why);
            return BP_FRAME_MESSAGE_INVALID;
        }
    }
    return BP_FRAME_OK;
}

size_t bp_encode_frame(const bp_msg *m, uint8_t *out, size_t cap)
{
    /* The body goes where it will stay, after the longest header; the header is then written before it. */
    char header[BP_MAX_HEADER + 1u];
    size_t body_len, head_len, total, i;
    uint32_t crc;
    const char *name = bp_msg_type_name(m->type);
    if (m->type == BP_MSG_NONE || cap < BP_FRAME_OVERHEAD) return 0;
    body_len = bp_encode_body(m, (char *)out + BP_MAX_HEADER, cap - BP_FRAME_OVERHEAD);
    if (body_len == 0u || body_len > 99999u) return 0;
    head_len = bp_fmt_header(header, name, body_len);
    total = head_len + body_len + 10u;
    if (total > cap || total > BP_MAX_FRAME) return 0;
    memmove(out + head_len, out + BP_MAX_HEADER, body_len);
    memcpy(out, header, head_len);
    out[head_len + body_len] = ' ';
    crc = bp_crc32_update(0, out, head_len + body_len + 1u);
    for (i = 0; i < 8u; i++) {
        out[head_len + body_len + 1u + i] = (uint8_t)"0123456789abcdef"[(crc >> (28u - 4u * i)) & 0xFu];
    }
    out[total - 1u] = '\n';
    return total;
}

size_t bp_fmt_header(char *out, const char *type, size_t body_len)
{
    char digits[6];
    size_t n = 0, k = 0, tl = strlen(type);
    out[n++] = '@';
    out[n++] = '1';
    out[n++] = ' ';
    memcpy(out + n, type, tl);
    n += tl;
    out[n++] = ' ';
    do {
        digits[k++] = (char)('0' + body_len % 10u);
        body_len /= 10u;
    } while (body_len != 0u && k < sizeof digits);
    while (k > 0u) out[n++] = digits[--k];
    out[n++] = ' ';
    return n;
}

/* ---- receiver ---- */

void bp_rx_init(bp_rx *rx, uint8_t *buf, size_t cap)
{
    rx->buf = buf;
    rx->cap = cap < BP_MAX_FRAME - 1u ? cap : BP_MAX_FRAME - 1u;
    rx->dropped = 0;
    bp_rx_reset(rx);
}

void bp_rx_reset(bp_rx *rx)
{
    rx->len = 0;
    rx->seen = 0;
    rx->state = RX_HUNT;
}

bp_rx_event bp_rx_byte(bp_rx *rx, uint8_t b)
{
    if (b == '@') {
        if (rx->state == RX_FRAME) rx->dropped += (uint32_t)rx->seen;
        rx->state = RX_FRAME;
        rx->buf[0] = '@';
        rx->len = 1;
        rx->seen = 1;
        return BP_RX_NONE;
    }
    switch (rx->state) {
    case RX_HUNT:
        if (b != '\r' && b != '\n') rx->dropped++;
        return BP_RX_NONE;
    case RX_SKIP:
        if (b == '\r' || b == '\n') rx->state = RX_HUNT;
        return BP_RX_NONE;
    default:
        break;
    }
    if (b == '\r' || b == '\n') {
        rx->state = RX_HUNT;
        if (rx->seen > rx->len) { /* longer than our buffer, within the spec's limit */
            rx->dropped += (uint32_t)rx->seen;
            rx->len = 0;
            return BP_RX_OVER_BUFFER;
        }
        return BP_RX_FRAME;
    }
    if (rx->seen >= BP_MAX_FRAME - 1u) {
        rx->state = RX_SKIP;
        rx->len = 0;
        return BP_RX_TOO_LARGE;
    }
    if (rx->len < rx->cap) rx->buf[rx->len++] = b;
    rx->seen++;
    return BP_RX_NONE;
}
