/* common/sy_reqid.c - "sy1." request ids: a compact payload, base64url, HMAC-SHA256.
 *
 * Decoding checks the shape first (cheap, no allocation), then the MAC, and only a payload
 * whose MAC matches is parsed, so the parser never sees bytes an attacker chose freely.
 * Stateless; any thread.
 */
#include "sy_reqid.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "sy_util.h"

#define PREFIX_LEN (sizeof(SY_REQID_PREFIX) - 1)
#define MAC_B64_LEN ((SY_REQID_MAC_LEN * 4 + 2) / 3)
#define PAYLOAD_B64_MAX ((SY_REQID_PAYLOAD_MAX * 4 + 2) / 3)

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The value of one base64url character, or -1. */
static int b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

/* Writes <n> bytes of <in> as unpadded base64url at out[*off..]; the caller made room. */
static void b64_encode(const uint8_t *in, size_t n, char *out, size_t *off)
{
    size_t o = *off, i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    *off = o;
}

/* Decodes the <n> characters at <in> into <out> (room for n * 3 / 4 bytes). Returns the
 * byte count, or -1 unless <in> is canonical unpadded base64url. */
static long b64_decode(const char *in, size_t n, uint8_t *out)
{
    size_t o = 0, i = 0;
    uint32_t v = 0;
    int bits = 0;

    if (n % 4 == 1)
        return -1;
    for (; i < n; i++) {
        int d = b64_value(in[i]);
        if (d < 0)
            return -1;
        v = v << 6 | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(v >> bits);
            v &= (1u << bits) - 1;
        }
    }
    /* The bits left over must be zero: otherwise a second spelling of the same bytes. */
    if (v != 0)
        return -1;
    return (long)o;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint at p[*off..len); false when it is cut short or longer than 10 bytes. */
static bool get_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
    uint64_t r = 0;

    for (unsigned shift = 0, i = 0; i < 10; i++, shift += 7) {
        if (*off >= len)
            return false;
        uint8_t b = p[(*off)++];
        if (i == 9 && b > 1)
            return false; /* more than 64 bits */
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

#define SHA256_BLOCK 64
#define SHA256_LEN 32

struct sy_reqid_key {
    EVP_MD_CTX *inner; /* SHA-256 after the block key ^ ipad (RFC 2104) */
    EVP_MD_CTX *outer; /* SHA-256 after the block key ^ opad */
};

struct sy_reqid_key *sy_reqid_key_new(const uint8_t *key, size_t key_len)
{
    uint8_t block[SHA256_BLOCK] = {0}, ipad[SHA256_BLOCK], opad[SHA256_BLOCK];
    unsigned int n = 0;
    struct sy_reqid_key *k;
    bool ok;

    if (!key || key_len == 0)
        return NULL;
    k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->inner = EVP_MD_CTX_new();
    k->outer = EVP_MD_CTX_new();
    /* A key longer than a block is hashed first; a shorter one is padded with zeros. */
    ok = true;
    if (key_len > SHA256_BLOCK)
        ok = EVP_Digest(key, key_len, block, &n, EVP_sha256(), NULL) && n == SHA256_LEN;
    else
        memcpy(block, key, key_len);
    for (size_t i = 0; i < SHA256_BLOCK; i++) {
        ipad[i] = block[i] ^ 0x36;
        opad[i] = block[i] ^ 0x5c;
    }
    ok = ok && k->inner && k->outer && EVP_DigestInit_ex(k->inner, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(k->inner, ipad, sizeof(ipad)) &&
         EVP_DigestInit_ex(k->outer, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(k->outer, opad, sizeof(opad));
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(ipad, sizeof(ipad));
    OPENSSL_cleanse(opad, sizeof(opad));
    if (!ok) {
        sy_reqid_key_free(k);
        return NULL;
    }
    return k;
}

void sy_reqid_key_free(struct sy_reqid_key *k)
{
    if (!k)
        return;
    EVP_MD_CTX_free(k->inner);
    EVP_MD_CTX_free(k->outer);
    free(k);
}

/* HMAC-SHA256 of <data> under <k>, cut to SY_REQID_MAC_LEN bytes. Copies the prepared
 * states (reading them only), so concurrent callers share <k> safely. */
static int mac(const struct sy_reqid_key *k, const uint8_t *data, size_t len,
               uint8_t out[SY_REQID_MAC_LEN])
{
    uint8_t ih[EVP_MAX_MD_SIZE], md[EVP_MAX_MD_SIZE];
    unsigned int ih_len = 0, md_len = 0;
    EVP_MD_CTX *t = EVP_MD_CTX_new();
    bool ok = t && EVP_MD_CTX_copy_ex(t, k->inner) && EVP_DigestUpdate(t, data, len) &&
              EVP_DigestFinal_ex(t, ih, &ih_len) && EVP_MD_CTX_copy_ex(t, k->outer) &&
              EVP_DigestUpdate(t, ih, ih_len) && EVP_DigestFinal_ex(t, md, &md_len) &&
              md_len >= SY_REQID_MAC_LEN;

    EVP_MD_CTX_free(t);
    if (!ok)
        return -ENOMEM;
    memcpy(out, md, SY_REQID_MAC_LEN);
    return 0;
}

static const char *name_of(const struct sy_reqid *f, int i)
{
    const char *const names[] = {f->tenant, f->route, f->model, f->experiment, f->arm};
    return names[i];
}

int sy_reqid_sign(const struct sy_reqid_key *k, const struct sy_reqid *fields, char *out,
                  size_t cap)
{
    uint8_t payload[SY_REQID_PAYLOAD_MAX], tag[SY_REQID_MAC_LEN];
    size_t n = 0, o;
    int rc;

    if (cap > 0)
        out[0] = '\0';
    payload[n++] = SY_REQID_VERSION;
    n += put_varint(payload + n, (uint64_t)fields->policy_version);
    n += put_varint(payload + n, (uint64_t)fields->unix_s);
    for (int i = 0; i < 5; i++) {
        const char *s = name_of(fields, i);
        const char *nul = memchr(s, '\0', SY_REQID_NAME_MAX + 1);
        size_t len;

        if (!nul)
            return -EINVAL;
        len = (size_t)(nul - s);
        n += put_varint(payload + n, len);
        memcpy(payload + n, s, len);
        n += len;
    }
    memcpy(payload + n, fields->nonce, SY_REQID_NONCE_LEN);
    n += SY_REQID_NONCE_LEN;

    if (PREFIX_LEN + (n * 4 + 2) / 3 + 1 + MAC_B64_LEN + 1 > cap)
        return -ENOSPC;
    rc = mac(k, payload, n, tag);
    if (rc < 0)
        return rc;
    memcpy(out, SY_REQID_PREFIX, PREFIX_LEN);
    o = PREFIX_LEN;
    b64_encode(payload, n, out, &o);
    out[o++] = '.';
    b64_encode(tag, sizeof(tag), out, &o);
    out[o] = '\0';
    return (int)o;
}

static int fail(char **errmsg, int rc, const char *msg)
{
    if (errmsg)
        *errmsg = sy_xstrdup(msg);
    return rc;
}

/* Reads one name into <dst> (SY_REQID_NAME_MAX + 1 bytes). */
static bool get_name(const uint8_t *p, size_t len, size_t *off, char *dst)
{
    uint64_t n;

    if (!get_varint(p, len, off, &n) || n > SY_REQID_NAME_MAX || n > len - *off)
        return false;
    if (memchr(p + *off, '\0', (size_t)n))
        return false;
    memcpy(dst, p + *off, (size_t)n);
    dst[n] = '\0';
    *off += (size_t)n;
    return true;
}

int sy_reqid_verify(const struct sy_reqid_key *k, const char *id, struct sy_reqid *out,
                    char **errmsg)
{
    uint8_t payload[SY_REQID_PAYLOAD_MAX + 3], tag[SY_REQID_MAC_LEN + 3], want[SY_REQID_MAC_LEN];
    const char *body, *dot;
    size_t id_len, body_len, off = 0;
    long plen, tlen;
    uint64_t u;
    int rc;

    if (errmsg)
        *errmsg = NULL;
    id_len = strnlen(id, SY_REQID_MAX_LEN + 1);
    if (id_len > SY_REQID_MAX_LEN || strncmp(id, SY_REQID_PREFIX, PREFIX_LEN) != 0)
        return fail(errmsg, -EINVAL, "not a Switchyard request id (they start with \"sy1.\")");
    body = id + PREFIX_LEN;
    dot = memchr(body, '.', id_len - PREFIX_LEN);
    if (!dot)
        return fail(errmsg, -EINVAL, "malformed request id: no signature");
    body_len = (size_t)(dot - body);
    if (body_len == 0 || body_len > PAYLOAD_B64_MAX || strlen(dot + 1) != MAC_B64_LEN)
        return fail(errmsg, -EINVAL, "malformed request id: wrong length");
    plen = b64_decode(body, body_len, payload);
    tlen = b64_decode(dot + 1, MAC_B64_LEN, tag);
    if (plen < 0 || tlen != SY_REQID_MAC_LEN)
        return fail(errmsg, -EINVAL, "malformed request id: not base64url");
    rc = mac(k, payload, (size_t)plen, want);
    if (rc < 0)
        return fail(errmsg, rc, "cannot compute the request id's signature");
    if (CRYPTO_memcmp(want, tag, SY_REQID_MAC_LEN) != 0)
        return fail(errmsg, -EBADMSG,
                    "the request id's signature does not match: it was altered, or issued by "
                    "another fleet");

    memset(out, 0, sizeof(*out));
    if ((size_t)plen < 1 || payload[off++] != SY_REQID_VERSION)
        return fail(errmsg, -EPROTO, "request id: unknown payload version");
    if (!get_varint(payload, (size_t)plen, &off, &u))
        return fail(errmsg, -EPROTO, "request id: truncated payload (policy version)");
    out->policy_version = (int64_t)u;
    if (!get_varint(payload, (size_t)plen, &off, &u))
        return fail(errmsg, -EPROTO, "request id: truncated payload (time)");
    out->unix_s = (int64_t)u;
    for (int i = 0; i < 5; i++) {
        char *const dst[] = {out->tenant, out->route, out->model, out->experiment, out->arm};
        if (!get_name(payload, (size_t)plen, &off, dst[i]))
            return fail(errmsg, -EPROTO, "request id: truncated or invalid name in the payload");
    }
    if ((size_t)plen - off != SY_REQID_NONCE_LEN)
        return fail(errmsg, -EPROTO, "request id: truncated payload (nonce)");
    memcpy(out->nonce, payload + off, SY_REQID_NONCE_LEN);
    return 0;
}

int sy_reqid_encode(const uint8_t *key, size_t key_len, const struct sy_reqid *fields, char *out,
                    size_t cap)
{
    struct sy_reqid_key *k;
    int rc;

    if (cap > 0)
        out[0] = '\0';
    if (!key || key_len == 0)
        return -EINVAL;
    k = sy_reqid_key_new(key, key_len);
    if (!k)
        return -ENOMEM;
    rc = sy_reqid_sign(k, fields, out, cap);
    sy_reqid_key_free(k);
    return rc;
}

int sy_reqid_decode(const uint8_t *key, size_t key_len, const char *id, struct sy_reqid *out,
                    char **errmsg)
{
    struct sy_reqid_key *k;
    int rc;

    if (errmsg)
        *errmsg = NULL;
    if (!key || key_len == 0)
        return fail(errmsg, -EINVAL, "no key to check request ids with");
    k = sy_reqid_key_new(key, key_len);
    if (!k)
        return fail(errmsg, -ENOMEM, "cannot prepare the key for request ids");
    rc = sy_reqid_verify(k, id, out, errmsg);
    sy_reqid_key_free(k);
    return rc;
}
