/*
 * bp_device.h - the device side of the bench protocol (schemas/bench-protocol.md, protocol 1, revision 1.1) as a
 * state machine that the caller drives with bp_device_poll().
 *
 * No heap, no threads, no OS calls. The caller gives one buffer and five callbacks (read, write, now_ms, store and,
 * optionally, on_event) plus a crypto port (bp_crypto, e.g. port/mbedtls). See device/c/README.md.
 */
#ifndef BP_DEVICE_H
#define BP_DEVICE_H

#include "bp_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The part of the caller's buffer kept for the frame last sent (CSR, STORED, ERROR, HELLO). */
#define BP_TX_SIZE 2048u
/** The smallest buffer bp_device_init accepts: the send area plus a 4 KiB receive area (chains up to ~3.9 KiB). */
#define BP_MIN_BUFFER (BP_TX_SIZE + 4096u)
/** The buffer that receives every frame the spec allows (16,383 bytes plus the send area). */
#define BP_FULL_BUFFER (BP_TX_SIZE + BP_MAX_FRAME - 1u)

/** generate_key's answer when the port cannot make a key of the type asked for. */
#define BP_CRYPTO_UNSUPPORTED (-2)

/** What the crypto port finds wrong in a chain (spec 3.5), in the spec's order of checks. */
typedef enum bp_chain_check {
    BP_CHAIN_OK = 0,
    BP_CHAIN_UNPARSEABLE,   /* chain-unparseable */
    BP_CHAIN_KEY_MISMATCH,  /* chain-key-mismatch */
    BP_CHAIN_SERIAL_MISMATCH, /* chain-serial-mismatch: subject serialNumber and CN must equal the serial */
    BP_CHAIN_UNTRUSTED      /* chain-untrusted: does not verify up to the trust anchor */
} bp_chain_check;

/** The crypto port. Every function gets `ctx`. A secure element can implement it without the key leaving it. */
typedef struct bp_crypto {
    void *ctx;
    /** The type of the key pair the device holds ("ec-p256" ...), or NULL when it holds none. */
    const char *(*key_type)(void *ctx);
    /**
     * Makes a key pair of `type` and stores it durably (it replaces any key held). Returns 0, BP_CRYPTO_UNSUPPORTED
     * when this port cannot make that type, or another negative value when generation or storage failed.
     */
    int (*generate_key)(void *ctx, const char *type);
    /** The DER PKCS#10 CSR for the held key, subject CN = cn, signed by the key: writes it at out, returns its
     * length, or a negative value. */
    long (*make_csr)(void *ctx, const char *cn, uint8_t *out, size_t cap);
    /** SHA-256 of p[0..n). */
    void (*sha256)(void *ctx, const uint8_t *p, size_t n, uint8_t digest[32]);
    /** The checks of spec 3.5 after the hash, in order: pem[0..len) (NUL at pem[len]) parses, its first certificate
     * holds the device's public key, its subject serialNumber and CN equal `serial`, and it verifies up to the
     * trust anchor. */
    bp_chain_check (*check_chain)(void *ctx, const char *pem, size_t len, const char *serial);
} bp_crypto;

/** What bp_io.store is asked to do. */
typedef enum bp_store_op {
    BP_STORE_WRITE_CHAIN, /* write buf[0..len) as the chain of `serial`; return 0 or negative */
    BP_STORE_READ_CHAIN,  /* read the chain of `serial` back into buf (cap len); return its length or negative */
    BP_STORE_PROVISIONED  /* mark the device provisioned with `serial` (DONE); return 0 or negative */
} bp_store_op;

/** What the device tells the caller (for logs, displays, tests). `detail` is a NUL-terminated text. */
typedef enum bp_event {
    BP_EV_SENT,           /* detail: the message type sent (HELLO, CSR, STORED, ERROR) */
    BP_EV_RESENT,         /* detail: the type of the frame re-sent after a frame-* ERROR */
    BP_EV_RECEIVED,       /* detail: the message type of a valid frame received */
    BP_EV_BAD_FRAME,      /* detail: the code of a frame that failed to decode */
    BP_EV_KEY_GENERATED,  /* detail: the key type */
    BP_EV_CSR_SENT,       /* detail: "" */
    BP_EV_CHAIN,          /* detail: CHAIN.sha256, after the checks, before the write */
    BP_EV_ERROR_RECEIVED, /* detail: the code */
    BP_EV_ERROR_SENT,     /* detail: the code */
    BP_EV_SESSION_FAILED, /* detail: the code that ended the session */
    BP_EV_STOPPED,        /* detail: the code shown to the operator */
    BP_EV_PROVISIONED     /* detail: the serial */
} bp_event;

/** on_event's answer: go on, or act as if the device were reset at this point (a power cut; for tests). */
#define BP_EV_CONTINUE 0
#define BP_EV_RESET 1

typedef struct bp_io {
    void *user;
    /** Reads up to cap bytes without blocking: the count (0 when none are waiting), or negative when the line
     * failed (the device then waits for its timers; the caller may reopen the line). */
    long (*read)(void *user, uint8_t *buf, size_t cap);
    /** Writes one whole frame; returns 0 or negative. */
    int (*write)(void *user, const uint8_t *buf, size_t n);
    /** A monotonic millisecond clock (it may wrap). */
    uint32_t (*now_ms)(void *user);
    /** The certificate storage; see bp_store_op. */
    long (*store)(void *user, bp_store_op op, const char *serial, uint8_t *buf, size_t len);
    /** Optional (NULL): events; return BP_EV_RESET after BP_EV_CSR_SENT or BP_EV_CHAIN to simulate a reset. */
    int (*on_event)(void *user, bp_event ev, const char *detail);
} bp_io;

typedef struct bp_device_config {
    const char *model;    /* text64, e.g. "acme-sensor-v2" */
    const char *firmware; /* text64, e.g. "1.4.2" */
    const char *serial;   /* the device's own serial (OTP, label), or NULL: the station allocates */
    int revision_1_0;     /* nonzero: behave as a revision 1.0 device (HELLO without "revision") */
    /* Timers in ms; 0 takes the spec's recommendation (5,000 / 30,000 / 10,000 / 5,000 / 1,000). */
    uint32_t welcome_ms, chain_ms, done_ms, resend_ms, backoff_ms;
} bp_device_config;

typedef enum bp_state {
    BP_ST_IDLE = 0,      /* before bp_device_start */
    BP_ST_START,         /* HELLO goes out at the next poll */
    BP_ST_WAIT_WELCOME,
    BP_ST_WAIT_CHAIN,
    BP_ST_WAIT_DONE,
    BP_ST_BACKOFF,       /* a failed session: waiting 1, 2, 4, 8 s before HELLO */
    BP_ST_PROVISIONED,
    BP_ST_STOPPED        /* an operator must act: bp_device_last_code() says why */
} bp_state;

typedef struct bp_device {
    bp_device_config cfg;
    bp_io io;
    bp_crypto crypto;
    bp_rx rx;
    uint8_t *tx;
    size_t tx_len;
    bp_state state;
    uint32_t deadline, started_wait;
    uint8_t frame_errors, failed_sessions, awaiting_resend, no_revision, new_key_needed, kept_chain;
    uint8_t kept_hash[32];
    char serial[65];
    char last_code[65];
} bp_device;

/** Sets the device up on buf[0..size) (at least BP_MIN_BUFFER; BP_FULL_BUFFER for every chain the spec allows).
 * Returns 0, or -1 when the buffer is too small or the configuration incomplete. */
int bp_device_init(bp_device *d, const bp_device_config *cfg, const bp_io *io, const bp_crypto *crypto,
                   uint8_t *buf, size_t size);
/** Starts a session (power-up, or "asked to provision"): counters reset, HELLO at the next poll. */
void bp_device_start(bp_device *d);
/** Does the work that is due: reads what waits, handles frames, runs the timers. Never blocks except in the
 * callbacks. Returns the state. */
bp_state bp_device_poll(bp_device *d);
/** The code that ended the last session or stopped the device ("" if none). */
const char *bp_device_last_code(const bp_device *d);
/** CHAIN.serial once a chain was received ("" before). */
const char *bp_device_serial(const bp_device *d);
/** Bytes the receiver dropped as noise (a growing count without frames suggests a wrong baud rate). */
uint32_t bp_device_dropped(const bp_device *d);

#ifdef __cplusplus
}
#endif
#endif
