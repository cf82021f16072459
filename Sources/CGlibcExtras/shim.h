#ifndef CCAT_CGLIBCEXTRAS_SHIM_H
#define CCAT_CGLIBCEXTRAS_SHIM_H

#include <spawn.h>
#include <sys/types.h>
#include <sys/syscall.h>
#include <unistd.h>

/* glibc >= 2.34 declares this only under _GNU_SOURCE, which Swift's Glibc module does not set. */
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);

/* Close every descriptor >= from in the spawned child. */
static inline int ccat_spawn_close_from(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

/* glibc >= 2.29, _GNU_SOURCE only: the spawned child's working directory. */
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

static inline int ccat_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

/* Also _GNU_SOURCE only: in-kernel file copy (server-side on NFS 4.2, reflink on XFS/Btrfs). */
extern ssize_t copy_file_range(int fd_in, off_t *off_in, int fd_out, off_t *off_out, size_t len, unsigned int flags);

static inline ssize_t ccat_copy_file_range(int fd_in, int fd_out, size_t len) {
    return copy_file_range(fd_in, 0, fd_out, 0, len, 0);
}

/* _GNU_SOURCE only as well: start or wait for writeback of a byte range of a file. The flag values
   are the kernel's SYNC_FILE_RANGE_WAIT_BEFORE (1), _WRITE (2) and _WAIT_AFTER (4). */
extern int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags);

static inline int ccat_start_writeback(int fd, off_t offset, off_t length) {
    return sync_file_range(fd, offset, length, 2);
}

static inline int ccat_finish_writeback(int fd, off_t offset, off_t length) {
    return sync_file_range(fd, offset, length, 1 | 2 | 4);
}

/* Per-thread file system identity (Linux): files created as, and permissions checked for, another
   user without changing the process's credentials. Each returns the previous value. */
extern int setfsuid(uid_t fsuid);
extern int setfsgid(gid_t fsgid);

static inline int ccat_setfsuid(uid_t uid) { return setfsuid(uid); }
static inline int ccat_setfsgid(gid_t gid) { return setfsgid(gid); }

/* The supplementary groups of the calling thread only: the raw system call, because glibc's
   setgroups() changes every thread of the process. */
static inline int ccat_thread_setgroups(size_t count, const gid_t *groups) {
    return (int)syscall(SYS_setgroups, count, groups);
}

/* O_PATH (_GNU_SOURCE only): a directory descriptor for walking a path with openat, which needs
   only search permission on the directory, not read permission. The value is the kernel's
   (asm-generic, as on x86_64 and aarch64); <fcntl.h> is not included here, as it would bring
   struct stat into this module. */
static const int ccat_o_path = 010000000;

#endif
