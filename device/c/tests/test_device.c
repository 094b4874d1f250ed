/*
 * The device's state machine (spec 4.3, 5) against a scripted station: an in-memory line, a fake clock and a fake
 * crypto port whose "SHA-256" is a stand-in (the core only compares hex digests). Each scenario checks the frames the
 * device sends, byte for byte where the spec says so.
 */
#include "bp_device.h"

#include <stdio.h>
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

/* ---- the harness ---- */
static uint8_t to_dev[BP_MAX_FRAME * 2];
static size_t to_dev_len, to_dev_pos;
static char sent[32][BP_TX_SIZE];
static size_t sent_len[32];
static int n_sent;
static uint32_t clock_ms;
static char stored[8192];
static long stored_len;
static int provisioned, key_generations, csr_fail, store_fail;
static const char *held_type;
static char csr_cns[64];

static long t_read(void *u, uint8_t *buf, size_t cap)
{
    size_t n = to_dev_len - to_dev_pos;
    (void)u;
    if (n > cap) n = cap;
    memcpy(buf, to_dev + to_dev_pos, n);
    to_dev_pos += n;
    return (long)n;
}
static int t_write(void *u, const uint8_t *buf, size_t n)
{
    (void)u;
    if (n_sent < 32) {
        memcpy(sent[n_sent], buf, n);
        sent[n_sent][n] = '\0';
        sent_len[n_sent++] = n;
    }
    return 0;
}
static uint32_t t_now(void *u)
{
    (void)u;
    return clock_ms;
}
static long t_store(void *u, bp_store_op op, const char *serial, uint8_t *buf, size_t len)
{
    (void)u;
    (void)serial;
    if (op == BP_STORE_WRITE_CHAIN) {
        if (store_fail) return -1;
        memcpy(stored, buf, len);
        stored_len = (long)len;
        return 0;
    }
    if (op == BP_STORE_READ_CHAIN) {
        memcpy(buf, stored, (size_t)stored_len);
        return stored_len;
    }
    provisioned++;
    return 0;
}
static const char *f_key_type(void *c)
{
    (void)c;
    return held_type;
}
static int f_generate(void *c, const char *type)
{
    (void)c;
    if (strcmp(type, "ec-p256") != 0 && strcmp(type, "ec-p384") != 0) return BP_CRYPTO_UNSUPPORTED;
    held_type = strcmp(type, "ec-p256") == 0 ? "ec-p256" : "ec-p384";
    key_generations++;
    return 0;
}
static long f_csr(void *c, const char *cn, uint8_t *out, size_t cap)
{
    (void)c;
    (void)cap;
    strncat(csr_cns, cn, sizeof csr_cns - strlen(csr_cns) - 1u);
    if (csr_fail) return -1;
    memcpy(out, "\x30\x03\x02\x01\x01", 5);
    return 5;
}
static void f_sha(void *c, const uint8_t *p, size_t n, uint8_t d[32])
{
    uint32_t crc = bp_crc32_update(0, p, n);
    size_t i;
    (void)c;
    for (i = 0; i < 32u; i++) d[i] = (uint8_t)(crc >> (8u * (i % 4u))) ^ (uint8_t)i;
}
static bp_chain_check f_check(void *c, const char *pem, size_t len, const char *serial)
{
    (void)c;
    (void)len;
    (void)serial;
    return strstr(pem, "BADKEY") != NULL ? BP_CHAIN_KEY_MISMATCH : BP_CHAIN_OK;
}

static bp_device dev;
static uint8_t buffer[BP_FULL_BUFFER];

static size_t buffer_size = sizeof buffer;

static void setup(const char *serial, int rev10)
{
    bp_device_config cfg;
    bp_io io = {NULL, t_read, t_write, t_now, t_store, NULL};
    bp_crypto cr = {NULL, f_key_type, f_generate, f_csr, f_sha, f_check};
    memset(&cfg, 0, sizeof cfg);
    cfg.model = "test-model";
    cfg.firmware = "1.0";
    cfg.serial = serial;
    cfg.revision_1_0 = rev10;
    to_dev_len = to_dev_pos = 0;
    n_sent = 0;
    clock_ms = 1000;
    stored_len = 0;
    provisioned = key_generations = csr_fail = store_fail = 0;
    held_type = NULL;
    csr_cns[0] = '\0';
    CHECK(bp_device_init(&dev, &cfg, &io, &cr, buffer, buffer_size) == 0, "init");
    bp_device_start(&dev);
    bp_device_poll(&dev);
}

static void station_raw(const char *s)
{
    size_t n = strlen(s);
    memcpy(to_dev + to_dev_len, s, n);
    to_dev_len += n;
}

static void station_send(const bp_msg *m)
{
    size_t n = bp_encode_frame(m, to_dev + to_dev_len, sizeof to_dev - to_dev_len);
    CHECK(n > 0u, "station frame encodes");
    to_dev_len += n;
}

static void set(bp_str *s, const char *t)
{
    s->s = t;
    s->len = strlen(t);
}

static void welcome(void)
{
    bp_msg m;
    memset(&m, 0, sizeof m);
    m.type = BP_MSG_WELCOME;
    set(&m.u.welcome.station, "bench-1");
    set(&m.u.welcome.key_types[0], "rsa-4096");
    set(&m.u.welcome.key_types[1], "ec-p256");
    m.u.welcome.n_key_types = 2;
    station_send(&m);
}

static const char *chain_text(int variant)
{
    if (variant == 1) return "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n";
    if (variant == 2) return "-----BEGIN CERTIFICATE-----\nBADKEY\n-----END CERTIFICATE-----\n";
    return "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
}

static void chain(const char *serial, int variant, int wrong_hash)
{
    bp_msg m;
    uint8_t d[32];
    static char hex[65];
    size_t i;
    const char *text = chain_text(variant);
    f_sha(NULL, (const uint8_t *)text, strlen(text), d);
    for (i = 0; i < 32u; i++) sprintf(hex + 2 * i, "%02x", d[i] ^ (wrong_hash ? 1u : 0u));
    memset(&m, 0, sizeof m);
    m.type = BP_MSG_CHAIN;
    set(&m.u.chain.serial, serial);
    set(&m.u.chain.chain, text);
    set(&m.u.chain.sha256, hex);
    station_send(&m);
}

static void done(const char *serial)
{
    bp_msg m;
    memset(&m, 0, sizeof m);
    m.type = BP_MSG_DONE;
    set(&m.u.serial, serial);
    station_send(&m);
}

static void error(const char *code, int retryable, const char *message)
{
    bp_msg m;
    memset(&m, 0, sizeof m);
    m.type = BP_MSG_ERROR;
    set(&m.u.error.code, code);
    set(&m.u.error.message, message);
    set(&m.u.error.hint, "");
    m.u.error.retryable = retryable;
    station_send(&m);
}

static bp_state run(void)
{
    int i;
    bp_state st = BP_ST_IDLE;
    for (i = 0; i < 400; i++) st = bp_device_poll(&dev);
    return st;
}

static int sent_starts(int i, const char *prefix)
{
    return i < n_sent && strncmp(sent[i], prefix, strlen(prefix)) == 0;
}

static int sent_has(int i, const char *text)
{
    return i < n_sent && strstr(sent[i], text) != NULL;
}

/* ---- scenarios ---- */

static void happy_path_at_a_station_that_allocates(void)
{
    setup(NULL, 0);
    CHECK(sent_starts(0, "@1 HELLO ") && sent_has(0, "\"model\":\"test-model\",\"firmware\":\"1.0\",\"revision\":1}"),
          "HELLO 1.1: %s", sent[0]);
    welcome();
    run();
    CHECK(key_generations == 1 && strcmp(held_type, "ec-p256") == 0, "first supported type of the list");
    CHECK(sent_starts(1, "@1 CSR ") && sent_has(1, "{\"csr\":\"MAMCAQE=\"}"), "CSR: %s", sent[1]);
    CHECK(strcmp(csr_cns, "test-model") == 0, "CN is the model without a serial");
    chain("SN-1", 0, 0);
    run();
    CHECK(stored_len == (long)strlen(chain_text(0)) && sent_starts(2, "@1 STORED 77 "), "STORED: %s", sent[2]);
    done("SN-1");
    CHECK(run() == BP_ST_PROVISIONED && provisioned == 1 && strcmp(bp_device_serial(&dev), "SN-1") == 0, "done");
    CHECK(n_sent == 3, "nothing more sent");
    error("timeout", 1, "late");
    CHECK(run() == BP_ST_PROVISIONED && n_sent == 3, "provisioned ignores everything");
}

static void frame_errors_are_resent_then_end_the_session(void)
{
    setup("DEV-1", 0);
    welcome();
    run();
    CHECK(sent_starts(1, "@1 CSR "), "CSR");
    error("frame-crc-mismatch", 1, "bad crc");
    run();
    CHECK(n_sent == 3 && sent_len[2] == sent_len[1] && memcmp(sent[2], sent[1], sent_len[1]) == 0,
          "the CSR re-sent byte for byte");
    station_raw("@1 CHAIN 5 {abc} 00000000\n"); /* damaged: the device asks for a re-send */
    run();
    CHECK(sent_starts(3, "@1 ERROR ") && sent_has(3, "\"code\":\"frame-crc-mismatch\"") && sent_has(3, "true}"),
          "frame-crc-mismatch sent: %s", sent[3]);
    error("frame-malformed", 1, "again");
    run();
    CHECK(sent_has(4, "\"code\":\"too-many-frame-errors\"") && dev.state == BP_ST_BACKOFF,
          "third frame error in a row: %s", sent[4]);
    CHECK(strcmp(bp_device_last_code(&dev), "too-many-frame-errors") == 0, "last code");
}

static void intact_frames_reset_the_frame_error_count(void)
{
    setup("DEV-1", 0);
    station_raw("@1 WELCOME 2 {} 00000000\n");
    run();
    error("frame-crc-mismatch", 1, "x"); /* the device's ERROR is the last frame: re-sent */
    run();
    CHECK(n_sent == 3 && memcmp(sent[2], sent[1], sent_len[1]) == 0, "ERROR re-sent");
    welcome(); /* F = 0 */
    run();
    error("frame-crc-mismatch", 1, "x");
    error("frame-crc-mismatch", 1, "x");
    run();
    CHECK(dev.state == BP_ST_WAIT_CHAIN && n_sent == 6, "two more frame errors are still below the limit: %d", n_sent);
}

static void welcome_timeout_sends_hello_again_forever_and_late_frames_are_ignored(void)
{
    int i;
    setup("DEV-1", 0);
    for (i = 0; i < 7; i++) {
        clock_ms += 5000;
        run();
    }
    CHECK(n_sent == 8 && sent_starts(7, "@1 HELLO ") && dev.failed_sessions == 0, "HELLO again, no failed session");
    chain("DEV-1", 0, 0); /* a CHAIN for a CSR sent before a restart */
    error("timeout", 1, "an earlier session");
    error("unexpected-message", 1, "an earlier session");
    run();
    CHECK(n_sent == 8 && dev.state == BP_ST_WAIT_WELCOME, "ignored, never answered");
}

static void chain_checks_fail_with_their_codes(void)
{
    setup("DEV-1", 0);
    welcome();
    run();
    chain("DEV-1", 0, 1);
    CHECK(run() == BP_ST_STOPPED && sent_has(2, "\"code\":\"chain-hash-mismatch\"") && sent_has(2, "false}") &&
              stored_len == 0, "chain-hash-mismatch: %s", sent[2]);
    setup("DEV-1", 0);
    welcome();
    run();
    chain("DEV-1", 2, 0);
    CHECK(run() == BP_ST_STOPPED && sent_has(2, "\"code\":\"chain-key-mismatch\""), "key mismatch: %s", sent[2]);
    setup("DEV-1", 0);
    welcome();
    run();
    chain("DEV-2", 0, 0);
    CHECK(run() == BP_ST_STOPPED && sent_has(2, "\"code\":\"chain-serial-mismatch\""), "fixed serial: %s", sent[2]);
    setup(NULL, 0);
    welcome();
    run();
    chain("SN-1", 0, 0);
    run();
    done("SN-2");
    CHECK(run() == BP_ST_STOPPED && sent_has(3, "\"code\":\"done-serial-mismatch\"") && provisioned == 0,
          "done-serial-mismatch: %s", sent[3]);
}

static void retries_back_off_and_the_fifth_failed_session_stops(void)
{
    static const uint32_t waits[] = {1000, 2000, 4000, 8000};
    int i;
    setup(NULL, 0);
    for (i = 0; i < 5; i++) {
        int before;
        welcome();
        run();
        error("hsm-busy", 1, "busy");
        run();
        if (i == 4) break;
        CHECK(dev.state == BP_ST_BACKOFF, "back-off %d", i);
        before = n_sent;
        clock_ms += waits[i] - 1u;
        run();
        CHECK(n_sent == before, "no HELLO before %u ms", (unsigned)waits[i]);
        clock_ms += 1u;
        run();
        CHECK(n_sent == before + 1 && sent_starts(n_sent - 1, "@1 HELLO "), "HELLO after %u ms", (unsigned)waits[i]);
    }
    CHECK(dev.state == BP_ST_STOPPED && strcmp(bp_device_last_code(&dev), "hsm-busy") == 0, "stopped at the 5th");
    CHECK(key_generations == 1, "the same key on every retry");
}

static void a_retry_gets_the_same_chain_or_says_chain_not_idempotent(void)
{
    setup(NULL, 0);
    welcome();
    run();
    chain("SN-1", 0, 0);
    run();
    clock_ms += 10000; /* no DONE: a failed session */
    run();
    CHECK(dev.state == BP_ST_BACKOFF, "DONE timeout");
    clock_ms += 1000;
    run();
    welcome();
    run();
    chain("SN-1", 1, 0);
    CHECK(run() == BP_ST_STOPPED && strcmp(bp_device_last_code(&dev), "chain-not-idempotent") == 0, "other chain");
}

static void store_failure_and_non_retryable_errors(void)
{
    setup(NULL, 0);
    welcome();
    run();
    store_fail = 1;
    chain("SN-1", 0, 0);
    CHECK(run() == BP_ST_BACKOFF && sent_has(2, "\"code\":\"flash-write-failed\"") && sent_has(2, "true}"), "%s",
          sent[2]);
    setup("OWN-1", 0);
    error("serial-not-allowed", 0, "this station allocates serials");
    CHECK(run() == BP_ST_STOPPED && n_sent == 1, "not retryable at HELLO: stop, send nothing");
}

static void key_type_refused_makes_a_new_key_and_no_type_stops(void)
{
    bp_msg m;
    setup(NULL, 0);
    held_type = "ec-p384"; /* a key kept from an earlier boot, whatever the list says */
    welcome();
    run();
    CHECK(key_generations == 0 && sent_starts(1, "@1 CSR "), "kept key used");
    error("csr-key-type-not-allowed", 0, "no p384");
    run();
    CHECK(dev.state == BP_ST_BACKOFF, "a failed session, not a stop");
    clock_ms += 1000;
    run();
    welcome();
    run();
    CHECK(key_generations == 1 && strcmp(held_type, "ec-p256") == 0, "new key of the first supported type");
    setup(NULL, 0);
    memset(&m, 0, sizeof m);
    m.type = BP_MSG_WELCOME;
    set(&m.u.welcome.station, "s");
    set(&m.u.welcome.key_types[0], "rsa-4096");
    m.u.welcome.n_key_types = 1;
    station_send(&m);
    CHECK(run() == BP_ST_STOPPED && sent_has(1, "no-acceptable-key-type") && sent_has(1, "false}"), "%s", sent[1]);
}

static void a_1_1_device_speaks_1_0_to_a_1_0_station(void)
{
    setup("DEV-1", 0);
    error("message-invalid", 0, "unknown field `revision`");
    run();
    CHECK(n_sent == 2 && sent_starts(1, "@1 HELLO ") && !sent_has(1, "revision"), "HELLO without revision: %s",
          sent[1]);
    setup("DEV-1", 1);
    CHECK(!sent_has(0, "revision") && sent_has(0, "\"serial\":\"DEV-1\"}"), "1.0 device: %s", sent[0]);
}

static void a_frame_longer_than_a_small_buffer_is_answered_frame_too_large(void)
{
    static char body[6000];
    static uint8_t frame[6100];
    size_t n;
    buffer_size = BP_MIN_BUFFER;
    setup(NULL, 0);
    welcome();
    run();
    /* a CHAIN-sized line of 5,000 bytes: within the spec's 16 KiB, over this device's 4 KiB receive area */
    memset(body, 'A', 5000);
    body[5000] = '\0';
    n = (size_t)sprintf((char *)frame, "@1 CHAIN 5000 %s 00000000\n", body);
    memcpy(to_dev + to_dev_len, frame, n);
    to_dev_len += n;
    run();
    CHECK(sent_has(2, "\"code\":\"frame-too-large\"") && dev.state == BP_ST_WAIT_CHAIN, "%s", sent[2]);
    CHECK(bp_device_init(&dev, &dev.cfg, &dev.io, &dev.crypto, buffer, BP_MIN_BUFFER - 1u) != 0, "too small");
    buffer_size = sizeof buffer;
}

int main(void)
{
    happy_path_at_a_station_that_allocates();
    frame_errors_are_resent_then_end_the_session();
    intact_frames_reset_the_frame_error_count();
    welcome_timeout_sends_hello_again_forever_and_late_frames_are_ignored();
    chain_checks_fail_with_their_codes();
    retries_back_off_and_the_fifth_failed_session_stops();
    a_retry_gets_the_same_chain_or_says_chain_not_idempotent();
    store_failure_and_non_retryable_errors();
    key_type_refused_makes_a_new_key_and_no_type_stops();
    a_1_1_device_speaks_1_0_to_a_1_0_station();
    a_frame_longer_than_a_small_buffer_is_answered_frame_too_large();
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
