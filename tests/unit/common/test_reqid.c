/* tests/unit/common/test_reqid.c - sy_reqid: round trips (long, UTF-8, empty names,
 * extreme numbers), every single-character change of an id rejected, another key
 * rejected, garbage rejected with "malformed", the length limits, and a known-answer
 * vector so the format cannot drift silently. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sy_reqid.h"

/* HMAC-SHA256("k", the payload of test_known_answer), first 16 bytes, base64url. */
#define KNOWN_MAC "J_jNIi0TjFUjKlCnYajMsA"

static const uint8_t key[] = "fleet-key-for-tests-0123456789ab";
static const uint8_t other_key[] = "fleet-key-for-tests-0123456789ac";

static void fill(struct sy_reqid *r, const char *tenant, const char *route, const char *model,
                 const char *experiment, const char *arm)
{
    memset(r, 0, sizeof(*r));
    r->policy_version = 42;
    r->unix_s = 1767225600; /* 2026-01-01T00:00:00Z */
    snprintf(r->tenant, sizeof(r->tenant), "%s", tenant);
    snprintf(r->route, sizeof(r->route), "%s", route);
    snprintf(r->model, sizeof(r->model), "%s", model);
    snprintf(r->experiment, sizeof(r->experiment), "%s", experiment);
    snprintf(r->arm, sizeof(r->arm), "%s", arm);
    for (int i = 0; i < SY_REQID_NONCE_LEN; i++)
        r->nonce[i] = (uint8_t)(0xa0 + i);
}

static void assert_same(const struct sy_reqid *a, const struct sy_reqid *b)
{
    assert_int_equal(a->policy_version, b->policy_version);
    assert_int_equal(a->unix_s, b->unix_s);
    assert_string_equal(a->tenant, b->tenant);
    assert_string_equal(a->route, b->route);
    assert_string_equal(a->model, b->model);
    assert_string_equal(a->experiment, b->experiment);
    assert_string_equal(a->arm, b->arm);
    assert_memory_equal(a->nonce, b->nonce, SY_REQID_NONCE_LEN);
}

static void round_trip(const struct sy_reqid *in)
{
    char id[SY_REQID_MAX_LEN + 1];
    struct sy_reqid out;
    char *err = NULL;
    int n = sy_reqid_encode(key, sizeof(key) - 1, in, id, sizeof(id));

    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(id));
    assert_true((size_t)n <= SY_REQID_MAX_LEN);
    assert_memory_equal(id, SY_REQID_PREFIX, 4);
    assert_int_equal(sy_reqid_decode(key, sizeof(key) - 1, id, &out, &err), 0);
    assert_null(err);
    assert_same(in, &out);
}

static void test_round_trip(void **state)
{
    struct sy_reqid r;
    char long_name[SY_REQID_NAME_MAX + 1];
    (void)state;

    fill(&r, "acme", "auto", "gpt-4o-mini", "tone", "formal");
    round_trip(&r);
    fill(&r, "", "", "m", "", "");
    round_trip(&r);
    fill(&r, "", "", "", "", "");
    round_trip(&r);
    /* UTF-8, and characters that need care elsewhere (quotes, slashes, dots). */
    fill(&r, "équipe-北京", "route/\"quoted\".v2", "модель", "exp 🧪", "bras-β");
    round_trip(&r);
    memset(long_name, 'x', SY_REQID_NAME_MAX);
    long_name[SY_REQID_NAME_MAX] = '\0';
    fill(&r, long_name, long_name, long_name, long_name, long_name);
    r.policy_version = INT64_MAX;
    r.unix_s = INT64_MIN;
    round_trip(&r);
    r.policy_version = -1;
    r.unix_s = 0;
    round_trip(&r);
}

static void test_known_answer(void **state)
{
    /* Pinned so an accidental format change (field order, varints, MAC length) fails here;
     * docs/feedback.md describes the same bytes. Computed independently (Python hmac). */
    struct sy_reqid r;
    char id[SY_REQID_MAX_LEN + 1];
    static const uint8_t k[] = "k";
    (void)state;

    memset(&r, 0, sizeof(r));
    r.policy_version = 7;
    r.unix_s = 300;
    snprintf(r.route, sizeof(r.route), "auto");
    snprintf(r.model, sizeof(r.model), "m");
    assert_true(sy_reqid_encode(k, 1, &r, id, sizeof(id)) > 0);
    /* payload 01 07 ac02 00 04"auto" 01"m" 00 00 0000000000000000 */
    assert_memory_equal(id, "sy1.AQesAgAEYXV0bwFtAAAAAAAAAAAAAA.", 35);
    assert_string_equal(id + 35, KNOWN_MAC);
}

static void test_every_tamper_rejected(void **state)
{
    struct sy_reqid r, out;
    char id[SY_REQID_MAX_LEN + 1], t[SY_REQID_MAX_LEN + 1];
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    size_t n;
    (void)state;

    fill(&r, "acme", "auto", "gpt-4o-mini", "tone", "formal");
    n = (size_t)sy_reqid_encode(key, sizeof(key) - 1, &r, id, sizeof(id));
    for (size_t i = 0; i < n; i++) {
        for (const char *a = alphabet; *a; a++) {
            char *err = NULL;
            int rc;

            if (*a == id[i])
                continue;
            memcpy(t, id, n + 1);
            t[i] = *a;
            rc = sy_reqid_decode(key, sizeof(key) - 1, t, &out, &err);
            if (rc == 0)
                fail_msg("changing position %zu to '%c' was accepted: %s", i, *a, t);
            assert_non_null(err);
            free(err);
        }
        /* Dropped, and doubled. */
        {
            char *err = NULL;
            memcpy(t, id, i);
            memcpy(t + i, id + i + 1, n - i);
            assert_int_not_equal(sy_reqid_decode(key, sizeof(key) - 1, t, &out, &err), 0);
            free(err);
            memcpy(t, id, i + 1);
            memcpy(t + i + 1, id + i, n - i + 1);
            err = NULL;
            assert_int_not_equal(sy_reqid_decode(key, sizeof(key) - 1, t, &out, &err), 0);
            free(err);
        }
    }
}

static void test_wrong_key(void **state)
{
    struct sy_reqid r, out;
    char id[SY_REQID_MAX_LEN + 1];
    char *err = NULL;
    (void)state;

    fill(&r, "acme", "auto", "gpt-4o-mini", "", "");
    assert_true(sy_reqid_encode(key, sizeof(key) - 1, &r, id, sizeof(id)) > 0);
    assert_int_equal(sy_reqid_decode(other_key, sizeof(other_key) - 1, id, &out, &err), -EBADMSG);
    assert_non_null(strstr(err, "signature"));
    free(err);
    /* A prefix of the key is another key. */
    err = NULL;
    assert_int_equal(sy_reqid_decode(key, sizeof(key) - 2, id, &out, &err), -EBADMSG);
    free(err);
    /* No key at all. */
    err = NULL;
    assert_int_equal(sy_reqid_decode(key, 0, id, &out, &err), -EINVAL);
    free(err);
    /* errmsg is optional. */
    assert_int_equal(sy_reqid_decode(other_key, sizeof(other_key) - 1, id, &out, NULL), -EBADMSG);
    assert_int_equal(sy_reqid_encode(key, 0, &r, id, sizeof(id)), -EINVAL);
    assert_string_equal(id, "");
}

static void test_garbage_is_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "sy1.",
        "sy1..",
        "sy1.AAAA",
        "sy1.AAAA.",
        "sy2.AQesAgAEYXV0bwFtAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "SY1.AQesAgAEYXV0bwFtAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "sy1.AQesAgAEYXV0bwFtAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAA",    /* short MAC */
        "sy1.AQesAgAEYXV0bwFtAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAA",  /* long MAC */
        "sy1.AQesAgAEYXV0bwFtAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAB",   /* non-canonical */
        "sy1.AQesAgAEYXV0bwFtAAAAAAAAAAAAAA==.AAAAAAAAAAAAAAAAAAAAAA", /* padding */
        "sy1.AQes+gAEYXV0bwFtAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",   /* base64, not url */
        "sy1.A.AAAAAAAAAAAAAAAAAAAAAA",                                /* 1 char mod 4 */
        "sy1.AQesAgAEYXV0bwFtAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.x",
        "0123456789abcdef0123456789abcdef",
        "req_abc123",
        "sy1. AQesAgAEYXV0bwFtAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
    };
    struct sy_reqid out;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *err = NULL;
        int rc = sy_reqid_decode(key, sizeof(key) - 1, bad[i], &out, &err);
        if (rc != -EINVAL)
            fail_msg("\"%s\": expected -EINVAL, got %d (%s)", bad[i], rc, err ? err : "");
        assert_non_null(err);
        free(err);
    }
}

/* Unpadded base64url, written here again rather than taken from sy_reqid.c. */
static size_t b64(const uint8_t *in, size_t n, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = al[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = al[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o;
}

/* Signs an arbitrary payload the way sy_reqid does, to reach the payload checks. */
static void sign_raw(const uint8_t *payload, size_t n, char *out, size_t cap)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    size_t o;

    assert_true(cap >= 4 + (n * 4 + 2) / 3 + 1 + 22 + 1);
    assert_non_null(HMAC(EVP_sha256(), key, (int)sizeof(key) - 1, payload, n, md, &md_len));
    memcpy(out, "sy1.", 4);
    o = 4 + b64(payload, n, out + 4);
    out[o++] = '.';
    b64(md, SY_REQID_MAC_LEN, out + o);
}

static void test_invalid_payload(void **state)
{
    /* MAC fine, payload broken: -EPROTO, never a crash or an over-read. */
    static const struct {
        const char *what;
        uint8_t bytes[24];
        size_t n;
    } cases[] = {
        {"version 2", {2, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 16},
        {"empty", {0}, 0},
        {"only the version", {1}, 1},
        {"cut varint", {1, 0x80}, 2},
        {"name longer than the rest", {1, 7, 1, 9, 'a'}, 5},
        {"name with a NUL", {1, 7, 1, 2, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 19},
        {"nonce cut short", {1, 7, 1, 0, 0, 0, 0, 0, 1, 2, 3}, 11},
        {"a byte too many", {1, 7, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 17},
        {"varint over 64 bits",
         {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
         11},
    };
    char id[SY_REQID_MAX_LEN + 1];
    struct sy_reqid out;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *err = NULL;
        int rc;

        sign_raw(cases[i].bytes, cases[i].n, id, sizeof(id));
        rc = sy_reqid_decode(key, sizeof(key) - 1, id, &out, &err);
        if (cases[i].n == 0) {
            /* "sy1..<mac>": no payload at all is not our shape. */
            assert_int_equal(rc, -EINVAL);
        } else if (rc != -EPROTO) {
            fail_msg("%s: expected -EPROTO, got %d", cases[i].what, rc);
        }
        assert_non_null(err);
        free(err);
    }
    /* A name of SY_REQID_NAME_MAX + 1 bytes, correctly signed, is refused. */
    {
        uint8_t p[1 + 1 + 1 + 2 + SY_REQID_NAME_MAX + 1 + 4 + SY_REQID_NONCE_LEN];
        size_t n = 0;
        char *err = NULL;

        p[n++] = 1;
        p[n++] = 7;
        p[n++] = 1;
        p[n++] = 0x80 | ((SY_REQID_NAME_MAX + 1) & 0x7f);
        p[n++] = (SY_REQID_NAME_MAX + 1) >> 7;
        memset(p + n, 'x', SY_REQID_NAME_MAX + 1);
        n += SY_REQID_NAME_MAX + 1;
        memset(p + n, 0, 4 + SY_REQID_NONCE_LEN);
        n += 4 + SY_REQID_NONCE_LEN;
        sign_raw(p, n, id, sizeof(id));
        assert_int_equal(sy_reqid_decode(key, sizeof(key) - 1, id, &out, &err), -EPROTO);
        free(err);
    }
}

static void test_limits(void **state)
{
    struct sy_reqid r;
    char id[SY_REQID_MAX_LEN + 1], small[40], exact[SY_REQID_MAX_LEN + 1];
    char *longer;
    struct sy_reqid out;
    char *err = NULL;
    int n;
    (void)state;

    /* A name without its NUL within SY_REQID_NAME_MAX + 1 bytes. */
    fill(&r, "acme", "auto", "m", "", "");
    memset(r.route, 'r', sizeof(r.route));
    assert_int_equal(sy_reqid_encode(key, sizeof(key) - 1, &r, id, sizeof(id)), -EINVAL);

    /* Too small a buffer: -ENOSPC and an empty string; exactly enough works. */
    fill(&r, "acme", "auto", "m", "", "");
    assert_int_equal(sy_reqid_encode(key, sizeof(key) - 1, &r, small, sizeof(small)), -ENOSPC);
    assert_string_equal(small, "");
    n = sy_reqid_encode(key, sizeof(key) - 1, &r, id, sizeof(id));
    assert_true(n > 0);
    assert_int_equal(sy_reqid_encode(key, sizeof(key) - 1, &r, exact, (size_t)n), -ENOSPC);
    assert_int_equal(sy_reqid_encode(key, sizeof(key) - 1, &r, exact, (size_t)n + 1), n);
    assert_string_equal(exact, id);

    /* The longest id fits SY_REQID_MAX_LEN exactly, and one character more is malformed. */
    memset(&r, 0, sizeof(r));
    r.policy_version = -1;
    r.unix_s = -1;
    memset(r.tenant, 't', SY_REQID_NAME_MAX);
    memset(r.route, 'r', SY_REQID_NAME_MAX);
    memset(r.model, 'm', SY_REQID_NAME_MAX);
    memset(r.experiment, 'e', SY_REQID_NAME_MAX);
    memset(r.arm, 'a', SY_REQID_NAME_MAX);
    n = sy_reqid_encode(key, sizeof(key) - 1, &r, id, sizeof(id));
    assert_int_equal(n, (int)SY_REQID_MAX_LEN);
    assert_int_equal(sy_reqid_decode(key, sizeof(key) - 1, id, &out, &err), 0);
    longer = malloc(SY_REQID_MAX_LEN + 2);
    memcpy(longer, id, SY_REQID_MAX_LEN);
    memcpy(longer + SY_REQID_MAX_LEN, "A", 2);
    assert_int_equal(sy_reqid_decode(key, sizeof(key) - 1, longer, &out, &err), -EINVAL);
    free(err);
    free(longer);

    /* A huge input is refused without reading all of it as an id. */
    {
        size_t big = 1 << 20;
        char *huge = malloc(big + 1);
        memcpy(huge, SY_REQID_PREFIX, 4);
        memset(huge + 4, 'A', big - 4);
        huge[big] = '\0';
        err = NULL;
        assert_int_equal(sy_reqid_decode(key, sizeof(key) - 1, huge, &out, &err), -EINVAL);
        free(err);
        free(huge);
    }
}

/* The MAC is HMAC-SHA256 for keys of every length (shorter than, as long as, and longer
 * than SHA-256's 64-byte block), checked against OpenSSL's HMAC(). */
static void test_mac_is_hmac(void **state)
{
    static const size_t lens[] = {1, 16, 32, 63, 64, 65, 100, 1000};
    uint8_t k[1000];
    struct sy_reqid r;
    (void)state;

    for (size_t i = 0; i < sizeof(k); i++)
        k[i] = (uint8_t)(i * 7 + 1);
    fill(&r, "acme", "auto", "m", "e", "a");
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        char id[SY_REQID_MAX_LEN + 1], want[SY_REQID_MAX_LEN + 1], *dot;
        uint8_t payload[SY_REQID_PAYLOAD_MAX], md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        size_t n;
        struct sy_reqid_key *pk = sy_reqid_key_new(k, lens[i]);
        struct sy_reqid out;

        assert_non_null(pk);
        assert_true(sy_reqid_sign(pk, &r, id, sizeof(id)) > 0);
        /* Rebuild the payload from the id with a plain base64url decode (EVP). */
        dot = strrchr(id, '.');
        {
            char b64[SY_REQID_MAX_LEN + 8];
            size_t m = (size_t)(dot - id) - 4, o;
            memcpy(b64, id + 4, m);
            for (o = 0; o < m; o++)
                b64[o] = b64[o] == '-' ? '+' : b64[o] == '_' ? '/' : b64[o];
            while (m % 4)
                b64[m++] = '=';
            int dec = EVP_DecodeBlock(payload, (const unsigned char *)b64, (int)m);
            assert_true(dec > 0);
            n = (size_t)dec - (b64[m - 1] == '=') - (b64[m - 2] == '=');
        }
        assert_non_null(HMAC(EVP_sha256(), k, (int)lens[i], payload, n, md, &md_len));
        memcpy(want, id, (size_t)(dot - id) + 1);
        b64(md, SY_REQID_MAC_LEN, want + (dot - id) + 1);
        assert_string_equal(id, want);
        assert_int_equal(sy_reqid_verify(pk, id, &out, NULL), 0);
        sy_reqid_key_free(pk);
    }
    assert_null(sy_reqid_key_new(k, 0));
    sy_reqid_key_free(NULL);
}

static void test_distinct_nonces_distinct_ids(void **state)
{
    struct sy_reqid r;
    char a[SY_REQID_MAX_LEN + 1], b[SY_REQID_MAX_LEN + 1];
    (void)state;

    fill(&r, "acme", "auto", "m", "", "");
    assert_true(sy_reqid_encode(key, sizeof(key) - 1, &r, a, sizeof(a)) > 0);
    r.nonce[7] ^= 1;
    assert_true(sy_reqid_encode(key, sizeof(key) - 1, &r, b, sizeof(b)) > 0);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_every_tamper_rejected),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_garbage_is_malformed),
        cmocka_unit_test(test_invalid_payload),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_mac_is_hmac),
        cmocka_unit_test(test_distinct_nonces_distinct_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
