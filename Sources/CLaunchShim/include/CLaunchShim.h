#ifndef CLAUNCHSHIM_H
#define CLAUNCHSHIM_H

#include <stdint.h>
#include <sys/types.h>

/// Spawns `path` with `argv` and `envp` (both NULL-terminated).
///
/// - `fd_map` holds `fd_map_count` pairs (source, target): the child gets
///   `source` at `target`; every other descriptor is closed in the child.
/// - `new_session`: the child calls setsid(), so a terminal's Ctrl-C reaches the
///   launcher only and the launcher decides how the child stops.
/// - `death_signal`: sent to the child when the launcher dies (Linux
///   PR_SET_PDEATHSIG; 0 = none; ignored on other systems).
///
/// The fork happens on one long-lived thread owned by the shim, because
/// PR_SET_PDEATHSIG fires when the *thread* that forked exits, and Swift's
/// worker threads come and go.
///
/// Returns the child's pid, or -1 with `*error_out` set to the errno of the
/// failing step (starting the spawner thread, fork, or execve in the child).
pid_t cls_spawn(const char *path, char *const argv[], char *const envp[],
                const int *fd_map, int fd_map_count, int new_session,
                int death_signal, int *error_out);

/// `cls_spawn`, and in the child before exec (Linux, root): a mount namespace of its
/// own in which `ro_source` is bind-mounted recursively at `ro_view` (made if missing)
/// and every mount under `ro_view` is read-only (mount_setattr, Linux 5.12+). The child
/// is then given `ro_view` to serve: a read-only share enforced by the host's kernel.
/// NULL `ro_source` = plain `cls_spawn`. A failing step's errno is returned like exec's.
pid_t cls_spawn_read_only_view(const char *path, char *const argv[], char *const envp[],
                               const int *fd_map, int fd_map_count, int new_session,
                               int death_signal, const char *ro_source, const char *ro_view,
                               int *error_out);



/// Names the calling thread as tools show it (ps -L, top -H, /proc/.../comm);
/// truncated to the 15 bytes Linux keeps. Foundation's Thread.name doesn't reach the OS on Linux.
void cls_name_this_thread(const char *name);

/// pipe2(fds, O_CLOEXEC), which Swift's Glibc module doesn't export.
int cls_pipe_cloexec(int fds[2]);

/// pidfd_open(pid, 0) with O_CLOEXEC semantics (Linux 5.3+): an fd that polls
/// readable when the process exits. -1 with errno elsewhere (ENOSYS).
int cls_pidfd_open(pid_t pid);

/// epoll, which Swift's Glibc module doesn't export; each fd is known by a 64-bit id.
/// Level-triggered, for reading (and hang-ups). `cls_epoll_wait` fills `ids` with the
/// ids of ready fds and returns how many, or -1 with errno.
int cls_epoll_create(void);
int cls_epoll_add(int epfd, int fd, uint64_t id);
int cls_epoll_remove(int epfd, int fd);
int cls_epoll_wait(int epfd, uint64_t *ids, int max_ids, int timeout_ms);

/// Tests only: when non-zero, starting the spawner thread fails with EAGAIN, as
/// pthread_create does when the process is out of threads.
void cls_test_fail_spawner_start(int on);
#endif
