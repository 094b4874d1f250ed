/*
 * libFuzzer target: arbitrary bytes through the receiver's machine (spec 2.5) and every delimited frame through the
 * decoder (2.6); then the input as a frame without its trailer, given a correct CRC. A frame that decodes is encoded
 * again and must decode to the same type. ASan and UBSan watch.
 */
#include "bp_codec.h"

#include <stdlib.h>
#include <string.h>

static uint8_t rx_buf[BP_MAX_FRAME];
static uint8_t enc_buf[BP_MAX_FRAME + 64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_rx rx;
    size_t i;
    /* small receive buffers too (a device with a smaller chain limit), chosen by the first byte */
    size_t cap = size > 0u && (data[0] & 1u) ? 64u + data[0] : sizeof rx_buf;
    bp_rx_init(&rx, rx_buf, cap);
    for (i = 0; i < size; i++) {
        bp_rx_event ev = bp_rx_byte(&rx, data[i]);
        if (ev == BP_RX_FRAME) {
            bp_msg m;
            bp_decode_info info;
            if (rx.len > cap) abort();
            if (bp_decode_frame(rx.buf, rx.len, &m, &info) == BP_FRAME_OK) {
                size_t n = bp_encode_frame(&m, enc_buf, sizeof enc_buf);
                bp_msg again;
                /* a CSR decodes to DER and re-encodes to base64; every other type keeps its text fields */
                if (n > 0u && bp_decode_frame(enc_buf, n - 1u, &again, NULL) != BP_FRAME_OK) abort();
                if (n > 0u && again.type != m.type) abort();
            }
        }
    }
    /* the input with a correct CRC trailer appended, so that the fuzzer gets past the CRC check (random bytes
       almost never carry a valid CRC) and explores the header and the JSON bodies */
    if (size > 0u && size + 9u <= sizeof rx_buf) {
        static const char hex[] = "0123456789abcdef";
        bp_msg m;
        uint32_t crc;
        size_t k;
        memcpy(rx_buf, data, size);
        rx_buf[size] = ' ';
        crc = bp_crc32_update(0, rx_buf, size + 1u);
        for (k = 0; k < 8u; k++) rx_buf[size + 1u + k] = (uint8_t)hex[(crc >> (28u - 4u * k)) & 15u];
        if (bp_decode_frame(rx_buf, size + 9u, &m, NULL) == BP_FRAME_OK) {
            size_t n = bp_encode_frame(&m, enc_buf, sizeof enc_buf);
            bp_msg again;
            if (n > 0u && (bp_decode_frame(enc_buf, n - 1u, &again, NULL) != BP_FRAME_OK || again.type != m.type)) {
                abort();
            }
        }
    }
    return 0;
}
