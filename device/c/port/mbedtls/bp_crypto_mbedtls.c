/* bp_crypto over mbedTLS 2.28 / 3.x (the classic API, present in both; see README for PSA). */
#include "bp_crypto_mbedtls.h"

#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_csr.h>

#if defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>
#endif

#include <string.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define BP_SHA256(p, n, out) mbedtls_sha256((p), (n), (out), 0)
#else
#define BP_SHA256(p, n, out) mbedtls_sha256_ret((p), (n), (out), 0)
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define BP_GROUP_ID(kp) ((kp)->MBEDTLS_PRIVATE(grp).id)
#else
#define BP_GROUP_ID(kp) ((kp)->grp.id)
#endif

int bp_mbedtls_init(bp_mbedtls *p, const unsigned char *personal, size_t n)
{
    memset(p, 0, sizeof *p);
    mbedtls_pk_init(&p->key);
    mbedtls_entropy_init(&p->entropy);
    mbedtls_ctr_drbg_init(&p->drbg);
    mbedtls_x509_crt_init(&p->anchor);
#if defined(MBEDTLS_PSA_CRYPTO_C)
    /* 3.x may route hashing and signing through PSA (MBEDTLS_USE_PSA_CRYPTO needs it); harmless on 2.28 */
    if (psa_crypto_init() != PSA_SUCCESS) return -1;
#endif
    return mbedtls_ctr_drbg_seed(&p->drbg, mbedtls_entropy_func, &p->entropy, personal, n);
}

void bp_mbedtls_free(bp_mbedtls *p)
{
    mbedtls_pk_free(&p->key);
    mbedtls_x509_crt_free(&p->anchor);
    mbedtls_ctr_drbg_free(&p->drbg);
    mbedtls_entropy_free(&p->entropy);
}

int bp_mbedtls_add_anchor(bp_mbedtls *p, const char *pem)
{
    int rc = mbedtls_x509_crt_parse(&p->anchor, (const unsigned char *)pem, strlen(pem) + 1u);
    if (rc == 0) p->has_anchor = 1;
    return rc;
}

static const char *type_of(mbedtls_pk_context *pk)
{
    if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY) {
        mbedtls_ecp_group_id g = BP_GROUP_ID(mbedtls_pk_ec(*pk));
        if (g == MBEDTLS_ECP_DP_SECP256R1) return "ec-p256";
        if (g == MBEDTLS_ECP_DP_SECP384R1) return "ec-p384";
        return NULL;
    }
    if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_RSA && mbedtls_pk_get_bitlen(pk) == 2048u) return "rsa-2048";
    return NULL;
}

int bp_mbedtls_load_key(bp_mbedtls *p, const unsigned char *key, size_t len)
{
    int rc;
    bp_mbedtls_drop_key(p);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    rc = mbedtls_pk_parse_key(&p->key, key, len, NULL, 0, mbedtls_ctr_drbg_random, &p->drbg);
#else
    rc = mbedtls_pk_parse_key(&p->key, key, len, NULL, 0);
#endif
    if (rc != 0) return rc;
    p->key_type = type_of(&p->key);
    return p->key_type != NULL ? 0 : -1;
}

void bp_mbedtls_drop_key(bp_mbedtls *p)
{
    mbedtls_pk_free(&p->key);
    mbedtls_pk_init(&p->key);
    p->key_type = NULL;
}

int bp_mbedtls_key_pem(bp_mbedtls *p, char *out, size_t cap)
{
    return p->key_type != NULL ? mbedtls_pk_write_key_pem(&p->key, (unsigned char *)out, cap) : -1;
}

static const char *port_key_type(void *ctx)
{
    return ((bp_mbedtls *)ctx)->key_type;
}

static int port_generate_key(void *ctx, const char *type)
{
    bp_mbedtls *p = ctx;
    mbedtls_ecp_group_id g = MBEDTLS_ECP_DP_NONE;
    int rc, rsa = 0;
    static char pem[3300];
    if (strcmp(type, "ec-p256") == 0) g = MBEDTLS_ECP_DP_SECP256R1;
    else if (strcmp(type, "ec-p384") == 0) g = MBEDTLS_ECP_DP_SECP384R1;
    else if (strcmp(type, "rsa-2048") == 0) rsa = 1;
    else return BP_CRYPTO_UNSUPPORTED;
    bp_mbedtls_drop_key(p);
    rc = mbedtls_pk_setup(&p->key, mbedtls_pk_info_from_type(rsa ? MBEDTLS_PK_RSA : MBEDTLS_PK_ECKEY));
    if (rc == 0 && rsa) {
        rc = mbedtls_rsa_gen_key(mbedtls_pk_rsa(p->key), mbedtls_ctr_drbg_random, &p->drbg, 2048u, 65537);
    } else if (rc == 0) {
        rc = mbedtls_ecp_gen_key(g, mbedtls_pk_ec(p->key), mbedtls_ctr_drbg_random, &p->drbg);
    }
    if (rc != 0) {
        bp_mbedtls_drop_key(p);
        return -1;
    }
    p->key_type = type_of(&p->key);
    if (p->persist_key != NULL) {
        if (mbedtls_pk_write_key_pem(&p->key, (unsigned char *)pem, sizeof pem) != 0 ||
            p->persist_key(p->persist_user, pem) != 0) {
            memset(pem, 0, sizeof pem);
            bp_mbedtls_drop_key(p);
            return -1;
        }
        memset(pem, 0, sizeof pem);
    }
    return 0;
}

static long port_make_csr(void *ctx, const char *cn, uint8_t *out, size_t cap)
{
    bp_mbedtls *p = ctx;
    mbedtls_x509write_csr csr;
    char subject[80];
    int n;
    size_t len = strlen(cn);
    if (p->key_type == NULL || len > 64u) return -1;
    memcpy(subject, "CN=", 3u);
    memcpy(subject + 3, cn, len + 1u);
    mbedtls_x509write_csr_init(&csr);
    mbedtls_x509write_csr_set_md_alg(&csr, strcmp(p->key_type, "ec-p384") == 0 ? MBEDTLS_MD_SHA384 : MBEDTLS_MD_SHA256);
    mbedtls_x509write_csr_set_key(&csr, &p->key);
    n = mbedtls_x509write_csr_set_subject_name(&csr, subject);
    if (n == 0) n = mbedtls_x509write_csr_der(&csr, out, cap, mbedtls_ctr_drbg_random, &p->drbg);
    mbedtls_x509write_csr_free(&csr);
    if (n <= 0) return -1;
    /* the DER writer fills the end of the buffer */
    memmove(out, out + cap - (size_t)n, (size_t)n);
    return n;
}

static void port_sha256(void *ctx, const uint8_t *p, size_t n, uint8_t digest[32])
{
    (void)ctx;
    (void)BP_SHA256(p, n, digest);
}

static int name_equals(const mbedtls_x509_buf *val, const char *s)
{
    return val->len == strlen(s) && memcmp(val->p, s, val->len) == 0;
}

static int same_public_key(mbedtls_pk_context *a, mbedtls_pk_context *b)
{
    static unsigned char da[600], db[600];
    int na = mbedtls_pk_write_pubkey_der(a, da, sizeof da);
    int nb = mbedtls_pk_write_pubkey_der(b, db, sizeof db);
    return na > 0 && na == nb && memcmp(da + sizeof da - (size_t)na, db + sizeof db - (size_t)nb, (size_t)na) == 0;
}

static bp_chain_check port_check_chain(void *ctx, const char *pem, size_t len, const char *serial)
{
    bp_mbedtls *p = ctx;
    mbedtls_x509_crt chain;
    const mbedtls_x509_name *name;
    bp_chain_check result = BP_CHAIN_OK;
    int have_serial = 0;
    uint32_t flags = 0;
    mbedtls_x509_crt_init(&chain);
    if (mbedtls_x509_crt_parse(&chain, (const unsigned char *)pem, len + 1u) != 0) {
        result = BP_CHAIN_UNPARSEABLE;
    } else if (p->key_type == NULL || !same_public_key(&chain.pk, &p->key)) {
        result = BP_CHAIN_KEY_MISMATCH;
    } else {
        for (name = &chain.subject; name != NULL; name = name->next) {
            if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_SERIAL_NUMBER, &name->oid) == 0) {
                have_serial = 1;
                if (!name_equals(&name->val, serial)) result = BP_CHAIN_SERIAL_MISMATCH;
            } else if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &name->oid) == 0 && !name_equals(&name->val, serial)) {
                result = BP_CHAIN_SERIAL_MISMATCH;
            }
        }
        if (!have_serial) result = BP_CHAIN_SERIAL_MISMATCH;
        if (result == BP_CHAIN_OK && p->has_anchor &&
            mbedtls_x509_crt_verify(&chain, &p->anchor, NULL, NULL, &flags, NULL, NULL) != 0) {
            result = BP_CHAIN_UNTRUSTED;
        }
    }
    mbedtls_x509_crt_free(&chain);
    return result;
}

void bp_mbedtls_bind(bp_mbedtls *p, bp_crypto *c)
{
    c->ctx = p;
    c->key_type = port_key_type;
    c->generate_key = port_generate_key;
    c->make_csr = port_make_csr;
    c->sha256 = port_sha256;
    c->check_chain = port_check_chain;
}
