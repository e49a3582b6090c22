/* A stand-in for libFuzzer where clang is not available: feeds LLVMFuzzerTestOneInput with random
 * inputs and mutations of earlier ones (bit flips, byte overwrites, splices, truncations) for a
 * given number of seconds, under gcc's AddressSanitizer + UBSan.  Not coverage-guided: use
 * `make fuzz` with clang for that.
 *     fuzz_gcc SECONDS [SEED]   prints the number of executions
 * FUZZ_SAVE=path writes the input that crashed; FUZZ_REPLAY=path runs one saved input.
 * FUZZ_UNIT_TIMEOUT=seconds (default 60) fails an input that runs longer: a hang is a bug too. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FUZZ_SAVE: the input that was running when the process aborted (sanitizer report) is written
 * from the signal handler */
static const uint8_t *cur;
static size_t cur_len;
static int save_fd = -1;
static void on_abort(int sig)
{
    (void)sig;
    if (save_fd >= 0 && cur) {
        ssize_t r = write(save_fd, cur, cur_len);
        (void)r;
    }
    _exit(1);
}

static void on_alarm(int sig)
{
    static const char msg[] = "fuzz: an input ran longer than FUZZ_UNIT_TIMEOUT (a hang)\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    on_abort(sig);
}

static uint64_t st = 0x243F6A8885A308D3ull;
static uint64_t next(void)
{
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return st;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 10.0;
    if (argc > 2) st = strtoull(argv[2], NULL, 10) * 2654435761ull + 1;
    enum { POOL = 64, MAXLEN = 1024 };
    static uint8_t pool[POOL][MAXLEN];
    static size_t plen[POOL];
    uint8_t buf[MAXLEN];
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long long execs = 0;
    const char *save = getenv("FUZZ_SAVE");
    if (save) {
        save_fd = open(save, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        signal(SIGABRT, on_abort);
    }
    const char *ut = getenv("FUZZ_UNIT_TIMEOUT");
    const unsigned unit_timeout = ut ? (unsigned)atoi(ut) : 60u;
    signal(SIGALRM, on_alarm);
    const char *replay = getenv("FUZZ_REPLAY");
    if (replay) { /* FUZZ_REPLAY=path: run one saved input */
        FILE *fh = fopen(replay, "rb");
        if (!fh) return 2;
        size_t len = fread(buf, 1, MAXLEN, fh);
        fclose(fh);
        alarm(unit_timeout);
        LLVMFuzzerTestOneInput(buf, len);
        alarm(0);
        printf("replayed %zu bytes, no crash\n", len);
        return 0;
    }
    for (;;) {
        size_t len;
        if (execs < POOL || next() % 4 == 0) { /* fresh random input */
            len = next() % MAXLEN;
            for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)next();
        } else { /* mutate a pooled one */
            size_t src = next() % POOL;
            len = plen[src];
            memcpy(buf, pool[src], len);
            int muts = 1 + (int)(next() % 8);
            for (int u = 0; u < muts && len > 0; u++) {
                switch (next() % 4) {
                case 0: buf[next() % len] ^= (uint8_t)(1u << (next() % 8)); break;
                case 1: buf[next() % len] = (uint8_t)next(); break;
                case 2: len = next() % (len + 1); break; /* truncate */
                default: { /* splice from another */
                    size_t o = next() % POOL, at = next() % (len + 1), n = plen[o];
                    if (at + n > MAXLEN) n = MAXLEN - at;
                    memcpy(buf + at, pool[o], n);
                    if (at + n > len) len = at + n;
                }
                }
            }
        }
        cur = buf;
        cur_len = len;
        alarm(unit_timeout);
        LLVMFuzzerTestOneInput(buf, len);
        alarm(0);
        size_t slot = (size_t)(execs % POOL);
        memcpy(pool[slot], buf, len);
        plen[slot] = len;
        execs++;
        if ((execs & 63) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) > seconds) break;
        }
    }
    printf("%lld executions in %.0f s, no crash\n", execs, seconds);
    return 0;
}
