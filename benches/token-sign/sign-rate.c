/*
 * sign-rate: the raw signing rate of one PKCS#11 token, one thread, one session.
 *
 *   STATION_HSM_PIN=... sign-rate MODULE TOKEN_LABEL KEY_LABEL MECH SECONDS
 *
 * MECH is one of
 *   ECDSA            32-byte SHA-256 digest hashed on the host (what the station does with SoftHSM)
 *   ECDSA-SHA256     the token hashes a 64-byte message
 *   RSA-PKCS         PKCS#1 v1.5 over a host-built SHA-256 DigestInfo
 *   SHA256-RSA-PKCS  the token hashes a 64-byte message
 * It logs in as the user (the PIN comes from the environment, never argv), finds the private key
 * by CKA_LABEL, then calls C_SignInit + C_Sign in a loop for SECONDS and prints one line:
 *   RESULT <mech> <signatures> <seconds> <signatures/s> <signature bytes>
 * Errors print the PKCS#11 function and its CKR_ value in hex, and exit 1.
 * Build: gcc -O2 -Wall -Wextra $(pkg-config --cflags p11-kit-1) sign-rate.c -o sign-rate -ldl
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR p11;

static void check(const char *what, CK_RV rv)
{
    if (rv != CKR_OK) {
        fprintf(stderr, "sign-rate: %s failed: CKR 0x%08lx\n", what, (unsigned long)rv);
        exit(1);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A fixed-width PKCS#11 string equals `want` once its trailing blanks and NULs are dropped. */
static int padded_eq(const CK_UTF8CHAR *field, size_t width, const char *want)
{
    size_t n = width;
    while (n > 0 && (field[n - 1] == ' ' || field[n - 1] == '\0'))
        n--;
    return n == strlen(want) && memcmp(field, want, n) == 0;
}

static CK_SLOT_ID find_slot(const char *label)
{
    CK_ULONG count = 0;
    check("C_GetSlotList", p11->C_GetSlotList(CK_TRUE, NULL, &count));
    CK_SLOT_ID *slots = calloc(count ? count : 1, sizeof *slots);
    if (!slots) {
        perror("calloc");
        exit(1);
    }
    check("C_GetSlotList", p11->C_GetSlotList(CK_TRUE, slots, &count));
    for (CK_ULONG i = 0; i < count; i++) {
        CK_TOKEN_INFO info;
        if (p11->C_GetTokenInfo(slots[i], &info) != CKR_OK)
            continue; /* a slot whose token cannot answer is not ours */
        if (padded_eq(info.label, sizeof info.label, label)) {
            CK_SLOT_ID slot = slots[i];
            free(slots);
            return slot;
        }
    }
    fprintf(stderr, "sign-rate: no token labelled '%s'\n", label);
    exit(1);
}

static CK_OBJECT_HANDLE find_private_key(CK_SESSION_HANDLE s, const char *label)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_OBJECT_HANDLE key;
    CK_ULONG found = 0;
    check("C_FindObjectsInit", p11->C_FindObjectsInit(s, tmpl, 2));
    check("C_FindObjects", p11->C_FindObjects(s, &key, 1, &found));
    check("C_FindObjectsFinal", p11->C_FindObjectsFinal(s));
    if (found != 1) {
        fprintf(stderr, "sign-rate: no private key labelled '%s'\n", label);
        exit(1);
    }
    return key;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: STATION_HSM_PIN=... %s MODULE TOKEN_LABEL KEY_LABEL MECH SECONDS\n", argv[0]);
        return 2;
    }
    const char *module = argv[1], *token = argv[2], *key_label = argv[3], *mech_name = argv[4];
    double seconds = atof(argv[5]);
    const char *pin = getenv("STATION_HSM_PIN");
    if (!pin || !*pin) {
        fprintf(stderr, "sign-rate: set STATION_HSM_PIN\n");
        return 2;
    }
    if (seconds <= 0) {
        fprintf(stderr, "sign-rate: SECONDS must be positive\n");
        return 2;
    }

    /* SHA-256 DigestInfo prefix (RFC 8017, section 9.2, note 1) followed by a stand-in digest. */
    static const CK_BYTE digest_info_prefix[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                                   0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    CK_BYTE input[64];
    CK_ULONG input_len;
    CK_MECHANISM mech = {0, NULL, 0};
    for (size_t i = 0; i < sizeof input; i++)
        input[i] = (CK_BYTE)(i * 37 + 11);
    if (strcmp(mech_name, "ECDSA") == 0) {
        mech.mechanism = CKM_ECDSA;
        input_len = 32;
    } else if (strcmp(mech_name, "ECDSA-SHA256") == 0) {
        mech.mechanism = CKM_ECDSA_SHA256;
        input_len = 64;
    } else if (strcmp(mech_name, "RSA-PKCS") == 0) {
        mech.mechanism = CKM_RSA_PKCS;
        memmove(input + sizeof digest_info_prefix, input, 32);
        memcpy(input, digest_info_prefix, sizeof digest_info_prefix);
        input_len = sizeof digest_info_prefix + 32;
    } else if (strcmp(mech_name, "SHA256-RSA-PKCS") == 0) {
        mech.mechanism = CKM_SHA256_RSA_PKCS;
        input_len = 64;
    } else {
        fprintf(stderr, "sign-rate: unknown mechanism '%s'\n", mech_name);
        return 2;
    }

    void *lib = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "sign-rate: %s\n", dlerror());
        return 1;
    }
    CK_C_GetFunctionList get_list = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (!get_list) {
        fprintf(stderr, "sign-rate: %s has no C_GetFunctionList\n", module);
        return 1;
    }
    check("C_GetFunctionList", get_list(&p11));
    CK_C_INITIALIZE_ARGS init_args = {.flags = CKF_OS_LOCKING_OK};
    check("C_Initialize", p11->C_Initialize(&init_args));

    CK_SLOT_ID slot = find_slot(token);
    CK_SESSION_HANDLE s;
    check("C_OpenSession", p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s));
    CK_RV rv = p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    if (rv != CKR_USER_ALREADY_LOGGED_IN)
        check("C_Login", rv);
    CK_OBJECT_HANDLE key = find_private_key(s, key_label);

    CK_BYTE sig[1024];
    CK_ULONG sig_len = 0;
    unsigned long n = 0;
    double start = now(), elapsed;
    do {
        sig_len = sizeof sig;
        check("C_SignInit", p11->C_SignInit(s, &mech, key));
        check("C_Sign", p11->C_Sign(s, input, input_len, sig, &sig_len));
        n++;
        elapsed = now() - start;
    } while (elapsed < seconds);

    printf("RESULT %s %lu %.3f %.1f %lu\n", mech_name, n, elapsed, n / elapsed, (unsigned long)sig_len);
    check("C_Logout", p11->C_Logout(s));
    check("C_CloseSession", p11->C_CloseSession(s));
    check("C_Finalize", p11->C_Finalize(NULL));
    return 0;
}
