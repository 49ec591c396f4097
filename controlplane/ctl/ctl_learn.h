/* controlplane/ctl/ctl_learn.h - `switchyardctl learn status|freeze|unfreeze|rollback`: the
 * control plane's learned routing (GET /v1/learn, POST /v1/learn/{freeze,unfreeze,rollback};
 * docs/learning.md).
 *
 * Single-threaded. The print functions are split from the requests so tests can feed them
 * JSON; see ctl_policy.h for the error convention.
 */
#ifndef CTL_LEARN_H
#define CTL_LEARN_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctl_args.h"

/* `learn status`. Returns a process exit code (enum ctl_exit). */
int ctl_learn_status(const struct ctl_args *a);

/* `learn freeze|unfreeze|rollback [ROUTE]` (a->cmd says which, a->route which route, NULL =
 * all). Returns a process exit code. */
int ctl_learn_action(const struct ctl_args *a);

/* Prints a GET /v1/learn reply: who leads, what is frozen, then per learned route its
 * update times and a table of its targets (weight, share, posterior, cost, latency). Times
 * are shown relative to <now_ms>; <width> limits the tables (see ctl_table_print). Returns
 * 0, or -EINVAL with *errmsg (caller frees) naming the unexpected member. */
int ctl_learn_print(FILE *out, const cJSON *reply, int64_t now_ms, size_t width, char **errmsg);

/* Prints the reply of a freeze, unfreeze (<cmd>) or rollback in one or two lines. Returns 0
 * or -EINVAL with *errmsg. */
int ctl_learn_print_action(FILE *out, enum ctl_cmd cmd, const cJSON *reply, char **errmsg);

#endif
