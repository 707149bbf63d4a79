/* file_map.c — POSIX implementation of file_map.h. */
#include "platform/file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

ks_status ks_file_map_open(ks_file_map *m, const char *path, ks_err *err) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return KS_ERRF(err, KS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return KS_ERRF(err, KS_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return KS_ERRF(err, KS_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return KS_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return KS_ERRF(err, KS_ERR_IO, "%s: cannot map %lld bytes: %s", path,
                       (long long)st.st_size, strerror(e));
    m->data = p;
    m->size = (size_t)st.st_size;
    return KS_OK;
}

void ks_file_map_close(ks_file_map *m) {
    if (!m)
        return;
    if (m->data)
        munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

void ks_file_map_advise_hugepages(const ks_file_map *m) {
#ifdef MADV_HUGEPAGE
    if (m && m->data)
        madvise((void *)m->data, m->size, MADV_HUGEPAGE);
#else
    (void)m;
#endif
}
