/* controlplane/store/cp_store_etcd.h - etcd v3 through its JSON gateway (libcurl). */
#ifndef CP_STORE_ETCD_H
#define CP_STORE_ETCD_H

#include "cp_store.h"

/* Opens a store on the etcd cluster at <endpoints> ("http://H:P[,http://H:P...]"), keys
 * under <prefix> (e.g. "/switchyard"). Checks that one endpoint answers. Returns NULL with
 * *errmsg set (caller frees). */
struct cp_store *cp_store_etcd_open(const char *endpoints, const char *prefix, char **errmsg);

#endif
