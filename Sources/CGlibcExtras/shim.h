#ifndef CCAT_CGLIBCEXTRAS_SHIM_H
#define CCAT_CGLIBCEXTRAS_SHIM_H

#include <spawn.h>

/* glibc >= 2.34 declares this only under _GNU_SOURCE, which Swift's Glibc module does not set. */
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);

/* Close every descriptor >= from in the spawned child. */
static inline int ccat_spawn_close_from(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

#endif
