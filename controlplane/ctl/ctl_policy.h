/* controlplane/ctl/ctl_policy.h - `switchyardctl policy ...`: push, list, get, diff,
 * activate against the admin API's /v1/policies.
 *
 * Each command returns a process exit code (enum ctl_exit) and prints its own messages.
 * The print functions are split from the requests so tests can feed them JSON; they
 * check the reply's shape and return -EINVAL with *errmsg (caller frees) naming what
 * was unexpected, having printed nothing or a partial table. Single-threaded.
 */
#ifndef CTL_POLICY_H
#define CTL_POLICY_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctl_args.h"

/* Largest policy file `policy push` sends. */
#define CTL_MAX_POLICY (16u * 1024 * 1024)

int ctl_policy_push(const struct ctl_args *a);
int ctl_policy_list(const struct ctl_args *a);
int ctl_policy_get(const struct ctl_args *a);
int ctl_policy_diff(const struct ctl_args *a);
int ctl_policy_activate(const struct ctl_args *a);

/* The Content-Type for policy text <src> (<len> bytes): "application/json" when the first
 * character after a UTF-8 byte-order mark and whitespace is '{', else "application/yaml". */
const char *ctl_policy_content_type(const char *src, size_t len);

/* Prints the reply of GET /v1/policies as a table (<width>: see ctl_table_print). */
int ctl_policy_print_list(FILE *out, const cJSON *reply, size_t width, char **errmsg);

/* Prints the reply of GET /v1/policies/N as a short header, a blank line and the source. */
int ctl_policy_print_summary(FILE *out, const cJSON *reply, int64_t now_ms, char **errmsg);

/* Prints a unified diff, colouring '+' lines green and '-' lines red when <colour>. */
void ctl_policy_print_diff(FILE *out, const char *diff, bool colour);

#endif
