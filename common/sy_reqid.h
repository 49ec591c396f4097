/* common/sy_reqid.h - self-describing, authenticated request ids ("sy1." ids).
 *
 * A proxy gives every model answer an id that says what served it (policy version, time,
 * tenant, route, model, experiment and arm) and carries a MAC under the fleet key, so any
 * proxy of the fleet can later accept feedback for it (POST /v1/feedback) without having
 * stored anything, and nobody without the key can make one up or change what it says.
 * Format (docs/feedback.md):
 *
 *   "sy1." base64url(payload) "." base64url(first 16 bytes of HMAC-SHA256(key, payload))
 *
 * payload = version byte (1), policy_version and unix_s as varints (LEB128 of the int64's
 * two's complement bits), tenant, route, model, experiment, arm as varint length + bytes,
 * then the 8-byte nonce; nothing after it. base64url is RFC 4648 section 5 without padding,
 * and only its canonical form is accepted (unused low bits zero), so every id has exactly
 * one spelling. The payload is signed, not encrypted: whoever holds an id can read it.
 *
 * Stateless and thread-safe; keys are borrowed for the call. A process that signs many ids
 * with one key prepares it once (sy_reqid_key_new).
 */
#ifndef SY_REQID_H
#define SY_REQID_H

#include <stddef.h>
#include <stdint.h>

#define SY_REQID_PREFIX "sy1."
#define SY_REQID_VERSION 1         /* the payload's first byte */
#define SY_REQID_NAME_MAX 256      /* bytes of each name, without the NUL */
#define SY_REQID_NONCE_LEN 8       /* random bytes: two identical requests get two ids */
#define SY_REQID_MAC_LEN 16        /* bytes of HMAC-SHA256 kept */
#define SY_REQID_TTL_S (7 * 86400) /* feedback is accepted for this long after the answer */
#define SY_REQID_FUTURE_S 300      /* clock skew tolerated for ids "issued in the future" */

/* Longest payload: version, two 10-byte varints, five names with 2-byte lengths, nonce. */
#define SY_REQID_PAYLOAD_MAX (1 + 10 + 10 + 5 * (2 + SY_REQID_NAME_MAX) + SY_REQID_NONCE_LEN)
/* Longest id, without its NUL: prefix, payload and MAC in base64url, the dot. */
#define SY_REQID_MAX_LEN                                                                           \
    (sizeof(SY_REQID_PREFIX) - 1 + (SY_REQID_PAYLOAD_MAX * 4 + 2) / 3 + 1 +                        \
     (SY_REQID_MAC_LEN * 4 + 2) / 3)

/* What an id says. Names are NUL-terminated UTF-8 (not checked), "" when there is none. */
struct sy_reqid {
    int64_t policy_version;
    int64_t unix_s; /* when the answer was issued, seconds since the epoch */
    char tenant[SY_REQID_NAME_MAX + 1];
    char route[SY_REQID_NAME_MAX + 1];
    char model[SY_REQID_NAME_MAX + 1]; /* the policy model that served */
    char experiment[SY_REQID_NAME_MAX + 1];
    char arm[SY_REQID_NAME_MAX + 1];
    uint8_t nonce[SY_REQID_NONCE_LEN];
};

/* A key made ready for signing and checking many ids: the HMAC's inner and outer SHA-256
 * states are computed once, so an id costs two short hashes and no algorithm lookup.
 * Immutable once made: any number of threads may use one at the same time. */
struct sy_reqid_key;

/* Prepares <key> (<key_len> > 0 bytes, copied into hash states; the caller may wipe its
 * copy). NULL when <key_len> is 0 or memory runs out. */
struct sy_reqid_key *sy_reqid_key_new(const uint8_t *key, size_t key_len);

/* Wipes and frees <k>. Accepts NULL. No other thread may be using it. */
void sy_reqid_key_free(struct sy_reqid_key *k);

/* sy_reqid_encode with a prepared key (<k> not NULL). */
int sy_reqid_sign(const struct sy_reqid_key *k, const struct sy_reqid *fields, char *out,
                  size_t cap);

/* sy_reqid_decode with a prepared key (<k> not NULL); the same results and messages. */
int sy_reqid_verify(const struct sy_reqid_key *k, const char *id, struct sy_reqid *out,
                    char **errmsg);

/* Writes the id for <fields>, signed with <key> (<key_len> > 0 bytes), into <out> (<cap>
 * bytes; SY_REQID_MAX_LEN + 1 is always enough). Returns the id's length, or -EINVAL (empty
 * key, a name without a NUL within SY_REQID_NAME_MAX + 1 bytes), -ENOSPC (<cap> too small;
 * <out> is then "" when cap > 0), -ENOMEM (the MAC could not be computed). */
int sy_reqid_encode(const uint8_t *key, size_t key_len, const struct sy_reqid *fields, char *out,
                    size_t cap);

/* Checks the id <id> (NUL-terminated) against <key> and fills <out>. The MAC is checked, in
 * constant time, before any of the payload is read. Returns 0, or:
 *   -EINVAL  not an id of this format (wrong prefix, length, alphabet or shape), or an
 *            empty key;
 *   -EBADMSG the MAC does not match: forged, altered, or signed with another fleet's key;
 *   -EPROTO  the MAC matches but the payload is truncated or invalid (unknown version,
 *            bad varint, a name too long or holding a NUL, bytes left over);
 *   -ENOMEM  the MAC could not be computed.
 * On failure *errmsg (when <errmsg> is not NULL) gets a heap message (caller frees) and
 * <out> holds nothing usable. */
int sy_reqid_decode(const uint8_t *key, size_t key_len, const char *id, struct sy_reqid *out,
                    char **errmsg);

#endif
