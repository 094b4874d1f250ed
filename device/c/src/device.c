/* The device's states (spec 4.3), timers (5.1), retries and back-off (5.2), chain checks (3.5). */
#include "bp_device.h"

#include <string.h>

#define MAX_FRAME_ERRORS 3u
#define MAX_FAILED_SESSIONS 5u
#define READ_CHUNK 64u

static const char hexdig[] = "0123456789abcdef";

static void copy_text(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap) len = cap - 1u;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static int event(bp_device *d, bp_event ev, const char *detail)
{
    return d->io.on_event != NULL ? d->io.on_event(d->io.user, ev, detail) : BP_EV_CONTINUE;
}

static int expired(const bp_device *d)
{
    return (int32_t)(d->io.now_ms(d->io.user) - d->deadline) >= 0;
}

static void arm(bp_device *d, uint32_t ms)
{
    d->deadline = d->io.now_ms(d->io.user) + ms;
}

static uint32_t state_timer(const bp_device *d)
{
    if (d->state == BP_ST_WAIT_CHAIN) return d->cfg.chain_ms;
    if (d->state == BP_ST_WAIT_DONE) return d->cfg.done_ms;
    return d->cfg.welcome_ms;
}

/* Encodes m into the send area, writes it and keeps it as the last frame sent. */
static int send_msg(bp_device *d, const bp_msg *m)
{
    size_t n = bp_encode_frame(m, d->tx, BP_TX_SIZE);
    if (n == 0u) return -1;
    d->tx_len = n;
    event(d, BP_EV_SENT, bp_msg_type_name(m->type));
    return d->io.write(d->io.user, d->tx, n);
}

static void set_str(bp_str *s, const char *text)
{
    s->s = text;
    s->len = text != NULL ? strlen(text) : 0u;
}

static void send_error(bp_device *d, const char *code, const char *message, int retryable)
{
    bp_msg m;
    memset(&m, 0, sizeof m);
    m.type = BP_MSG_ERROR;
    set_str(&m.u.error.code, code);
    set_str(&m.u.error.message, message);
    set_str(&m.u.error.hint, "");
    m.u.error.retryable = retryable;
    event(d, BP_EV_ERROR_SENT, code);
    (void)send_msg(d, &m);
}

static void stop(bp_device *d, const char *code)
{
    copy_text(d->last_code, sizeof d->last_code, code, strlen(code));
    d->state = BP_ST_STOPPED;
    event(d, BP_EV_STOPPED, d->last_code);
}

/* A failed session (5.2): the 5th in a row stops; else back-off 1, 2, 4, 8 s (times backoff_ms / 1000). */
static void fail(bp_device *d, const char *code)
{
    copy_text(d->last_code, sizeof d->last_code, code, strlen(code));
    event(d, BP_EV_SESSION_FAILED, d->last_code);
    if (++d->failed_sessions >= MAX_FAILED_SESSIONS) {
        stop(d, code);
        return;
    }
    d->state = BP_ST_BACKOFF;
    arm(d, d->cfg.backoff_ms << (d->failed_sessions - 1u));
}

static void send_hello(bp_device *d)
{
    bp_msg m;
    memset(&m, 0, sizeof m);
    m.type = BP_MSG_HELLO;
    m.u.hello.protocol = BP_PROTOCOL_VERSION;
    set_str(&m.u.hello.model, d->cfg.model);
    set_str(&m.u.hello.firmware, d->cfg.firmware);
    set_str(&m.u.hello.serial, d->cfg.serial);
    if (!d->cfg.revision_1_0 && !d->no_revision) {
        m.u.hello.has_revision = 1;
        m.u.hello.revision = BP_REVISION;
    }
    bp_rx_reset(&d->rx);
    d->frame_errors = 0;
    d->awaiting_resend = 0;
    d->state = BP_ST_WAIT_WELCOME;
    arm(d, d->cfg.welcome_ms);
    if (send_msg(d, &m) != 0) {
        /* the line is down: the WELCOME timer sends HELLO again */
    }
}

int bp_device_init(bp_device *d, const bp_device_config *cfg, const bp_io *io, const bp_crypto *crypto,
                   uint8_t *buf, size_t size)
{
    if (d == NULL || cfg == NULL || io == NULL || crypto == NULL || buf == NULL || size < BP_MIN_BUFFER ||
        cfg->model == NULL || cfg->firmware == NULL || io->read == NULL || io->write == NULL ||
        io->now_ms == NULL || io->store == NULL || crypto->key_type == NULL || crypto->generate_key == NULL ||
        crypto->make_csr == NULL || crypto->sha256 == NULL || crypto->check_chain == NULL) {
        return -1;
    }
    if (cfg->serial != NULL && !bp_is_serial(cfg->serial, strlen(cfg->serial))) return -1;
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    if (d->cfg.welcome_ms == 0u) d->cfg.welcome_ms = 5000u;
    if (d->cfg.chain_ms == 0u) d->cfg.chain_ms = 30000u;
    if (d->cfg.done_ms == 0u) d->cfg.done_ms = 10000u;
    if (d->cfg.resend_ms == 0u) d->cfg.resend_ms = 5000u;
    if (d->cfg.backoff_ms == 0u) d->cfg.backoff_ms = 1000u;
    d->io = *io;
    d->crypto = *crypto;
    d->tx = buf + (size - BP_TX_SIZE);
    bp_rx_init(&d->rx, buf, size - BP_TX_SIZE);
    d->state = BP_ST_IDLE;
    return 0;
}

void bp_device_start(bp_device *d)
{
    d->failed_sessions = 0;
    d->frame_errors = 0;
    d->no_revision = 0;
    d->serial[0] = '\0';
    d->state = BP_ST_START;
}

const char *bp_device_last_code(const bp_device *d)
{
    return d->last_code;
}

const char *bp_device_serial(const bp_device *d)
{
    return d->serial;
}

uint32_t bp_device_dropped(const bp_device *d)
{
    return d->rx.dropped;
}

/* A frame-level error in either direction (4.3): the 3rd in a row ends the session. */
static int count_frame_error(bp_device *d)
{
    if (++d->frame_errors >= MAX_FRAME_ERRORS) {
        send_error(d, "too-many-frame-errors", "3 frame errors in a row", 1);
        fail(d, "too-many-frame-errors");
        return 1;
    }
    return 0;
}

static void bad_frame(bp_device *d, bp_frame_result r)
{
    const char *code = bp_frame_result_code(r);
    event(d, BP_EV_BAD_FRAME, code);
    if (bp_frame_result_is_frame_level(r)) {
        if (count_frame_error(d)) return;
        send_error(d, code, "the frame from the station failed its check; send it again", 1);
        d->awaiting_resend = 1;
        arm(d, d->cfg.resend_ms);
        return;
    }
    /* An intact frame this device cannot take: say so (not retryable), and the session is over at both ends. */
    d->frame_errors = 0;
    send_error(d, code, "the station's frame is not one this device understands", 0);
    fail(d, code);
}

/* Picks the key (3.3): the one held, else a new one of the first listed type this port can make. */
static const char *ensure_key(bp_device *d, const bp_welcome *w)
{
    size_t i;
    if (d->crypto.key_type(d->crypto.ctx) != NULL && !d->new_key_needed) return NULL;
    for (i = 0; i < w->n_key_types; i++) {
        int rc = d->crypto.generate_key(d->crypto.ctx, w->key_types[i].s);
        if (rc == BP_CRYPTO_UNSUPPORTED) continue;
        if (rc != 0) return "key-generation-failed";
        d->new_key_needed = 0;
        d->kept_chain = 0;
        event(d, BP_EV_KEY_GENERATED, w->key_types[i].s);
        return NULL;
    }
    return "no-acceptable-key-type";
}

static void on_welcome(bp_device *d, const bp_welcome *w)
{
    const char *code = ensure_key(d, w);
    const char *cn = d->cfg.serial != NULL ? d->cfg.serial : d->cfg.model;
    uint8_t *scratch = d->rx.buf;
    long der_len;
    bp_msg m;
    d->frame_errors = 0;
    if (code != NULL) {
        if (code[0] == 'n') {
            send_error(d, code, "the device can make none of the station's key types", 0);
            stop(d, code);
        } else {
            send_error(d, code, "the device could not make or store its key pair", 1);
            fail(d, code);
        }
        return;
    }
    /* The WELCOME is no longer needed: its buffer holds the CSR's DER until it is encoded. */
    der_len = d->crypto.make_csr(d->crypto.ctx, cn, scratch, d->rx.cap);
    memset(&m, 0, sizeof m);
    m.type = BP_MSG_CSR;
    m.u.csr.der = scratch;
    m.u.csr.der_len = der_len > 0 ? (size_t)der_len : 0u;
    if (der_len <= 0 || bp_encode_frame(&m, d->tx, BP_TX_SIZE) == 0u) {
        send_error(d, "key-generation-failed", "the device could not make its CSR", 1);
        fail(d, "key-generation-failed");
        return;
    }
    d->state = BP_ST_WAIT_CHAIN;
    d->awaiting_resend = 0;
    arm(d, d->cfg.chain_ms);
    (void)send_msg(d, &m);
    if (event(d, BP_EV_CSR_SENT, "") == BP_EV_RESET) d->state = BP_ST_START;
}

static void hex32(const uint8_t digest[32], char out[65])
{
    size_t i;
    for (i = 0; i < 32u; i++) {
        out[2u * i] = hexdig[digest[i] >> 4];
        out[2u * i + 1u] = hexdig[digest[i] & 15u];
    }
    out[64] = '\0';
}

static const char *const chain_codes[] = {"", "chain-unparseable", "chain-key-mismatch", "chain-serial-mismatch",
                                          "chain-untrusted"};

/* CHAIN (3.5): hash, parse, key, serial, anchor, idempotency; then write, read back, hash, STORED. */
static void on_chain(bp_device *d, bp_chain *c)
{
    uint8_t digest[32];
    char hex[65];
    long n;
    bp_chain_check check;
    bp_msg m;
    d->frame_errors = 0;
    d->crypto.sha256(d->crypto.ctx, (const uint8_t *)c->chain.s, c->chain.len, digest);
    hex32(digest, hex);
    if (strcmp(hex, c->sha256.s) != 0) {
        send_error(d, "chain-hash-mismatch", "CHAIN.sha256 is not the SHA-256 of the chain", 0);
        stop(d, "chain-hash-mismatch");
        return;
    }
    check = d->crypto.check_chain(d->crypto.ctx, c->chain.s, c->chain.len, c->serial.s);
    if (check == BP_CHAIN_OK && d->cfg.serial != NULL && strcmp(d->cfg.serial, c->serial.s) != 0) {
        check = BP_CHAIN_SERIAL_MISMATCH;
    }
    if (check != BP_CHAIN_OK) {
        const char *code = (unsigned)check < 5u ? chain_codes[check] : "chain-unparseable";
        send_error(d, code, "the chain failed the device's checks", 0);
        stop(d, code);
        return;
    }
    if (d->kept_chain && memcmp(d->kept_hash, digest, 32u) != 0) {
        send_error(d, "chain-not-idempotent", "a retry with the same key got a different chain", 0);
        stop(d, "chain-not-idempotent");
        return;
    }
    memcpy(d->kept_hash, digest, 32u);
    d->kept_chain = 1;
    copy_text(d->serial, sizeof d->serial, c->serial.s, c->serial.len);
    if (event(d, BP_EV_CHAIN, hex) == BP_EV_RESET) {
        d->state = BP_ST_START;
        return;
    }
    if (d->io.store(d->io.user, BP_STORE_WRITE_CHAIN, d->serial, (uint8_t *)c->chain.s, c->chain.len) != 0) {
        send_error(d, "flash-write-failed", "the chain could not be written", 1);
        fail(d, "flash-write-failed");
        return;
    }
    /* Read back over the received copy, which is no longer needed, and hash what was read. */
    n = d->io.store(d->io.user, BP_STORE_READ_CHAIN, d->serial, d->rx.buf, d->rx.cap);
    if (n < 0) {
        send_error(d, "flash-write-failed", "the chain could not be read back", 1);
        fail(d, "flash-write-failed");
        return;
    }
    d->crypto.sha256(d->crypto.ctx, d->rx.buf, (size_t)n, digest);
    hex32(digest, hex);
    memset(&m, 0, sizeof m);
    m.type = BP_MSG_STORED;
    m.u.sha256.s = hex;
    m.u.sha256.len = 64u;
    d->state = BP_ST_WAIT_DONE;
    d->awaiting_resend = 0;
    arm(d, d->cfg.done_ms);
    (void)send_msg(d, &m);
}

static void on_done(bp_device *d, const bp_str *serial)
{
    d->frame_errors = 0;
    d->failed_sessions = 0;
    if (strcmp(serial->s, d->serial) != 0) {
        send_error(d, "done-serial-mismatch", "DONE.serial differs from CHAIN.serial", 0);
        stop(d, "done-serial-mismatch");
        return;
    }
    if (d->io.store(d->io.user, BP_STORE_PROVISIONED, d->serial, NULL, 0u) != 0) {
        stop(d, "flash-write-failed");
        return;
    }
    d->state = BP_ST_PROVISIONED;
    event(d, BP_EV_PROVISIONED, d->serial);
}

static int is_code(const bp_str *code, const char *name)
{
    return strcmp(code->s, name) == 0;
}

static void on_error(bp_device *d, const bp_error_msg *e)
{
    event(d, BP_EV_ERROR_RECEIVED, e->code.s);
    if (strncmp(e->code.s, "frame-", 6u) == 0) {
        if (count_frame_error(d)) return;
        if (d->tx_len > 0u) {
            event(d, BP_EV_RESENT, "");
            (void)d->io.write(d->io.user, d->tx, d->tx_len);
        }
        arm(d, d->awaiting_resend ? d->cfg.resend_ms : state_timer(d));
        return;
    }
    if (d->state == BP_ST_WAIT_WELCOME) {
        if (is_code(&e->code, "timeout") || is_code(&e->code, "unexpected-message")) return;
        /* Section 8: a 1.0 station refuses the revision field; speak 1.0 with it. */
        if (is_code(&e->code, "message-invalid") && !d->no_revision && !d->cfg.revision_1_0 &&
            strstr(e->message.s, "revision") != NULL) {
            d->no_revision = 1;
            send_hello(d);
            return;
        }
    }
    copy_text(d->last_code, sizeof d->last_code, e->code.s, e->code.len);
    if (d->state == BP_ST_WAIT_CHAIN && is_code(&e->code, "csr-key-type-not-allowed")) {
        d->new_key_needed = 1; /* made at the next WELCOME, from its list, before the CSR */
        fail(d, e->code.s);
        return;
    }
    if (e->retryable) {
        fail(d, e->code.s);
    } else {
        stop(d, e->code.s);
    }
}

static void on_frame(bp_device *d)
{
    bp_msg m;
    bp_frame_result r = bp_decode_frame(d->rx.buf, d->rx.len, &m, NULL);
    if (r != BP_FRAME_OK) {
        bad_frame(d, r);
        return;
    }
    event(d, BP_EV_RECEIVED, bp_msg_type_name(m.type));
    if (m.type == BP_MSG_ERROR) {
        on_error(d, &m.u.error);
    } else if (m.type == BP_MSG_WELCOME && d->state == BP_ST_WAIT_WELCOME) {
        on_welcome(d, &m.u.welcome);
    } else if (m.type == BP_MSG_CHAIN && d->state == BP_ST_WAIT_CHAIN) {
        on_chain(d, &m.u.chain);
    } else if (m.type == BP_MSG_DONE && d->state == BP_ST_WAIT_DONE) {
        on_done(d, &m.u.serial);
    }
    /* anything else: a valid message this state does not wait for; ignored, never answered (4.3) */
}

static int waiting(const bp_device *d)
{
    return d->state == BP_ST_WAIT_WELCOME || d->state == BP_ST_WAIT_CHAIN || d->state == BP_ST_WAIT_DONE;
}

static void timers(bp_device *d)
{
    if (d->state == BP_ST_BACKOFF && expired(d)) {
        send_hello(d);
    } else if (waiting(d) && expired(d)) {
        if (d->state == BP_ST_WAIT_WELCOME) {
            send_hello(d); /* no station yet: not a failed session, forever */
        } else {
            fail(d, "timeout");
        }
    }
}

bp_state bp_device_poll(bp_device *d)
{
    uint8_t chunk[READ_CHUNK];
    long n;
    size_t i;
    if (d->state == BP_ST_START) {
        /* discard what waits (bounded: a line that never stops talking still gets its HELLO), then HELLO */
        for (i = 0; i < 256u && d->io.read(d->io.user, chunk, sizeof chunk) > 0; i++) {
        }
        send_hello(d);
        return d->state;
    }
    n = d->io.read(d->io.user, chunk, sizeof chunk);
    for (i = 0; n > 0 && i < (size_t)n; i++) {
        bp_rx_event ev;
        if (!waiting(d)) break; /* back-off, provisioned, stopped: received bytes are discarded */
        ev = bp_rx_byte(&d->rx, chunk[i]);
        if (ev == BP_RX_FRAME) {
            on_frame(d);
        } else if (ev == BP_RX_TOO_LARGE || ev == BP_RX_OVER_BUFFER) {
            bad_frame(d, BP_FRAME_TOO_LARGE);
        }
        if (d->state == BP_ST_START) return d->state;
    }
    timers(d);
    return d->state;
}
