/*
 * bp-device: the C kit on a POSIX tty with mbedTLS, as station-devsim runs on a bench.
 *
 * Devices run one after another on --port; each makes a new key, is provisioned, checks the chain against --ca and
 * stores OUT/<serial>/deviceCert.key (0600) and OUT/<serial>/deviceCertAndCACert.crt. One JSON line per device on
 * stdout, then a summary line. Exit status: 0 all devices provisioned, 1 some failed, 2 usage or setup.
 */
#define _DEFAULT_SOURCE /* cfmakeraw, CRTSCTS, usleep */
#include "bp_crypto_mbedtls.h"
#include "bp_device.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

typedef struct opts {
    const char *port, *ca, *out, *serial, *prefix, *model, *drop_after;
    unsigned long count, serial_from, flaky_store, backoff_ms;
    int has_serial_from, revision_1_0, no_sync, verbose;
    double corrupt;
    unsigned long long seed;
} opts;

typedef struct host {
    const opts *o;
    int fd;
    int reopen;
    int dropped_once;
    unsigned long chain_writes;
    unsigned long long rng;
    char key_pem[3300];
    char pending_key[600];
    char chains[8][65];
    int n_chains;
    int failed_sessions;
    int resends;
} host;

static uint8_t frame_buf[BP_FULL_BUFFER];

static void usage(void)
{
    fprintf(stderr, "usage: bp-device --port PATH --ca CA.pem --out DIR [--count N] [--serial SN | --serial-from N "
                    "[--serial-prefix P]] [--revision 0|1] [--model TEXT] [--corrupt RATE --seed N] "
                    "[--drop-after csr|chain] [--flaky-store N] [--backoff-ms MS] [--no-sync] [--verbose]\n");
}

static uint32_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u);
}

static int open_tty(const char *path)
{
    struct termios t;
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return -1;
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        t.c_cflag |= CLOCAL | CREAD;
        t.c_cflag &= ~(tcflag_t)CRTSCTS;
        cfsetispeed(&t, B115200);
        cfsetospeed(&t, B115200);
        tcsetattr(fd, TCSANOW, &t);
    }
    return fd;
}

/* ---- the callbacks ---- */

static long cb_read(void *user, uint8_t *buf, size_t cap)
{
    host *h = user;
    ssize_t n;
    if (h->fd < 0) return -1;
    n = read(h->fd, buf, cap);
    if (n >= 0) return (long)n;
    return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
}

static double next_unit(host *h)
{
    h->rng ^= h->rng << 13;
    h->rng ^= h->rng >> 7;
    h->rng ^= h->rng << 17;
    return (double)(h->rng >> 11) / 9007199254740992.0;
}

static int cb_write(void *user, const uint8_t *buf, size_t n)
{
    host *h = user;
    static uint8_t copy[BP_TX_SIZE];
    size_t done = 0, i;
    if (h->fd < 0) return -1;
    if (h->o->corrupt > 0.0 && n <= sizeof copy) {
        memcpy(copy, buf, n);
        for (i = 0; i < n; i++) {
            if (next_unit(h) < h->o->corrupt) copy[i] ^= (uint8_t)(1u << (unsigned)(next_unit(h) * 8.0));
        }
        buf = copy;
    }
    while (done < n) {
        ssize_t w = write(h->fd, buf + done, n - done);
        if (w > 0) {
            done += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p;
            p.fd = h->fd;
            p.events = POLLOUT;
            (void)poll(&p, 1, 100);
        } else {
            return -1;
        }
    }
    return 0;
}

static uint32_t cb_now(void *user)
{
    (void)user;
    return mono_ms();
}

/* Writes path atomically: a temp file, fsync, rename, as station-devsim does. */
static int write_atomic(const char *path, const void *data, size_t n, mode_t mode, int sync)
{
    char tmp[1200];
    int fd;
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp) return -1;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) return -1;
    if (write(fd, data, n) != (ssize_t)n || (sync && fsync(fd) != 0)) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int device_dir(const host *h, const char *serial, char *dir, size_t cap)
{
    if (snprintf(dir, cap, "%s/%s", h->o->out, serial) >= (int)cap) return -1;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

static long cb_store(void *user, bp_store_op op, const char *serial, uint8_t *buf, size_t len)
{
    host *h = user;
    char dir[1024], path[1100];
    if (device_dir(h, serial, dir, sizeof dir) != 0) return -1;
    snprintf(path, sizeof path, "%s/deviceCertAndCACert.crt", dir);
    if (op == BP_STORE_WRITE_CHAIN) {
        int rc;
        h->chain_writes++;
        snprintf(path, sizeof path, "%s/deviceCert.key", dir);
        if (write_atomic(path, h->key_pem, strlen(h->key_pem), 0600, !h->o->no_sync) != 0) return -1;
        snprintf(path, sizeof path, "%s/deviceCertAndCACert.crt", dir);
        if (h->chain_writes <= h->o->flaky_store && len > 100u) {
            buf[len / 2u] ^= 1u; /* a flash that stores a wrong bit: STORED then carries another hash */
            rc = write_atomic(path, buf, len, 0644, !h->o->no_sync);
            buf[len / 2u] ^= 1u;
            return rc;
        }
        return write_atomic(path, buf, len, 0644, !h->o->no_sync);
    }
    if (op == BP_STORE_READ_CHAIN) {
        FILE *f = fopen(path, "rb");
        size_t n;
        if (f == NULL) return -1;
        n = fread(buf, 1, len, f);
        fclose(f);
        return (long)n;
    }
    unlink(h->pending_key); /* provisioned: the key now lives beside its chain */
    return 0;
}

static int on_event(void *user, bp_event ev, const char *detail)
{
    host *h = user;
    static const char *const names[] = {"sent", "resent", "received", "bad-frame", "key-generated", "csr-sent",
                                        "chain", "error-received", "error-sent", "session-failed", "stopped",
                                        "provisioned"};
    if (h->o->verbose) fprintf(stderr, "bp-device: %lu ms %s %s\n", (unsigned long)mono_ms(), names[ev], detail);
    if (ev == BP_EV_SESSION_FAILED) h->failed_sessions++;
    if (ev == BP_EV_RESENT) h->resends++;
    if (ev == BP_EV_CHAIN && h->n_chains < 8) {
        memcpy(h->chains[h->n_chains++], detail, 65u);
    }
    if (h->o->drop_after != NULL && !h->dropped_once &&
        ((ev == BP_EV_CSR_SENT && strcmp(h->o->drop_after, "csr") == 0) ||
         (ev == BP_EV_CHAIN && strcmp(h->o->drop_after, "chain") == 0))) {
        h->dropped_once = 1;
        h->reopen = 1;
        return BP_EV_RESET;
    }
    return BP_EV_CONTINUE;
}

static int persist_key(void *user, const char *pem)
{
    host *h = user;
    size_t n = strlen(pem);
    if (n >= sizeof h->key_pem) return -1;
    memcpy(h->key_pem, pem, n + 1u);
    return write_atomic(h->pending_key, pem, n, 0600, !h->o->no_sync);
}

/* ---- the run ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text;
    long n;
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    text = malloc((size_t)n + 1u);
    if (text != NULL && fread(text, 1, (size_t)n, f) == (size_t)n) {
        text[n] = '\0';
    } else {
        free(text);
        text = NULL;
    }
    fclose(f);
    return text;
}

static int parse_args(int argc, char **argv, opts *o)
{
    int i;
    memset(o, 0, sizeof *o);
    o->count = 1;
    o->prefix = "SIM-";
    o->model = "bp-device";
    o->seed = 0x9E3779B97F4A7C15ull;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-sync") == 0) { o->no_sync = 1; continue; }
        if (strcmp(a, "--verbose") == 0) { o->verbose = 1; continue; }
        if (v == NULL) return -1;
        i++;
        if (strcmp(a, "--port") == 0) o->port = v;
        else if (strcmp(a, "--ca") == 0) o->ca = v;
        else if (strcmp(a, "--out") == 0) o->out = v;
        else if (strcmp(a, "--count") == 0) o->count = strtoul(v, NULL, 10);
        else if (strcmp(a, "--serial") == 0) o->serial = v;
        else if (strcmp(a, "--serial-from") == 0) { o->serial_from = strtoul(v, NULL, 10); o->has_serial_from = 1; }
        else if (strcmp(a, "--serial-prefix") == 0) o->prefix = v;
        else if (strcmp(a, "--model") == 0) o->model = v;
        else if (strcmp(a, "--revision") == 0) o->revision_1_0 = strcmp(v, "0") == 0;
        else if (strcmp(a, "--corrupt") == 0) o->corrupt = strtod(v, NULL);
        else if (strcmp(a, "--seed") == 0) o->seed = strtoull(v, NULL, 10) | 1u;
        else if (strcmp(a, "--drop-after") == 0) o->drop_after = v;
        else if (strcmp(a, "--flaky-store") == 0) o->flaky_store = strtoul(v, NULL, 10);
        else if (strcmp(a, "--backoff-ms") == 0) o->backoff_ms = strtoul(v, NULL, 10);
        else return -1;
    }
    if (o->port == NULL || o->ca == NULL || o->out == NULL || o->count == 0u) return -1;
    if (o->serial != NULL && (o->count != 1u || o->has_serial_from)) return -1;
    if (o->drop_after != NULL && strcmp(o->drop_after, "csr") != 0 && strcmp(o->drop_after, "chain") != 0) return -1;
    return 0;
}

static void wait_for_input(int fd, int ms)
{
    struct pollfd p;
    p.fd = fd;
    p.events = POLLIN;
    if (fd < 0 || poll(&p, 1, ms) < 0) usleep((useconds_t)ms * 1000u);
}

/* Runs device `index`; prints its JSON line; returns 1 when it was provisioned. */
static int run_device(const opts *o, host *h, const char *anchors, unsigned long index)
{
    bp_mbedtls port;
    bp_crypto crypto;
    bp_device dev;
    bp_device_config cfg;
    bp_io io;
    bp_state st;
    char serial[80];
    uint32_t t0 = mono_ms();
    int i, ok;
    memset(&cfg, 0, sizeof cfg);
    cfg.model = o->model;
    cfg.firmware = "bp-c-kit-1.0";
    cfg.revision_1_0 = o->revision_1_0;
    cfg.backoff_ms = (uint32_t)o->backoff_ms;
    if (o->serial != NULL) {
        cfg.serial = o->serial;
    } else if (o->has_serial_from) {
        snprintf(serial, sizeof serial, "%s%06lu", o->prefix, o->serial_from + index - 1u);
        cfg.serial = serial;
    }
    h->dropped_once = 0;
    h->n_chains = 0;
    h->failed_sessions = 0;
    h->resends = 0;
    h->chain_writes = 0;
    snprintf(h->pending_key, sizeof h->pending_key, "%s/.pending-%ld-%lu.key", o->out, (long)getpid(), index);
    if (bp_mbedtls_init(&port, (const unsigned char *)h->pending_key, strlen(h->pending_key)) != 0 ||
        bp_mbedtls_add_anchor(&port, anchors) != 0) {
        fprintf(stderr, "bp-device: mbedTLS setup or the CA file failed\n");
        return -1;
    }
    port.persist_key = persist_key;
    port.persist_user = h;
    bp_mbedtls_bind(&port, &crypto);
    io.user = h;
    io.read = cb_read;
    io.write = cb_write;
    io.now_ms = cb_now;
    io.store = cb_store;
    io.on_event = on_event;
    if (bp_device_init(&dev, &cfg, &io, &crypto, frame_buf, sizeof frame_buf) != 0) {
        fprintf(stderr, "bp-device: bad device configuration (serial or model)\n");
        bp_mbedtls_free(&port);
        return -1;
    }
    bp_device_start(&dev);
    do {
        st = bp_device_poll(&dev);
        if (h->reopen) { /* the line dropped: unplug, plug in again */
            h->reopen = 0;
            close(h->fd);
            usleep(100000);
            h->fd = open_tty(o->port);
        }
        if (st == BP_ST_WAIT_WELCOME || st == BP_ST_WAIT_CHAIN || st == BP_ST_WAIT_DONE || st == BP_ST_BACKOFF) {
            wait_for_input(h->fd, 5);
        }
        if (h->fd < 0) h->fd = open_tty(o->port);
    } while (st != BP_ST_PROVISIONED && st != BP_ST_STOPPED);
    ok = st == BP_ST_PROVISIONED;
    printf("{\"index\":%lu,\"ok\":%s,\"serial\":\"%s\",\"code\":\"%s\",\"ms\":%lu,\"failed_sessions\":%d,"
           "\"resends\":%d,\"dropped_bytes\":%lu,\"chains\":[",
           index, ok ? "true" : "false", bp_device_serial(&dev), ok ? "" : bp_device_last_code(&dev),
           (unsigned long)(mono_ms() - t0), h->failed_sessions, h->resends, (unsigned long)bp_device_dropped(&dev));
    for (i = 0; i < h->n_chains; i++) printf("%s\"%s\"", i ? "," : "", h->chains[i]);
    printf("]}\n");
    fflush(stdout);
    memset(h->key_pem, 0, sizeof h->key_pem);
    bp_mbedtls_free(&port);
    return ok;
}

int main(int argc, char **argv)
{
    opts o;
    host h;
    char *anchors;
    unsigned long i, ok = 0;
    uint32_t t0;
    if (parse_args(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    anchors = read_file(o.ca);
    if (anchors == NULL || strstr(anchors, "-----BEGIN CERTIFICATE-----") == NULL) {
        fprintf(stderr, "bp-device: cannot read a CA certificate from %s\n", o.ca);
        return 2;
    }
    if (mkdir(o.out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "bp-device: cannot create %s: %s\n", o.out, strerror(errno));
        return 2;
    }
    memset(&h, 0, sizeof h);
    h.o = &o;
    h.rng = o.seed;
    h.fd = open_tty(o.port);
    if (h.fd < 0) {
        fprintf(stderr, "bp-device: cannot open %s: %s\n", o.port, strerror(errno));
        return 2;
    }
    t0 = mono_ms();
    for (i = 1; i <= o.count; i++) {
        int r = run_device(&o, &h, anchors, i);
        if (r < 0) return 2;
        ok += (unsigned long)r;
    }
    printf("{\"devices_ok\":%lu,\"devices_failed\":%lu,\"ms\":%lu}\n", ok, o.count - ok,
           (unsigned long)(mono_ms() - t0));
    free(anchors);
    close(h.fd);
    return ok == o.count ? 0 : 1;
}
