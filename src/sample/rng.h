/* rng.h — explicit, seedable pseudo-random state for sampling.
 *
 * Owns: xoshiro256** (Blackman and Vigna, 2018) seeded through splitmix64, and uniform
 * doubles in [0, 1) built from its top 53 bits.
 * Does not own: where seeds come from. Nothing here reads a clock or the OS entropy pool:
 * a caller that wants a fresh stream passes a fresh seed, so every run is a pure function
 * of its seed. No globals: each ks_rng is a plain value owned by whoever embeds it. */
#ifndef KS_RNG_H
#define KS_RNG_H

#include <stdint.h>

typedef struct ks_rng {
    uint64_t s[4]; /* never all zero once seeded */
} ks_rng;

/* Any 64-bit seed, zero included, gives a valid, distinct stream. */
void ks_rng_seed(ks_rng *rng, uint64_t seed);

uint64_t ks_rng_next_u64(ks_rng *rng);

/* Uniform in [0, 1): 53 random bits, every value a multiple of 2^-53. */
double ks_rng_uniform(ks_rng *rng);

#endif
