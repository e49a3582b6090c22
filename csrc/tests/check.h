/* Shared harness of the C unit tests: CHECK (counts and reports failures) and a seeded xorshift
 * generator.  Each test file includes it once and ends with REPORT(). */
#ifndef MONGE_TEST_CHECK_H
#define MONGE_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>

static int failures = 0, checks = 0;
#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        checks++;                                                                              \
        if (!(cond)) {                                                                         \
            failures++;                                                                        \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                        \
            printf(__VA_ARGS__);                                                               \
            printf("\n");                                                                      \
        }                                                                                      \
    } while (0)

#define REPORT() (printf("%d passed, %d failed\n", checks - failures, failures), failures != 0)

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static void rng_seed(uint64_t s) { rng_state = s ? s : 1; }
/* uniform in [0, 1) */
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}
#endif
