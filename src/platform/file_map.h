/* file_map.h — read-only memory maps of whole files (the only mmap code).
 *
 * A model file is mapped, never copied; tensor views point into the mapping and live
 * until ks_file_map_close(). */
#ifndef KS_FILE_MAP_H
#define KS_FILE_MAP_H

#include "core/status.h"
#include <stddef.h>

typedef struct ks_file_map {
    const void *data; /* NULL for an empty file */
    size_t size;      /* bytes */
} ks_file_map;

ks_status ks_file_map_open(ks_file_map *m, const char *path, ks_err *err);
void ks_file_map_close(ks_file_map *m);

/* Asks the OS to back the mapping with huge pages where it can (best effort). */
void ks_file_map_advise_hugepages(const ks_file_map *m);

#endif
