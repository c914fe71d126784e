/* Signals: stop requests for runs that can checkpoint, and a clean end for every other
 * SIGTERM/SIGINT: temporaries removed, a dead rank named, the process gone by the signal. */
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/ctx_internal.h"

/* Everything here is read by signal handlers, which may use neither the
 * context nor malloc: signals are per process, so this is per-process state,
 * written by the main thread before the handlers can need it. */

#define TEMP_MAX 64
#define TEMP_PATH 4096

static struct temp_slot {
    volatile sig_atomic_t used;
    int is_dir;
    char path[TEMP_PATH];
} temps[TEMP_MAX];

static volatile sig_atomic_t stop_sig; /* the signal that asked a run to stop */
static volatile sig_atomic_t armed;    /* a run can checkpoint: SIGTERM/INT/USR1 only note */
static volatile sig_atomic_t installed;
static char hint[1024] = "nothing was written; run the command again";

/* The peer table's copy for handlers: pids of the ranks on this host. */
static int me_start = -1, npeers;
static int *peer_start;
static pid_t *peer_pid;
static char my_host[LOOM_HOST_MAX];
/* Tombstones shared by the ranks on this host, one slot per start rank: a rank
 * that ends on a signal writes its pid in its slot first, so that the others
 * tell a rank the launcher stopped from the one that died and made it stop. */
static volatile pid_t *tomb;
static size_t tomb_bytes;

/* SIGPIPE: the launcher's output forwarding is gone (it is ending the job);
 * SIGUSR1 stays last (loom_stop_arm installs it separately). */
static const int handled[] = {SIGTERM, SIGINT, SIGPIPE, SIGUSR1};
#define NHANDLED ((int)(sizeof handled / sizeof *handled))
static struct sigaction previous[NHANDLED];

/* Crashes, taken only with ULFM on: Open MPI 5's launcher in that mode does
 * not count a rank that died of a signal in its exit status (when every rank
 * did, mpirun exits 0), and its I/O and failure handling can crash after a
 * failure. A crash there becomes a message, a backtrace and exit 128 + signal. */
static const int crashes[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NCRASHES ((int)(sizeof crashes / sizeof *crashes))
static struct sigaction crash_previous[NCRASHES];
static volatile sig_atomic_t crash_installed;

/* ------------------------------------------------------------------ async-signal-safe helpers */

static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        buf[at++] = *s++;
    buf[at] = '\0';
    return at;
}

static size_t put_int(char *buf, size_t at, size_t cap, long long v)
{
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? (unsigned long long)(-(v + 1)) + 1 : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u && n < (int)sizeof tmp);
    if (v < 0 && at + 1 < cap) buf[at++] = '-';
    while (n > 0 && at + 1 < cap)
        buf[at++] = tmp[--n];
    buf[at] = '\0';
    return at;
}

/* Is process `pid` on this host gone (or a zombie nobody reaped yet)? */
static int pid_gone(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH) return 1;
    char path[64];
    size_t n = put_str(path, 0, sizeof path, "/proc/");
    n = put_int(path, n, sizeof path, (long long)pid);
    put_str(path, n, sizeof path, "/stat");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT;
    char st[256];
    ssize_t got = read(fd, st, sizeof st - 1);
    close(fd);
    if (got <= 0) return 0;
    st[got] = '\0';
    /* "pid (comm) S ...": the state follows the last ')' */
    char *rp = NULL;
    for (char *p = st; *p; p++)
        if (*p == ')') rp = p;
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

/* Did local peer i die (rather than end on a signal as the launcher stopped the job)? */
static int peer_died(int i)
{
    if (tomb && tomb[peer_start[i]] == peer_pid[i]) return 0;
    return pid_gone(peer_pid[i]);
}

/* Remove a file, or a directory tree (bounded depth), with system calls only. */
static void remove_tree_at(int dirfd, const char *name, int depth)
{
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return;
    if (depth > 8) return;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    char buf[4096];
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            struct linux_dirent64 {
                unsigned long long d_ino;
                long long d_off;
                unsigned short d_reclen;
                unsigned char d_type;
                char d_name[];
            } *d = (struct linux_dirent64 *)(void *)(buf + off);
            off += d->d_reclen;
            if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..")) continue;
            remove_tree_at(fd, d->d_name, depth + 1);
        }
    }
    close(fd);
    unlinkat(dirfd, name, AT_REMOVEDIR);
}

static void remove_temps(void)
{
    for (int i = 0; i < TEMP_MAX; i++)
        if (temps[i].used) remove_tree_at(AT_FDCWD, temps[i].path, 0);
}

/* The lowest start rank on this host that is still alive: the one that
 * speaks when a local rank died (rank 0 when it is here and alive). */
static int local_speaker(void)
{
    int best = me_start;
    for (int i = 0; i < npeers; i++)
        if (peer_start[i] < best && !pid_gone(peer_pid[i])) best = peer_start[i];
    return best;
}

static const char *signame(int sig)
{
    return sig == SIGTERM   ? "SIGTERM"
           : sig == SIGINT  ? "SIGINT"
           : sig == SIGUSR1 ? "SIGUSR1"
           : sig == SIGPIPE ? "SIGPIPE"
                            : "a signal";
}

/* The end of a process on a signal: say why (one rank per host speaks),
 * remove this rank's temporaries, and die of the signal. */
static void end_on_signal(int sig)
{
    char msg[2048];
    size_t at = 0;
    int dead = -1;
    if (tomb) tomb[me_start] = getpid();
    for (int i = 0; i < npeers && dead < 0; i++)
        if (peer_died(i)) dead = i;
    if (local_speaker() == me_start) {
        if (dead >= 0) {
            at = put_str(msg, at, sizeof msg, "loom: error: ");
            at = put_str(msg, at, sizeof msg,
                         peer_start[dead] == 0 ? "the master, rank " : "worker rank ");
            at = put_int(msg, at, sizeof msg, peer_start[dead]);
            at = put_str(msg, at, sizeof msg, " (pid ");
            at = put_int(msg, at, sizeof msg, (long long)peer_pid[dead]);
            at = put_str(msg, at, sizeof msg, " on ");
            at = put_str(msg, at, sizeof msg, my_host);
            at = put_str(msg, at, sizeof msg,
                         ") died and the launcher stopped the job (this MPI has no ULFM to go on "
                         "without it); no output was written; ");
        } else if (me_start == 0 && sig != SIGPIPE) { /* a closed pipe needs no words */
            at = put_str(msg, at, sizeof msg, "loom: error: stopped by ");
            at = put_str(msg, at, sizeof msg, signame(sig));
            at = put_str(msg, at, sizeof msg,
                         " (the launcher stopped the job, or a user did); no output was written; ");
        }
        if (at) {
            at = put_str(msg, at, sizeof msg, hint);
            at = put_str(msg, at, sizeof msg, "\n");
            ssize_t w = write(STDERR_FILENO, msg, at);
            (void)w;
        }
    }
    remove_temps();
    signal(sig, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
    raise(sig);
    _exit(128 + sig);
}

static void on_signal(int sig)
{
    int dead = 0;
    for (int i = 0; i < npeers && !dead; i++)
        dead = peer_died(i);
    /* A run that can checkpoint stops at its next safe point, unless a rank
     * here died: then the job is broken and the launcher is ending it. */
    if (armed && !dead && sig != SIGPIPE) {
        if (!stop_sig) stop_sig = sig;
        return;
    }
    end_on_signal(sig);
}

static void on_crash(int sig)
{
    char msg[512];
    size_t at = put_str(msg, 0, sizeof msg, "loom: error: rank ");
    at = put_int(msg, at, sizeof msg, me_start);
    at = put_str(msg, at, sizeof msg, " (pid ");
    at = put_int(msg, at, sizeof msg, (long long)getpid());
    at = put_str(msg, at, sizeof msg, " on ");
    at = put_str(msg, at, sizeof msg, my_host);
    at = put_str(msg, at, sizeof msg, ") crashed (signal ");
    at = put_int(msg, at, sizeof msg, sig);
    at = put_str(msg, at, sizeof msg, "); its temporaries are removed; backtrace:\n");
    ssize_t w = write(STDERR_FILENO, msg, at);
    (void)w;
    void *frames[32];
    int n = backtrace(frames, 32);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    remove_temps();
    _exit(128 + sig);
}

/* ------------------------------------------------------------------ the interface */

/* Map the host's tombstones: a POSIX shared memory object named after the
 * lowest start rank here and its pid, opened by every rank on the host and
 * unlinked by that rank once all have it (the mapping outlives the name).
 * Without it (no /dev/shm) a rank the launcher stopped may be named as the dead
 * one; nothing else changes. Collective over the context's communicator. */
static void map_tombstones(loom_ctx_t *ctx)
{
    int low = me_start;
    pid_t low_pid = getpid();
    for (int i = 0; i < npeers; i++)
        if (peer_start[i] < low) {
            low = peer_start[i];
            low_pid = peer_pid[i];
        }
    char name[96];
    snprintf(name, sizeof name, "/loom-tomb-%d-%lld", low, (long long)low_pid);
    int fd = npeers ? shm_open(name, O_RDWR | O_CREAT, 0600) : -1;
    size_t bytes = (size_t)ctx->start_size * sizeof *tomb;
    if (fd >= 0) {
        if (ftruncate(fd, (off_t)bytes) == 0) {
            void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p != MAP_FAILED) {
                tomb = p;
                tomb_bytes = bytes;
            }
        }
        close(fd);
    }
    (void)MPI_Barrier(ctx->comm); /* a failure here only costs the tombstones */
    if (fd >= 0 && low == me_start) shm_unlink(name);
}

loom_status_t loom_signals_install(loom_ctx_t *ctx)
{
    if (installed) return LOOM_OK;
    me_start = ctx->start_rank ? ctx->start_rank[ctx->rank] : ctx->rank;
    snprintf(my_host, sizeof my_host, "%s", ctx->peers ? ctx->peers[me_start].host : "?");
    free(peer_start);
    free(peer_pid);
    npeers = 0;
    peer_start = malloc((size_t)ctx->start_size * sizeof *peer_start);
    peer_pid = malloc((size_t)ctx->start_size * sizeof *peer_pid);
    if (!peer_start || !peer_pid) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (int r = 0; ctx->peers && r < ctx->start_size; r++)
        if (r != me_start && !strcmp(ctx->peers[r].host, my_host)) {
            peer_start[npeers] = r;
            peer_pid[npeers] = (pid_t)ctx->peers[r].pid;
            npeers++;
        }
    map_tombstones(ctx);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < NHANDLED; i++)
        sigaddset(&sa.sa_mask, handled[i]);
    sa.sa_flags = SA_RESTART; /* MPI's and HDF5's system calls carry on */
    for (int i = 0; i < NHANDLED; i++) {
        /* SIGUSR1 is only taken while a run is armed (see loom_stop_arm) */
        if (handled[i] == SIGUSR1) continue;
        sigaction(handled[i], &sa, &previous[i]);
    }
    if (ctx->ft) {
        void *frame[1];
        backtrace(frame, 1); /* loads libgcc now, not in the handler */
        struct sigaction ca;
        memset(&ca, 0, sizeof ca);
        ca.sa_handler = on_crash;
        sigemptyset(&ca.sa_mask);
        ca.sa_flags = SA_RESETHAND | SA_NODEFER;
        for (int i = 0; i < NCRASHES; i++)
            sigaction(crashes[i], &ca, &crash_previous[i]);
        crash_installed = 1;
    }
    installed = 1;
    return LOOM_OK;
}

void loom_signals_restore(void)
{
    if (!installed) return;
    for (int i = 0; i < NHANDLED; i++)
        if (handled[i] != SIGUSR1) sigaction(handled[i], &previous[i], NULL);
    if (armed) sigaction(SIGUSR1, &previous[NHANDLED - 1], NULL);
    armed = 0;
    installed = 0;
    if (crash_installed)
        for (int i = 0; i < NCRASHES; i++)
            sigaction(crashes[i], &crash_previous[i], NULL);
    crash_installed = 0;
    if (tomb) munmap((void *)tomb, tomb_bytes);
    tomb = NULL;
}

void loom_stop_arm(loom_ctx_t *ctx, int on)
{
    (void)ctx;
    if (!installed) return;
    int usr1 = NHANDLED - 1;
    if (on && !armed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(SIGUSR1, &sa, &previous[usr1]);
        stop_sig = 0;
        armed = 1;
    } else if (!on && armed) {
        /* A stop noted after the run's last safe point is dropped: the run
         * finished anyway, and what is left (writing its output) is short. */
        armed = 0;
        sigaction(SIGUSR1, &previous[usr1], NULL);
        stop_sig = 0;
    }
}

int loom_stop_armed(const loom_ctx_t *ctx)
{
    (void)ctx;
    return armed;
}

int loom_stop_signal(const loom_ctx_t *ctx)
{
    (void)ctx;
    return stop_sig;
}

int loom_temp_register(loom_ctx_t *ctx, const char *path, int is_dir)
{
    if (!path || strlen(path) >= TEMP_PATH) return -1;
    char abs[TEMP_PATH];
    const char *p = path;
    if (path[0] != '/') {
        /* the handler may run after a chdir: keep an absolute path */
        if (!getcwd(abs, sizeof abs) || strlen(abs) + strlen(path) + 2 > sizeof abs) return -1;
        strcat(abs, "/");
        strcat(abs, path);
        p = abs;
    }
    for (int i = 0; i < TEMP_MAX; i++)
        if (!temps[i].used) {
            temps[i].is_dir = is_dir;
            memcpy(temps[i].path, p, strlen(p) + 1);
            temps[i].used = 1;
            return i;
        }
    loom_log(ctx, LOOM_LOG_VERBOSE, "more than %d temporaries; %s is not removed on a signal",
             TEMP_MAX, path);
    return -1;
}

void loom_temp_forget(loom_ctx_t *ctx, int handle)
{
    (void)ctx;
    if (handle >= 0 && handle < TEMP_MAX) temps[handle].used = 0;
}

void loom_set_resume_hint(loom_ctx_t *ctx, const char *text)
{
    (void)ctx;
    /* Written while no signal is being handled matters little: the handler
     * reads a NUL-terminated string that is rewritten in one pass. */
    char tmp[sizeof hint];
    snprintf(tmp, sizeof tmp, "%s", text ? text : "");
    memcpy(hint, tmp, sizeof hint);
}

const char *loom_resume_hint(const loom_ctx_t *ctx)
{
    (void)ctx;
    return hint;
}

const char *loom_hostname(const loom_ctx_t *ctx)
{
    int me = ctx->start_rank ? ctx->start_rank[ctx->rank] : ctx->rank;
    return ctx->peers ? ctx->peers[me].host : "?";
}

int loom_pid_alive_here(const loom_ctx_t *ctx, const char *host, long long pid)
{
    if (strcmp(host, loom_hostname(ctx)) != 0 || pid <= 0) return -1; /* cannot tell */
    return !pid_gone((pid_t)pid);
}
