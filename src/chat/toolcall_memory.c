/* toolcall_memory.c — the tool-call memory (see toolcall_memory.h).
 *
 *   buckets[hash & mask] ─> entry ─hnext─> entry ...        chained hash on the id
 *   head (most recent) <─prev/next─> ... <─> tail (next out) LRU list over all entries
 *
 * An entry is one allocation: the header, then id, name, args and raw, each followed by
 * a NUL. The mutex guards the table, the list and the byte count; counters are atomics
 * so that the comparison after a lookup (done unlocked) can count a mismatch. */
#include "chat/toolcall_memory.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Buckets to start with: a few agent turns' calls before the first doubling. */
#define INITIAL_BUCKETS 64

typedef struct entry {
    struct entry *hnext;        /* next in the bucket */
    struct entry *prev, *next;  /* LRU list neighbours (prev: more recent) */
    uint64_t hash;
    size_t charge;              /* bytes */
    size_t id_len, name_len, args_len, raw_len;
    char bytes[];               /* id\0 name\0 args\0 raw\0 */
} entry;

_Static_assert(sizeof(entry) + sizeof(entry *) <= KS_TOOLCALL_MEMORY_ENTRY_BYTES,
               "the fixed charge covers the header and its hash slot");

struct ks_toolcall_memory {
    pthread_mutex_t mu;
    size_t budget;     /* bytes */
    size_t bytes;      /* charged */
    size_t n;          /* entries */
    entry **buckets;
    size_t n_buckets;  /* a power of two */
    entry *head, *tail;
    _Atomic uint64_t hits, misses, mismatches, evictions;
};

static const char *entry_id(const entry *e) {
    return e->bytes;
}
static const char *entry_name(const entry *e) {
    return e->bytes + e->id_len + 1;
}
static const char *entry_args(const entry *e) {
    return entry_name(e) + e->name_len + 1;
}
static const char *entry_raw(const entry *e) {
    return entry_args(e) + e->args_len + 1;
}

/* ---- table and list (caller holds mu) -------------------------------------------------- */

static entry **slot_of(ks_toolcall_memory *m, const char *id, size_t id_len, uint64_t hash) {
    entry **at = &m->buckets[hash & (m->n_buckets - 1)];
    while (*at && !((*at)->hash == hash && (*at)->id_len == id_len &&
                    memcmp(entry_id(*at), id, id_len) == 0))
        at = &(*at)->hnext;
    return at;
}

static void list_unlink(ks_toolcall_memory *m, entry *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        m->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        m->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_head(ks_toolcall_memory *m, entry *e) {
    e->prev = NULL;
    e->next = m->head;
    if (m->head)
        m->head->prev = e;
    m->head = e;
    if (!m->tail)
        m->tail = e;
}

static void remove_entry(ks_toolcall_memory *m, entry *e) {
    entry **at = slot_of(m, entry_id(e), e->id_len, e->hash);
    KS_ASSERT(*at == e);
    *at = e->hnext;
    list_unlink(m, e);
    m->bytes -= e->charge;
    m->n--;
    free(e);
}

/* Doubles the table; on allocation failure it stays as it is (chains get longer). */
static void maybe_grow(ks_toolcall_memory *m) {
    if (m->n < m->n_buckets)
        return;
    const size_t n_buckets = m->n_buckets * 2;
    entry **buckets = calloc(n_buckets, sizeof *buckets);
    if (!buckets)
        return;
    for (size_t i = 0; i < m->n_buckets; i++) {
        for (entry *e = m->buckets[i], *next; e; e = next) {
            next = e->hnext;
            entry **at = &buckets[e->hash & (n_buckets - 1)];
            e->hnext = *at;
            *at = e;
        }
    }
    free(m->buckets);
    m->buckets = buckets;
    m->n_buckets = n_buckets;
}

/* ---- meaning-equality of JSON values --------------------------------------------------- */

/* An integer and a real are equal when the real is exactly that integer. */
static bool same_number(const json_t *a, const json_t *b) {
    if (json_is_integer(a) && json_is_integer(b))
        return json_integer_value(a) == json_integer_value(b);
    if (json_is_real(a) && json_is_real(b))
        return json_real_value(a) == json_real_value(b);
    const json_int_t i = json_is_integer(a) ? json_integer_value(a) : json_integer_value(b);
    const double r = json_is_real(a) ? json_real_value(a) : json_real_value(b);
    /* [-2^63, 2^63): the reals that convert to json_int_t without overflow. */
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0) || r != floor(r))
        return false;
    return (json_int_t)r == i;
}

static bool same_json(const json_t *a, const json_t *b) {
    if (json_is_number(a) && json_is_number(b))
        return same_number(a, b);
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *key;
        size_t key_len;
        json_t *va;
        json_object_keylen_foreach((json_t *)a, key, key_len, va) {
            const json_t *vb = json_object_getn(b, key, key_len);
            if (!vb || !same_json(va, vb))
                return false;
        }
        return true;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_json(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    default:
        return true; /* true, false, null: same type, same value */
    }
}

/* ---- API ------------------------------------------------------------------------------- */

ks_status ks_toolcall_memory_create(ks_toolcall_memory **out, size_t budget_bytes) {
    ks_toolcall_memory *m = calloc(1, sizeof *m);
    if (!m)
        return KS_ERR_NOMEM;
    m->buckets = calloc(INITIAL_BUCKETS, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return KS_ERR_NOMEM;
    }
    m->n_buckets = INITIAL_BUCKETS;
    m->budget = budget_bytes;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return KS_OK;
}

void ks_toolcall_memory_destroy(ks_toolcall_memory *m) {
    if (!m)
        return;
    for (entry *e = m->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(m->buckets);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

ks_status ks_toolcall_memory_put(ks_toolcall_memory *m, const char *id, const char *name,
                                 const char *args, size_t args_len, const char *raw,
                                 size_t raw_len) {
    if (!id || !id[0] || !name || (!args && args_len) || (!raw && raw_len))
        return KS_ERR_INVALID;
    const size_t id_len = strlen(id), name_len = strlen(name);
    if (args_len > m->budget || raw_len > m->budget)
        return KS_ERR_FULL; /* and the sums below cannot wrap */
    const size_t payload = id_len + name_len + args_len + raw_len + 4;
    const size_t charge = KS_TOOLCALL_MEMORY_ENTRY_BYTES + payload;
    if (charge > m->budget)
        return KS_ERR_FULL;
    entry *e = malloc(sizeof *e + payload);
    if (!e)
        return KS_ERR_NOMEM;
    *e = (entry){.hash = XXH3_64bits(id, id_len), .charge = charge, .id_len = id_len,
                 .name_len = name_len, .args_len = args_len, .raw_len = raw_len};
    char *s = e->bytes;
    memcpy(s, id, id_len + 1);
    s += id_len + 1;
    memcpy(s, name, name_len + 1);
    s += name_len + 1;
    if (args_len)
        memcpy(s, args, args_len);
    s[args_len] = '\0';
    s += args_len + 1;
    if (raw_len)
        memcpy(s, raw, raw_len);
    s[raw_len] = '\0';

    pthread_mutex_lock(&m->mu);
    entry *old = *slot_of(m, id, id_len, e->hash);
    if (old)
        remove_entry(m, old);
    while (m->bytes + charge > m->budget) {
        remove_entry(m, m->tail);
        atomic_fetch_add(&m->evictions, 1);
    }
    maybe_grow(m);
    entry **at = &m->buckets[e->hash & (m->n_buckets - 1)];
    e->hnext = *at;
    *at = e;
    list_push_head(m, e);
    m->bytes += charge;
    m->n++;
    pthread_mutex_unlock(&m->mu);
    return KS_OK;
}

char *ks_toolcall_memory_lookup(ks_toolcall_memory *m, const char *id, const char *name,
                                const json_t *args, size_t *len) {
    if (!id || !name)
        return NULL;
    const size_t id_len = strlen(id);
    const uint64_t hash = XXH3_64bits(id, id_len);
    char *raw = NULL, *sampled_args = NULL;
    size_t raw_len = 0, args_len = 0;
    bool known = false, same_name = false;

    pthread_mutex_lock(&m->mu);
    entry *e = *slot_of(m, id, id_len, hash);
    if (e) {
        known = true;
        same_name = strcmp(entry_name(e), name) == 0;
        if (same_name) {
            raw_len = e->raw_len;
            args_len = e->args_len;
            raw = malloc(raw_len + 1);
            sampled_args = malloc(args_len + 1);
            if (raw && sampled_args) {
                memcpy(raw, entry_raw(e), raw_len + 1);
                memcpy(sampled_args, entry_args(e), args_len + 1);
            }
        }
    }
    pthread_mutex_unlock(&m->mu);

    if (!known) {
        atomic_fetch_add(&m->misses, 1);
        return NULL;
    }
    bool same = false;
    if (same_name && raw && sampled_args) {
        json_error_t jerr;
        json_t *sampled = json_loadb(sampled_args, args_len, 0, &jerr);
        json_t *empty = args ? NULL : json_object();
        same = sampled && same_json(sampled, args ? args : empty);
        json_decref(sampled);
        json_decref(empty);
    }
    free(sampled_args);
    if (!same) {
        free(raw);
        atomic_fetch_add(&m->mismatches, 1);
        return NULL;
    }
    /* The entry may have gone meanwhile; if it is still there it becomes the most recent. */
    pthread_mutex_lock(&m->mu);
    e = *slot_of(m, id, id_len, hash);
    if (e) {
        list_unlink(m, e);
        list_push_head(m, e);
    }
    pthread_mutex_unlock(&m->mu);
    atomic_fetch_add(&m->hits, 1);
    *len = raw_len;
    return raw;
}

void ks_toolcall_memory_get_stats(ks_toolcall_memory *m, ks_toolcall_memory_stats *out) {
    pthread_mutex_lock(&m->mu);
    out->n_entries = m->n;
    out->bytes = m->bytes;
    out->budget_bytes = m->budget;
    pthread_mutex_unlock(&m->mu);
    out->hits = atomic_load(&m->hits);
    out->misses = atomic_load(&m->misses);
    out->mismatches = atomic_load(&m->mismatches);
    out->evictions = atomic_load(&m->evictions);
}
