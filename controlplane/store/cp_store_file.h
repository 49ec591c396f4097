/* controlplane/store/cp_store_file.h - the embedded file store (one control plane). */
#ifndef CP_STORE_FILE_H
#define CP_STORE_FILE_H

#include "cp_store.h"

/* Opens (creating if needed) the store in directory <dir>. Writes are durable when they
 * return: written to a temporary file, fsynced, renamed over, directory fsynced. Returns
 * NULL with *errmsg set (caller frees). */
struct cp_store *cp_store_file_open(const char *dir, char **errmsg);

#endif
