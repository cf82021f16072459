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

/* _GNU_SOURCE only: move the calling thread into another namespace (the WAN emulator of the test
   hosts opens a TUN device inside each host's network namespace). */
extern int setns(int fd, int nstype);

static inline int ccat_enter_network_namespace(int fd) { return setns(fd, 0x40000000 /* CLONE_NEWNET */); }

/* Attach descriptor fd (an open /dev/net/tun) to a new layer-3 TUN device named name, without the
   packet-information header (IFF_TUN | IFF_NO_PI). <linux/if_tun.h>'s TUNSETIFF is
   _IOW('T', 202, int); struct ifreq is a 16-byte name followed by the flags. */
extern int ioctl(int fd, unsigned long request, ...);

static inline int ccat_tun_attach(int fd, const char *name) {
    struct { char name[16]; short flags; char pad[22]; } request = {{0}, 0x0001 | 0x1000, {0}};
    for (int i = 0; i < 15 && name[i]; i++) request.name[i] = name[i];
    return ioctl(fd, 0x400454caUL, &request);
}

/* _GNU_SOURCE only: poll with a timeout in nanoseconds (a negative timeout waits without limit). */
#include <poll.h>
#include <time.h>
extern int ppoll(struct pollfd *fds, nfds_t count, const struct timespec *timeout, const void *sigmask);

static inline int ccat_poll_nanoseconds(struct pollfd *fds, nfds_t count, long long timeout) {
    if (timeout < 0) return ppoll(fds, count, 0, 0);
    struct timespec limit = { (time_t)(timeout / 1000000000LL), (long)(timeout % 1000000000LL) };
    return ppoll(fds, count, &limit, 0);
}

#endif
