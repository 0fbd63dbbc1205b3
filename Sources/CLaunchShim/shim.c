#define _GNU_SOURCE
#include "CLaunchShim.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#endif

struct spawn_request {
    const char *path;
    char *const *argv;
    char *const *envp;
    const int *fd_map;
    int fd_map_count;
    int new_session;
    int death_signal;
    const char *ro_source;
    const char *ro_view;
    pid_t result;
    int error;
    int done;
};

#define CLS_MAX_FDS 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t request_ready = PTHREAD_COND_INITIALIZER;
static pthread_cond_t request_done = PTHREAD_COND_INITIALIZER;
static struct spawn_request *pending = NULL;
/// Whether the spawner thread runs; guarded by `lock`. Set only once a start succeeded,
/// so a failed start (EAGAIN: out of threads) is reported and tried again next call.
static int spawner_running = 0;

/// Tests only (cls_test_fail_spawner_start): read under `lock`.
static int fail_spawner_start = 0;

void cls_test_fail_spawner_start(int on) {
    pthread_mutex_lock(&lock);
    fail_spawner_start = on;
    pthread_mutex_unlock(&lock);
}

static void write_errno_and_exit(int pipe_fd, int err) {
    ssize_t ignored = write(pipe_fd, &err, sizeof err);
    (void)ignored;
    _exit(127);
}

static void close_all_from(int first) {
#if defined(__linux__) && defined(SYS_close_range)
    if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0) return;
#endif
    struct rlimit rl;
    int limit = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1048576)
        limit = (int)rl.rlim_cur;
    for (int fd = first; fd < limit; fd++) close(fd);
}

#if defined(__linux__)
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442 /* the same number on every arch (new syscalls are unified) */
#endif
struct cls_mount_attr { unsigned long long attr_set, attr_clr, propagation, userns_fd; };

/// The read-only view: in a mount namespace of the child's own, `source` is bind-mounted
/// (recursively) at `view` and every mount of that tree is made read-only, so the child
/// (virtiofsd) serves `view` and cannot write a byte under it whatever its client asks.
/// The C virtiofsd has no read-only mode; this is what makes a share read-only on the host.
/// A bind of `/` onto a folder also gets the C virtiofsd past its `pivot_root(., .)`, which
/// fails with EBUSY when the shared folder is its namespace's root. Raw syscalls only.
static int make_read_only_view(const char *source, const char *view) {
    if (unshare(CLONE_NEWNS) < 0) return -1;
    // Private: nothing mounted here propagates back to the host's namespace.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -1;
    if (mkdir(view, 0700) < 0 && errno != EEXIST) return -1;
    if (mount(source, view, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
    // Every mount of the tree, not only its top (MS_RDONLY on a remount would leave
    // /home, /boot, ... writable): mount_setattr(2), Linux 5.12+.
    struct cls_mount_attr attr = {MOUNT_ATTR_RDONLY, 0, 0, 0};
    if (syscall(SYS_mount_setattr, AT_FDCWD, view, AT_RECURSIVE, &attr, sizeof attr) < 0) return -1;
    return 0;
}
#endif

/// Runs in the child between vfork and exec: async-signal-safe calls only, nothing
/// that writes memory the parent uses (the child shares it until execve or _exit),
/// and it never returns. Every signal is blocked on entry (see perform()).
static void child_after_fork(struct spawn_request *r, int err_pipe, pid_t parent) {
    if (r->new_session && setsid() < 0) write_errno_and_exit(err_pipe, errno);
#if defined(__linux__)
    if (r->ro_source && r->ro_view && make_read_only_view(r->ro_source, r->ro_view) < 0)
        write_errno_and_exit(err_pipe, errno);
#endif
#if defined(__linux__)
    if (r->death_signal > 0) {
        if (prctl(PR_SET_PDEATHSIG, r->death_signal) < 0) write_errno_and_exit(err_pipe, errno);
        // The parent may have died before prctl took effect.
        if (getppid() != parent) _exit(127);
    }
#endif
    // Default dispositions first, then unblock: a signal must never run one of the
    // parent's handlers in this child, which shares the parent's memory.
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        signal(sig, SIG_DFL);
    }
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    // Stage every source above all targets and the error pipe first, so that a
    // dup2 onto a target never clobbers a source still to be placed.
    int max_target = 2;
    for (int i = 0; i < r->fd_map_count; i++)
        if (r->fd_map[2 * i + 1] > max_target) max_target = r->fd_map[2 * i + 1];
    // The error pipe may sit on a target number: move it above all targets.
    if (err_pipe <= max_target) {
        int moved = fcntl(err_pipe, F_DUPFD_CLOEXEC, max_target + 1);
        if (moved < 0) write_errno_and_exit(err_pipe, errno);
        close(err_pipe);
        err_pipe = moved;
    }
    int floor = err_pipe + 1;
    int staged[CLS_MAX_FDS];
    for (int i = 0; i < r->fd_map_count; i++) {
        staged[i] = fcntl(r->fd_map[2 * i], F_DUPFD_CLOEXEC, floor);
        if (staged[i] < 0) write_errno_and_exit(err_pipe, errno);
    }
    for (int i = 0; i < r->fd_map_count; i++)
        if (dup2(staged[i], r->fd_map[2 * i + 1]) < 0) write_errno_and_exit(err_pipe, errno);
    // Close everything that is not a target (the staged copies and every
    // inherited fd). The error pipe is close-on-exec and stays until execve.
    for (int fd = 0; fd <= max_target; fd++) {
        int keep = fd == err_pipe;
        for (int i = 0; i < r->fd_map_count; i++)
            if (r->fd_map[2 * i + 1] == fd) keep = 1;
        if (!keep) close(fd);
    }
    for (int fd = max_target + 1; fd < err_pipe; fd++) close(fd);
    close_all_from(err_pipe + 1);
    execve(r->path, r->argv, r->envp);
    write_errno_and_exit(err_pipe, errno);
}

static void perform(struct spawn_request *r) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
        r->result = -1;
        r->error = errno;
        return;
    }
    pid_t parent = getpid();
    // All signals blocked across the vfork, so none reaches the child before it has
    // reset its dispositions; the spawner thread's own mask is restored right after.
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
#if defined(__linux__)
    // vfork: the child borrows this process's memory until execve instead of copying
    // its page tables (fork cost about 1 ms here against 0.2 ms for Python's vfork-based
    // subprocess; see Benchmarks/RESULTS-supervision.md). This thread waits meanwhile.
    pid_t pid = vfork();
#else
    pid_t pid = fork();
#endif
    if (pid == 0) child_after_fork(r, pipe_fds[1], parent);
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        r->result = -1;
        r->error = fork_errno;
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return;
    }
    close(pipe_fds[1]);
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(pipe_fds[0], &child_errno, sizeof child_errno);
    } while (n < 0 && errno == EINTR);
    close(pipe_fds[0]);
    if (n == (ssize_t)sizeof child_errno) {
        // exec failed: reap the child here so no zombie is left behind.
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        r->result = -1;
        r->error = child_errno;
        return;
    }
    r->result = pid;
    r->error = 0;
}

static void *spawner_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (pending == NULL) pthread_cond_wait(&request_ready, &lock);
        struct spawn_request *r = pending;
        perform(r);
        r->done = 1;
        pending = NULL;
        pthread_cond_broadcast(&request_done);
    }
    return NULL;
}

/// Starts the spawner thread; 0 or the errno of pthread_create. Called with `lock` held.
static int start_spawner_locked(void) {
    if (spawner_running) return 0;
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, spawner_main, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0) spawner_running = 1;
    return rc;
}

pid_t cls_spawn(const char *path, char *const argv[], char *const envp[],
                const int *fd_map, int fd_map_count, int new_session,
                int death_signal, int *error_out) {
    return cls_spawn_read_only_view(path, argv, envp, fd_map, fd_map_count, new_session,
                                    death_signal, NULL, NULL, error_out);
}

pid_t cls_spawn_read_only_view(const char *path, char *const argv[], char *const envp[],
                               const int *fd_map, int fd_map_count, int new_session,
                               int death_signal, const char *ro_source, const char *ro_view,
                               int *error_out) {
    if (fd_map_count < 0 || fd_map_count > CLS_MAX_FDS) {
        if (error_out) *error_out = EINVAL;
        return -1;
    }
    struct spawn_request r = {path, argv, envp, fd_map, fd_map_count, new_session,
                              death_signal, ro_source, ro_view, -1, 0, 0};
    pthread_mutex_lock(&lock);
    // Without the spawner thread nobody would ever take the request: report why.
    int start_error = fail_spawner_start ? EAGAIN : start_spawner_locked();
    if (start_error != 0) {
        pthread_mutex_unlock(&lock);
        if (error_out) *error_out = start_error;
        return -1;
    }
    while (pending != NULL) pthread_cond_wait(&request_done, &lock);
    pending = &r;
    pthread_cond_signal(&request_ready);
    while (!r.done) pthread_cond_wait(&request_done, &lock);
    pthread_mutex_unlock(&lock);
    if (r.result < 0 && error_out) *error_out = r.error;
    return r.result;
}

int cls_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

#if defined(__linux__)
#include <sys/epoll.h>

int cls_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cls_epoll_add(int epfd, int fd, uint64_t id) {
    struct epoll_event event = {.events = EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP, .data.u64 = id};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int cls_epoll_remove(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

int cls_epoll_wait(int epfd, uint64_t *ids, int max_ids, int timeout_ms) {
    struct epoll_event events[64];
    if (max_ids > 64) max_ids = 64;
    int count = epoll_wait(epfd, events, max_ids, timeout_ms);
    for (int i = 0; i < count; i++) ids[i] = events[i].data.u64;
    return count;
}
#endif

int cls_pidfd_open(pid_t pid) {
#if defined(__linux__) && defined(SYS_pidfd_open)
    return (int)syscall(SYS_pidfd_open, pid, 0);
#elif defined(__linux__)
    return (int)syscall(434, pid, 0);  /* the same number on every Linux arch */
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

void cls_name_this_thread(const char *name) {
#if defined(__linux__)
    char short_name[16];
    strncpy(short_name, name, sizeof short_name - 1);
    short_name[sizeof short_name - 1] = 0;
    pthread_setname_np(pthread_self(), short_name);
#elif defined(__APPLE__)
    pthread_setname_np(name);
#endif
}
