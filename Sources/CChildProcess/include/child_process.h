#ifndef TOOLGATE_CHILD_PROCESS_H
#define TOOLGATE_CHILD_PROCESS_H

#include <sys/types.h>

/// A child process started by `toolgate_spawn`: its pid (also its process group id), the parent's ends of its
/// stdin, stdout and stderr pipes, and its guardian.
typedef struct {
    pid_t pid;
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
    /// The guardian process: it kills the child's whole process group when `guardian_fd` closes, which happens when
    /// toolgate closes it after the child ended, or when toolgate itself dies, even by SIGKILL.
    pid_t guardian_pid;
    int guardian_fd;
} toolgate_child;

/// Starts `file` (searched in PATH when it has no slash) with `argv` and `envp` (both NULL-terminated) in a process
/// group of its own, its stdin, stdout and stderr on fresh pipes. Returns 0, or the errno of what failed, `exec`
/// included (reported through a close-on-exec pipe, so a program that does not exist is an error here, not a child
/// that exits at once).
///
/// Call it from a thread that lives as long as the process: the child's PR_SET_PDEATHSIG fires when the thread that
/// forked it exits. Between fork and exec only async-signal-safe calls are made, as a multi-threaded parent needs.
int toolgate_spawn(const char *file, char *const argv[], char *const envp[], toolgate_child *child);

#endif
