/* Standard base64 (RFC 4648 section 4), padded; the decoder accepts only the canonical form. */
#include "bp_codec.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t bp_b64_len(size_t n)
{
    return (n + 2u) / 3u * 4u;
}

size_t bp_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t i = 0, o = 0;
    if (bp_b64_len(n) > cap) {
        return 0;
    }
    for (; i + 3u <= n; i += 3u) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1u] << 8) | in[i + 2u];
        out[o++] = alphabet[(v >> 18) & 63u];
        out[o++] = alphabet[(v >> 12) & 63u];
        out[o++] = alphabet[(v >> 6) & 63u];
        out[o++] = alphabet[v & 63u];
    }
    if (n - i == 1u) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[(v >> 18) & 63u];
        out[o++] = alphabet[(v >> 12) & 63u];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2u) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1u] << 8);
        out[o++] = alphabet[(v >> 18) & 63u];
        out[o++] = alphabet[(v >> 12) & 63u];
        out[o++] = alphabet[(v >> 6) & 63u];
        out[o++] = '=';
    }
    return o;
}

static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int bp_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t i, o = 0, pad = 0;
    if (n == 0u || n % 4u != 0u) {
        return -1;
    }
    if (in[n - 1u] == '=') pad++;
    if (in[n - 2u] == '=') pad++;
    if (n / 4u * 3u - pad > cap) {
        return -1;
    }
    for (i = 0; i < n; i += 4u) {
        int last = (i + 4u == n);
        int a = sextet(in[i]), b = sextet(in[i + 1u]);
        int c = (last && pad == 2u) ? 0 : sextet(in[i + 2u]);
        int d = (last && pad >= 1u) ? 0 : sextet(in[i + 3u]);
        uint32_t v;
        if (a < 0 || b < 0 || c < 0 || d < 0) {
            return -1;
        }
        v = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6) | (uint32_t)d;
        out[o++] = (uint8_t)(v >> 16);
        if (last && pad == 2u) {
            if ((v & 0xFFFFu) != 0u) return -1; /* unused bits must be zero */
            break;
        }
        out[o++] = (uint8_t)(v >> 8);
        if (last && pad == 1u) {
            if ((v & 0xFFu) != 0u) return -1;
            break;
        }
        out[o++] = (uint8_t)v;
    }
    *out_len = o;
    return 0;
}
