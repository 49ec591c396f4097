/* controlplane/cp_secrets.c - the fleet key in the store. */
#define SY_LOG_MODULE "secrets"

#include "cp_secrets.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cp_store.h"
#include "sy_log.h"
#include "sy_util.h"

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool parse(const char *v, size_t len, uint8_t key[CP_FLEET_KEY_LEN])
{
    if (len != 2 * CP_FLEET_KEY_LEN)
        return false;
    for (size_t i = 0; i < CP_FLEET_KEY_LEN; i++) {
        int hi = hex_digit(v[2 * i]), lo = hex_digit(v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

int cp_fleet_key_load(struct cp_store *store, uint8_t key[CP_FLEET_KEY_LEN], char **errmsg)
{
    char hex[2 * CP_FLEET_KEY_LEN + 1];
    struct cp_kv *kv = NULL;
    int rc;

    for (int attempt = 0; attempt < 3; attempt++) {
        rc = cp_store_get(store, CP_FLEET_KEY_KEY, &kv);
        if (rc == 0) {
            bool ok = parse(kv->value, kv->value_len, key);
            cp_kv_free(kv);
            if (!ok) {
                *errmsg = sy_xasprintf("%s in the store is not 64 hex digits", CP_FLEET_KEY_KEY);
                return -EINVAL;
            }
            return 0;
        }
        if (rc != -ENOENT) {
            *errmsg = sy_xasprintf("cannot read %s: %s", CP_FLEET_KEY_KEY, strerror(-rc));
            return rc;
        }
        if (getrandom(key, CP_FLEET_KEY_LEN, 0) != CP_FLEET_KEY_LEN) {
            *errmsg = sy_xasprintf("getrandom: %s", strerror(errno));
            return -EIO;
        }
        for (size_t i = 0; i < CP_FLEET_KEY_LEN; i++)
            snprintf(hex + 2 * i, 3, "%02x", key[i]);
        rc = cp_store_cas(store, CP_FLEET_KEY_KEY, hex, 2 * CP_FLEET_KEY_LEN, 0, NULL);
        if (rc == 0) {
            sy_info("created the fleet key (%s)", CP_FLEET_KEY_KEY);
            return 0;
        }
        if (rc != -EEXIST) {
            *errmsg = sy_xasprintf("cannot store %s: %s", CP_FLEET_KEY_KEY, strerror(-rc));
            return rc;
        }
        /* Another replica created it first: read theirs. */
    }
    *errmsg = sy_xasprintf("%s keeps changing", CP_FLEET_KEY_KEY);
    return -EAGAIN;
}
