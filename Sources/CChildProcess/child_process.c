#define _GNU_SOURCE
#include "child_process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void close_pair(int pair[2]) {
    if (pair[0] >= 0) close(pair[0]);
    if (pair[1] >= 0) close(pair[1]);
}

/// Closes every descriptor from 3 up except `keep` (async-signal-safe: no opendir). close_range (Linux 5.9) covers
/// the whole range whatever RLIMIT_NOFILE is (toolgate raises it to the hard limit, often 2^20 or more); without it,
/// every descriptor number below the limit is closed one by one.
static void close_others(int keep) {
#ifdef SYS_close_range
    int below = keep > 3 ? (int)syscall(SYS_close_range, 3U, (unsigned)keep - 1, 0U) : 0;
    if (below == 0 && syscall(SYS_close_range, keep >= 3 ? (unsigned)keep + 1 : 3U, ~0U, 0U) == 0) return;
#endif
    struct rlimit limit;
    long max = 1L << 20;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (rlim_t)max) {
        max = (long)limit.rlim_cur;
    }
    for (long fd = 3; fd < max; fd++) {
        if (fd != keep) close((int)fd);
    }
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) == -1 && errno == EINTR) {
    }
}

int toolgate_spawn(const char *file, char *const argv[], char *const envp[], toolgate_child *child) {
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, status[2] = {-1, -1}, guard[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(status, O_CLOEXEC) ||
        pipe2(guard, O_CLOEXEC)) {
        int e = errno;
        close_pair(in), close_pair(out), close_pair(err), close_pair(status), close_pair(guard);
        return e;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close_pair(in), close_pair(out), close_pair(err), close_pair(status), close_pair(guard);
        return e;
    }
    if (pid == 0) {
        // The child: its own process group, killed if the forking thread (or the process) dies.
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        // toolgate ignores SIGPIPE (it handles EPIPE); an ignored signal would stay ignored across exec.
        signal(SIGPIPE, SIG_DFL);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) {
            int e = errno;
            (void)!write(status[1], &e, sizeof e);
            _exit(127);
        }
        // Nothing of toolgate's (listening sockets, Redis connections) reaches the server: only the status pipe,
        // which closes on exec, stays open beyond 0, 1 and 2.
        close_others(status[1]);
        execvpe(file, argv, envp);
        int e = errno;
        (void)!write(status[1], &e, sizeof e);
        _exit(127);
    }
    // Both the parent and the guardian want the child's group to exist before anything signals it.
    setpgid(pid, pid);
    close(status[1]);
    status[1] = -1;
    int exec_errno = 0;
    ssize_t n;
    while ((n = read(status[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
    }
    close(status[0]);
    status[0] = -1;
    if (n > 0) {
        close_pair(in), close_pair(out), close_pair(err), close_pair(guard);
        return exec_errno ? exec_errno : ENOEXEC;
    }
    pid_t guardian = fork();
    if (guardian == 0) {
        // The guardian: a process group of its own (a signal to toolgate's group spares it), nothing of toolgate's
        // held open but the read end of its pipe. When that pipe closes, the child's group is ended.
        setpgid(0, 0);
        close_others(guard[0]);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        char byte;
        for (;;) {
            ssize_t r = read(guard[0], &byte, 1);
            if (r == 0 || (r < 0 && errno != EINTR)) break;
        }
        if (kill(-pid, 0) == 0) {
            kill(-pid, SIGTERM);
            for (int i = 0; i < 20 && kill(-pid, 0) == 0; i++) sleep_ms(100);
            kill(-pid, SIGKILL);
        }
        _exit(0);
    }
    close(in[0]), close(out[1]), close(err[1]), close(guard[0]);
    child->pid = pid;
    child->stdin_fd = in[1];
    child->stdout_fd = out[0];
    child->stderr_fd = err[0];
    child->guardian_pid = guardian > 0 ? guardian : -1;
    child->guardian_fd = guard[1];
    if (guardian < 0) {
        // No guardian: the child still dies with toolgate (PR_SET_PDEATHSIG); only its own children might not.
        close(guard[1]);
        child->guardian_fd = -1;
    }
    return 0;
}
