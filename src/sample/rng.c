/* rng.c — xoshiro256** and its splitmix64 seeding (see rng.h). */
#include "sample/rng.h"

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* splitmix64 spreads one 64-bit seed over the 256-bit state: consecutive seeds give
 * unrelated states, and the output is never four zero words (splitmix64 is a bijection
 * of its counter, so at most one of four consecutive outputs can be zero). */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ks_rng_seed(ks_rng *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

uint64_t ks_rng_next_u64(ks_rng *rng) {
    uint64_t *s = rng->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ks_rng_uniform(ks_rng *rng) {
    return (double)(ks_rng_next_u64(rng) >> 11) * 0x1.0p-53; /* 53 bits: a double's mantissa */
}
