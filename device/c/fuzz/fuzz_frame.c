/*
 * libFuzzer target: arbitrary bytes through the receiver's machine (spec 2.5) and every delimited frame through the
 * decoder (2.6); a frame that decodes is encoded again and must decode to the same type. ASan and UBSan watch.
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
    /* the whole input as one frame, as a line-based receiver would hand it over */
    if (size > 0u && size <= sizeof rx_buf) {
        bp_msg m;
        memcpy(rx_buf, data, size);
        (void)bp_decode_frame(rx_buf, size, &m, NULL);
    }
    return 0;
}
