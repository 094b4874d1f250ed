/*
 * The crypto port for mbedTLS (2.28 and 3.x): keys in software (EC P-256, P-384, RSA-2048), CSR, SHA-256, and the
 * chain checks of spec 3.5 against a trust anchor. mbedTLS allocates through its own allocator: on a target
 * without a heap, enable MBEDTLS_MEMORY_BUFFER_ALLOC_C and give it a static pool.
 */
#ifndef BP_CRYPTO_MBEDTLS_H
#define BP_CRYPTO_MBEDTLS_H

#include "bp_device.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bp_mbedtls {
    mbedtls_pk_context key;
    const char *key_type; /* NULL: no key held */
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt anchor;
    int has_anchor;
    /* Stores the new key durably (PEM, NUL-terminated) before the CSR goes out; 0 or negative. May be NULL. */
    int (*persist_key)(void *user, const char *pem);
    void *persist_user;
} bp_mbedtls;

/** Seeds the DRBG from mbedTLS's entropy sources and `personal` (e.g. the device's unique id). 0 or negative. */
int bp_mbedtls_init(bp_mbedtls *p, const unsigned char *personal, size_t n);
/** Adds trust anchors (PEM, NUL-terminated). 0 or negative. */
int bp_mbedtls_add_anchor(bp_mbedtls *p, const char *pem);
/** Loads a key pair kept from an earlier boot (PEM or DER). 0 or negative. */
int bp_mbedtls_load_key(bp_mbedtls *p, const unsigned char *key, size_t len);
/** Forgets the key held (a new device). */
void bp_mbedtls_drop_key(bp_mbedtls *p);
/** The held key as PEM (NUL-terminated) into out. 0 or negative. */
int bp_mbedtls_key_pem(bp_mbedtls *p, char *out, size_t cap);
/** Fills `c` with this port's functions over `p`. */
void bp_mbedtls_bind(bp_mbedtls *p, bp_crypto *c);
void bp_mbedtls_free(bp_mbedtls *p);

#ifdef __cplusplus
}
#endif
#endif
