/* The floor under any open-loop load generator on this machine: the schedule of
 * `interpserve bench --rate R` (constant arrivals, latency from each request's due time), kept
 * by a C program with nothing else to do, against the same server in the same run.
 *
 *     floor_client PORT RATE SECONDS [CONNECTIONS]
 *
 * Sends GET / on up to CONNECTIONS (64) keep-alive connections to 127.0.0.1:PORT, opened before
 * the schedule starts; a due request with no idle connection waits for one. Takes the
 * generator's scheduling (nice -10 and SCHED_FIFO priority 1, each where allowed). Each
 * response must arrive in one read, as bench.bare_server's do: only for that server. Prints
 * one JSON object: answered requests/s, latency percentiles in ms, requests dispatched more
 * than 2 ms late, whether it ran real-time. bench/generators.py builds it with cc.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 256
#define TIMER_KEY 0xFFFFFFFFu
#define LATE_NS 2000000LL

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void arm(int fd, long long at) {
    struct itimerspec when = {0};
    when.it_value.tv_sec = at / 1000000000LL;
    when.it_value.tv_nsec = at % 1000000000LL;
    timerfd_settime(fd, TFD_TIMER_ABSTIME, &when, NULL);
}

static double ms_at(const long long *sorted, long n, double share) {
    long i = (long)(share * n);
    return (i < n ? sorted[i] : sorted[n - 1]) / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: floor_client PORT RATE SECONDS [CONNECTIONS]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    double rate = atof(argv[2]), seconds = atof(argv[3]);
    int count = argc > 4 ? atoi(argv[4]) : 64;
    if (count < 1 || count > MAX_CONNECTIONS || rate <= 0 || seconds <= 0) {
        fprintf(stderr, "floor_client: bad arguments\n");
        return 2;
    }
    setpriority(PRIO_PROCESS, 0, -10);
    struct sched_param fifo = {.sched_priority = 1};
    int realtime = sched_setscheduler(0, SCHED_FIFO, &fifo) == 0;

    static const char request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int epoll = epoll_create1(0);
    int fds[MAX_CONNECTIONS], idle[MAX_CONNECTIONS], idle_count = 0;
    long long started[MAX_CONNECTIONS];
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < count; i++) {
        int one = 1;
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fds[i], (struct sockaddr *)&address, sizeof address) != 0) {
            perror("floor_client: connect");
            return 1;
        }
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(epoll, EPOLL_CTL_ADD, fds[i], &event);
        idle[idle_count++] = i;
    }
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event timer_event = {.events = EPOLLIN, .data.u32 = TIMER_KEY};
    epoll_ctl(epoll, EPOLL_CTL_ADD, timer, &timer_event);

    long total = (long)(rate * seconds), sent = 0, answered = 0, late = 0, head = 0, tail = 0;
    long long period = (long long)(1e9 / rate);
    long long *latency = malloc(total * sizeof *latency), *queue = malloc(total * sizeof *queue);
    long long start = now_ns() + 10000000LL;
    arm(timer, start);
    char buffer[65536];
    struct epoll_event ready[MAX_CONNECTIONS + 1];
    while (answered < total) {
        int n = epoll_wait(epoll, ready, MAX_CONNECTIONS + 1, 5000);
        if (n <= 0) {
            fprintf(stderr, "floor_client: no answer for 5 s\n");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            unsigned key = ready[k].data.u32;
            if (key == TIMER_KEY) {
                unsigned long long expirations;
                if (read(timer, &expirations, sizeof expirations) < 0) { /* spurious */ }
                long long now = now_ns();
                while (sent < total && start + sent * period <= now) {
                    long long due = start + sent * period;
                    sent++;
                    late += now - due > LATE_NS;
                    if (idle_count) {
                        int c = idle[--idle_count];
                        started[c] = due;
                        if (write(fds[c], request, sizeof request - 1) < 0) return 1;
                    } else {
                        queue[tail++] = due;
                    }
                }
                if (sent < total) arm(timer, start + sent * period);
                continue;
            }
            if (read(fds[key], buffer, sizeof buffer) <= 0) {
                fprintf(stderr, "floor_client: the server closed a connection\n");
                return 1;
            }
            latency[answered++] = now_ns() - started[key];
            if (head < tail) {
                started[key] = queue[head++];
                if (write(fds[key], request, sizeof request - 1) < 0) return 1;
            } else {
                idle[idle_count++] = (int)key;
            }
        }
    }
    double elapsed = (now_ns() - start) / 1e9;
    qsort(latency, answered, sizeof *latency, by_value);
    printf("{\"rate\": %.1f, \"rps\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"p99_9_ms\": %.3f, \"max_ms\": %.3f, \"late\": %ld, \"realtime\": %s}\n",
           rate, answered / elapsed, ms_at(latency, answered, 0.5), ms_at(latency, answered, 0.99),
           ms_at(latency, answered, 0.999), latency[answered - 1] / 1e6, late,
           realtime ? "true" : "false");
    return 0;
}
