/* proto/sy_policy_pb.h - compiled policy <-> switchyard.v1.Policy message.
 *
 * The control plane turns a compiled policy into the typed message it sends; a proxy turns
 * the message back into a compiled policy through the same compiler the control plane
 * used (message -> canonical JSON tree -> sy_policy_compile_json), so there is one
 * validator, and a snapshot a proxy accepts is exactly a policy the compiler accepts.
 * Stateless; any thread.
 */
#ifndef SY_POLICY_PB_H
#define SY_POLICY_PB_H

#include <stddef.h>
#include <stdint.h>

#include "switchyard/v1/policy.pb-c.h"
#include "sy_policy.h"

/* Serialises <pol> as a switchyard.v1.Policy. Returns a heap buffer (caller frees) and
 * its length in *len. */
uint8_t *sy_policy_pack(const struct sy_policy *pol, size_t *len);

/* Compiles the switchyard.v1.Policy in <data> (<len> bytes). Returns a new policy with
 * refcount 1, or NULL with *errmsg set (caller frees). */
struct sy_policy *sy_policy_unpack(const uint8_t *data, size_t len, char **errmsg);

/* The same from an already unpacked message. */
struct sy_policy *sy_policy_from_pb(const Switchyard__V1__Policy *msg, char **errmsg);

#endif
