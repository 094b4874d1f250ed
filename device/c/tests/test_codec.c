/*
 * The codec against the spec: every frame between "frames:begin" and "frames:end" in schemas/bench-protocol.md
 * decodes, and re-encoding what was decoded gives the same bytes; then the CRC, the validation order, the JSON rules
 * and the receiver's machine, each with frames built here.
 */
#include "bp_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;

#define CHECK(cond, ...)                                                                                          \
    do {                                                                                                          \
        checks++;                                                                                                 \
        if (!(cond)) {                                                                                            \
            failures++;                                                                                           \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                                \
            printf(__VA_ARGS__);                                                                                  \
            printf("\n");                                                                                         \
        }                                                                                                         \
    } while (0)

static uint8_t work[BP_MAX_FRAME + 64];
static uint8_t out[BP_MAX_FRAME + 64];

/* Builds "@1 TYPE len body crc\n" around a raw body, as the spec's section 10 does, without the codec's encoder. */
static size_t raw_frame(const char *version, const char *type, const char *body, uint8_t *dst)
{
    int n = sprintf((char *)dst, "@%s %s %u %s ", version, type, (unsigned)strlen(body), body);
    uint32_t crc = bp_crc32_update(0, dst, (size_t)n);
    n += sprintf((char *)dst + n, "%08lx\n", (unsigned long)crc);
    return (size_t)n;
}

static bp_frame_result decode_raw(const char *type, const char *body, bp_msg *m)
{
    size_t n = raw_frame("1", type, body, work);
    return bp_decode_frame(work, n - 1u, m, NULL);
}

/* One frame of section 7: decode, re-encode (with its x- fields), compare. */
static void spec_frame(const char *line, size_t len)
{
    bp_msg m;
    bp_frame_result r;
    size_t n;
    static char copy[BP_MAX_FRAME];
    const char *x;
    memcpy(copy, line, len);
    copy[len] = '\0';
    line = copy;
    x = strstr(line, ",\"x-");
    memcpy(work, line, len);
    r = bp_decode_frame(work, len, &m, NULL);
    CHECK(r == BP_FRAME_OK, "spec frame does not decode (%s): %.60s", bp_frame_result_code(r), line);
    if (r != BP_FRAME_OK) return;
    if (x != NULL && x < line + len) {
        m.x_fields.s = x + 1;
        m.x_fields.len = (size_t)(strrchr(line, '}') - (x + 1));
    }
    n = bp_encode_frame(&m, out, sizeof out);
    if (strstr(line, "\"protocol\":1.0") != NULL) {
        /* the one frame whose body is not what a sender writes: "protocol":1.0 is read as 1, written as 1 */
        CHECK(m.u.hello.protocol == 1u && n == len - 1u, "protocol 1.0 frame");
        return;
    }
    CHECK(n == len + 1u && memcmp(out, line, len) == 0 && out[len] == '\n', "re-encoded differs: %.*s", (int)n,
          (const char *)out);
}

static void section7(const char *spec_path)
{
    FILE *f = fopen(spec_path, "rb");
    static char text[200000];
    size_t n, frames = 0;
    char *p, *end;
    int inside = 0;
    CHECK(f != NULL, "cannot open %s", spec_path);
    if (f == NULL) return;
    n = fread(text, 1, sizeof text - 1u, f);
    fclose(f);
    text[n] = '\0';
    for (p = text; p < text + n; p = end + 1) {
        end = strchr(p, '\n');
        if (end == NULL) end = text + n;
        if (strncmp(p, "<!-- frames:begin -->", 21) == 0) inside = 1;
        if (strncmp(p, "<!-- frames:end -->", 19) == 0) inside = 0;
        if (inside && p[0] == '@') {
            spec_frame(p, (size_t)(end - p));
            frames++;
        }
    }
    CHECK(frames >= 19u, "only %u frames found in section 7", (unsigned)frames);
    printf("section 7: %u frames decoded and re-encoded\n", (unsigned)frames);
}

static void crc_and_examples(void)
{
    const char *damaged = "@1 HELLO 58 {\"protocol\":1,\"model\":\"acmg-sensor-v2\",\"firmware\":\"1.4.2\"} 7e5a85ef";
    bp_msg m;
    bp_decode_info info;
    size_t n;
    CHECK(bp_crc32_update(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u, "check value");
    CHECK(bp_crc32_update(bp_crc32_update(0, (const uint8_t *)"1234", 4), (const uint8_t *)"56789", 5) ==
              0xCBF43926u, "incremental");
    memcpy(work, damaged, strlen(damaged));
    CHECK(bp_decode_frame(work, strlen(damaged), &m, &info) == BP_FRAME_CRC_MISMATCH, "damaged HELLO");
    CHECK(info.crc_trailer == 0x7e5a85efu && info.crc_computed == 0x13bfa409u, "the spec's two CRC values");
    /* section 10: the frame typed at a terminal */
    memset(&m, 0, sizeof m);
    m.type = BP_MSG_HELLO;
    m.u.hello.protocol = 1;
    m.u.hello.model.s = "acme-sensor-v2";
    m.u.hello.model.len = 14;
    m.u.hello.firmware.s = "1.4.2";
    m.u.hello.firmware.len = 5;
    n = bp_encode_frame(&m, out, sizeof out);
    CHECK(n == 80u && memcmp(out, "@1 HELLO 58 {\"protocol\":1,\"model\":\"acme-sensor-v2\",\"firmware\":\"1.4.2\"} 7e5a85ef\n",
                             n) == 0, "section 10 frame: %.*s", (int)n, (const char *)out);
    /* an uppercase trailer is accepted */
    n = raw_frame("1", "DONE", "{\"serial\":\"ACME-00001234\"}", work);
    CHECK(memcmp(work + n - 9u, "16a48790", 8) == 0, "DONE crc");
    memcpy(work + n - 9u, "16A48790", 8);
    CHECK(bp_decode_frame(work, n - 1u, &m, NULL) == BP_FRAME_OK, "uppercase CRC digits");
}

static void validation_order(void)
{
    bp_msg m;
    size_t n;
    n = raw_frame("2", "HELLO", "{}", work);
    CHECK(bp_decode_frame(work, n - 1u, &m, NULL) == BP_FRAME_UNSUPPORTED_VERSION, "version 2");
    n = raw_frame("01", "HELLO", "{}", work);
    CHECK(bp_decode_frame(work, n - 1u, &m, NULL) == BP_FRAME_MALFORMED, "leading zero version");
    n = raw_frame("1", "HELLO", "{}", work);
    work[3] = 'J'; /* damaged after the CRC was computed: a CRC error, not a type error */
    CHECK(bp_decode_frame(work, n - 1u, &m, NULL) == BP_FRAME_CRC_MISMATCH, "damaged type");
    CHECK(decode_raw("HELO", "{}", &m) == BP_FRAME_UNKNOWN_TYPE, "unknown type");
    CHECK(decode_raw("hello", "{}", &m) == BP_FRAME_MALFORMED, "lowercase type");
    CHECK(decode_raw("ABCDEFGHIJKLMNOPQ", "{}", &m) == BP_FRAME_MALFORMED, "17-letter type");
    n = (size_t)sprintf((char *)work, "@1 DONE 25 {\"serial\":\"ACME-00001234\"} ");
    n += (size_t)sprintf((char *)work + n, "%08lx", (unsigned long)bp_crc32_update(0, work, n));
    CHECK(bp_decode_frame(work, n, &m, NULL) == BP_FRAME_MALFORMED, "length one short");
    n = (size_t)sprintf((char *)work, "@1 DONE 026 {\"serial\":\"ACME-00001234\"} ");
    n += (size_t)sprintf((char *)work + n, "%08lx", (unsigned long)bp_crc32_update(0, work, n));
    CHECK(bp_decode_frame(work, n, &m, NULL) == BP_FRAME_MALFORMED, "length with a leading zero");
    memcpy(work, "@1 X 0  1234567", 15);
    CHECK(bp_decode_frame(work, 15, &m, NULL) == BP_FRAME_MALFORMED, "trailer of 7 digits");
    CHECK(bp_decode_frame(work, 5, &m, NULL) == BP_FRAME_MALFORMED, "short frame");
    CHECK(decode_raw("STORED", "", &m) == BP_FRAME_MESSAGE_INVALID, "empty body");
}

static void bodies(void)
{
    bp_msg m;
    const char *sha = "110521da86f1a025b43ebe82a6258981e972543b8e91686a5e23cd8c61c24633";
    char body[512];
    CHECK(decode_raw("HELLO", "{\"protocol\":1e0,\"model\":\"m\",\"firmware\":\"f\"}", &m) == BP_FRAME_OK, "1e0");
    CHECK(decode_raw("HELLO", "{\"protocol\":10e-1,\"model\":\"m\",\"firmware\":\"f\"}", &m) == BP_FRAME_OK, "10e-1");
    CHECK(decode_raw("HELLO", "{\"protocol\":1.5,\"model\":\"m\",\"firmware\":\"f\"}", &m) == BP_FRAME_MESSAGE_INVALID,
          "1.5");
    CHECK(decode_raw("HELLO", "{\"protocol\":2,\"model\":\"m\",\"firmware\":\"f\"}", &m) == BP_FRAME_MESSAGE_INVALID,
          "protocol 2");
    CHECK(decode_raw("HELLO", "{\"protocol\":1,\"model\":\"m\\u0040x\",\"firmware\":\"f\",\"serial\":null}", &m) ==
              BP_FRAME_OK && strcmp(m.u.hello.model.s, "m@x") == 0 && m.u.hello.serial.s == NULL,
          "\\u0040 and null");
    CHECK(decode_raw("HELLO", "{\"protocol\":1,\"model\":\"m\",\"firmware\":\"f\",\"serail\":\"A\"}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "unknown field");
    CHECK(decode_raw("HELLO", "{\"protocol\":1,\"model\":\"m\",\"firmware\":\"f\",\"x-a\":{\"b\":[1,null]}}", &m) ==
              BP_FRAME_OK, "x- field with a nested value");
    CHECK(decode_raw("HELLO", "{\"protocol\":1,\"model\":\"m\",\"model\":\"n\",\"firmware\":\"f\"}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "duplicate");
    CHECK(decode_raw("HELLO", "{\"protocol\":1,\"model\":\"m\",\"firmware\":\"f\",\"x-a\":1,\"x-a\":2}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "duplicate x- field");
    CHECK(decode_raw("HELLO", "{\"protocol\":1,\"model\":\"m\",\"firmware\":\"f\",\"serial\":\"-A\"}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "serial starting with -");
    CHECK(decode_raw("HELLO", "{\"protocol\":1,\"model\":\"m\",\"firmware\":\"f\"} x", &m) == BP_FRAME_MESSAGE_INVALID,
          "trailing text");
    CHECK(decode_raw("WELCOME", "{\"station\":\"s\",\"key_types\":[\"ec-p256\",\"ec-p256\"]}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "duplicate key type");
    CHECK(decode_raw("WELCOME", "{\"station\":\"s\",\"key_types\":[]}", &m) == BP_FRAME_MESSAGE_INVALID, "no key type");
    CHECK(decode_raw("WELCOME", "{\"station\":\"s\",\"key_types\":[\"ec-p256\"],\"serial_source\":\"x\"}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "serial_source");
    CHECK(decode_raw("WELCOME", "{\"station\":\"s\",\"key_types\":[\"future-type\",\"ec-p256\"],\"revision\":1}", &m) ==
              BP_FRAME_OK && m.u.welcome.n_key_types == 2u && m.u.welcome.has_revision, "welcome 1.1");
    CHECK(decode_raw("CSR", "{\"csr\":\"MIJ=\"}", &m) == BP_FRAME_MESSAGE_INVALID, "non-canonical base64");
    CHECK(decode_raw("CSR", "{\"csr\":\"MIIB\"}", &m) == BP_FRAME_OK && m.u.csr.der_len == 3u, "base64");
    sprintf(body, "{\"serial\":\"A\",\"chain\":\"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\","
                  "\"sha256\":\"%s\"}", sha);
    CHECK(decode_raw("CHAIN", body, &m) == BP_FRAME_OK && m.u.chain.chain.len == 59u, "chain");
    sprintf(body, "{\"serial\":\"A\",\"chain\":\"-----BEGIN CERTIFICATE-----\\r\\nAAAA\\n-----END CERTIFICATE-----\\n\","
                  "\"sha256\":\"%s\"}", sha);
    CHECK(decode_raw("CHAIN", body, &m) == BP_FRAME_MESSAGE_INVALID, "chain with CR");
    sprintf(body, "{\"sha256\":\"%.63sA\"}", sha);
    CHECK(decode_raw("STORED", body, &m) == BP_FRAME_MESSAGE_INVALID, "uppercase hex");
    CHECK(decode_raw("ERROR", "{\"code\":\"a--b\",\"message\":\"m\",\"hint\":\"\",\"retryable\":true}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "code with --");
    CHECK(decode_raw("ERROR", "{\"code\":\"a\",\"message\":\"\",\"hint\":\"\",\"retryable\":true}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "empty message");
    CHECK(decode_raw("ERROR", "{\"code\":\"a\",\"message\":\"\\u0085\",\"hint\":\"\",\"retryable\":true}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "C1 control in message");
    CHECK(decode_raw("ERROR", "{\"code\":\"a\",\"message\":\"\\ud83d\\ude00 \\u00e9\",\"hint\":\"\",\"retryable\":false}",
                     &m) == BP_FRAME_OK && strcmp(m.u.error.message.s, "\xf0\x9f\x98\x80 \xc3\xa9") == 0,
          "surrogate pair");
    CHECK(decode_raw("ERROR", "{\"code\":\"a\",\"message\":\"\\ud83d\",\"hint\":\"\",\"retryable\":false}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "lone surrogate");
    CHECK(decode_raw("ERROR", "{\"code\":\"a\",\"message\":\"\xc3\x28\",\"hint\":\"\",\"retryable\":false}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "invalid UTF-8");
    CHECK(decode_raw("ERROR", "{\"code\":\"a\",\"message\":\"m\",\"hint\":\"\",\"retryable\":1}", &m) ==
              BP_FRAME_MESSAGE_INVALID, "retryable not a boolean");
}

static void encoder_escapes(void)
{
    bp_msg m;
    size_t n;
    memset(&m, 0, sizeof m);
    m.type = BP_MSG_ERROR;
    m.u.error.code.s = "flash-write-failed";
    m.u.error.code.len = 18;
    m.u.error.message.s = "a@b \"q\" \\ \x01";
    m.u.error.message.len = strlen(m.u.error.message.s);
    m.u.error.hint.s = "";
    m.u.error.retryable = 1;
    n = bp_encode_frame(&m, out, sizeof out);
    CHECK(n > 0u && strstr((char *)out, "a\\u0040b \\\"q\\\" \\\\ \\u0001") != NULL, "escapes: %.*s", (int)n,
          (const char *)out);
    CHECK(memchr(out + 1, '@', n - 1u) == NULL, "one @ per frame");
    CHECK(bp_encode_frame(&m, out, 40) == 0u, "too small a buffer");
}

static int feed(bp_rx *rx, const char *s, size_t n, bp_rx_event *last)
{
    size_t i;
    int frames = 0;
    for (i = 0; i < n; i++) {
        bp_rx_event e = bp_rx_byte(rx, (uint8_t)s[i]);
        if (e != BP_RX_NONE) *last = e;
        if (e == BP_RX_FRAME) frames++;
    }
    return frames;
}

static void receiver(void)
{
    static uint8_t buf[BP_MAX_FRAME];
    static char big[BP_MAX_FRAME + 10];
    bp_rx rx;
    bp_rx_event last = BP_RX_NONE;
    size_t i, reports = 0;
    const char *s = "boot banner\r\n@1 HELLO 5 {abc@1 DONE 2 {} 12345678\r\n";
    bp_rx_init(&rx, buf, sizeof buf);
    CHECK(feed(&rx, s, strlen(s), &last) == 1 && rx.len == 21u && memcmp(rx.buf, "@1 DONE 2 {} 12345678", 21) == 0,
          "noise, restart at @, CR ends");
    CHECK(rx.dropped == 11u + 15u, "dropped count %u", (unsigned)rx.dropped);
    big[0] = '@';
    memset(big + 1, 'a', sizeof big - 2u);
    big[sizeof big - 1u] = '\n';
    bp_rx_reset(&rx);
    for (i = 0; i < sizeof big; i++) {
        bp_rx_event e = bp_rx_byte(&rx, (uint8_t)big[i]);
        if (e == BP_RX_TOO_LARGE) {
            reports++;
            CHECK(i == BP_MAX_FRAME - 1u, "reported at byte %u", (unsigned)(i + 1u));
        }
        CHECK(e != BP_RX_FRAME, "no frame from an oversize line");
    }
    CHECK(reports == 1u, "frame-too-large reported once");
    CHECK(feed(&rx, "@x 1\n", 5, &last) == 1, "the next line is a frame again");
    /* a smaller buffer: a long frame within the spec's limit is dropped at its delimiter */
    bp_rx_init(&rx, buf, 100);
    memset(big, 'b', 300);
    big[0] = '@';
    big[300] = '\n';
    last = BP_RX_NONE;
    CHECK(feed(&rx, big, 301, &last) == 0 && last == BP_RX_OVER_BUFFER, "over the buffer");
}

int main(int argc, char **argv)
{
    section7(argc > 1 ? argv[1] : "../../schemas/bench-protocol.md");
    crc_and_examples();
    validation_order();
    bodies();
    encoder_escapes();
    receiver();
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
