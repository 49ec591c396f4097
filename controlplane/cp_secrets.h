/* controlplane/cp_secrets.h - the fleet key: 32 random bytes created once per store and
 * shared by every control plane replica on it, sent to proxies in each policy snapshot.
 * Proxies sign request ids with it and any replica verifies them (docs/feedback.md). */
#ifndef CP_SECRETS_H
#define CP_SECRETS_H

#include <stddef.h>
#include <stdint.h>

struct cp_store;

#define CP_FLEET_KEY_LEN 32
#define CP_FLEET_KEY_KEY "secrets/fleet_key" /* store key; the value is 64 hex digits */

/* Reads the fleet key from <store>, creating it (compare-and-swap: the first replica wins)
 * when there is none. Returns 0, or -errno with *errmsg set (caller frees). */
int cp_fleet_key_load(struct cp_store *store, uint8_t key[CP_FLEET_KEY_LEN], char **errmsg);

#endif
