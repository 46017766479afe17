/* CPU time per syscall of the calling process, for `cargo xtask bench hooks`: what the sensor's
 * syscall hooks add to every process on the node. Prints one JSON object, best of 5 rounds:
 * - write_devnull: a followed syscall on a descriptor that is not a socket;
 * - getppid: a syscall the sensor does not follow;
 * - socketpair: write + read of an HTTP-looking message on a Unix socket pair (followed; the
 *   agent sees its first bytes and mutes it unless it follows it). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void) {
    const int n = 1000000;
    static const char msg[] = "GET / HTTP/1.1\r\n\r\n";
    char buf[64] = {0};
    int devnull = open("/dev/null", O_WRONLY);
    int sv[2];
    if (devnull < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("setup");
        return 1;
    }
    double best[3] = {1e18, 1e18, 1e18};
    for (int r = 0; r < 5; r++) {
        double t0 = cpu_ns();
        for (int i = 0; i < n; i++)
            if (write(devnull, buf, 8) != 8) return 1;
        double t1 = cpu_ns();
        for (int i = 0; i < n; i++) syscall(SYS_getppid);
        double t2 = cpu_ns();
        for (int i = 0; i < n / 2; i++) {
            if (write(sv[0], msg, sizeof msg - 1) < 0 || read(sv[1], buf, sizeof buf) < 0) return 1;
        }
        double t3 = cpu_ns();
        double per[3] = {(t1 - t0) / n, (t2 - t1) / n, (t3 - t2) / n};
        for (int k = 0; k < 3; k++)
            if (per[k] < best[k]) best[k] = per[k];
    }
    printf("{\"write_devnull\": %.1f, \"getppid\": %.1f, \"socketpair\": %.1f}\n", best[0], best[1], best[2]);
    return 0;
}
