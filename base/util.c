/* util.c: error reporting, checked allocation, strict number parsing, timing,
 * medians, progress output, paths, whole-file I/O and page release (see util.h). */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <unistd.h>

int qh_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("qharness: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

void qh_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("qharness: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void *oom(size_t n) {
    fprintf(stderr, "qharness: fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *qh_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *qh_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    return p ? p : oom(count * size);
}

void *qh_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

char *qh_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = qh_malloc(n);
    memcpy(d, s, n);
    return d;
}

int qh_parse_long(const char *s, long *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0') return -1;
    *out = v;
    return 0;
}

int qh_parse_double(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE && fabs(v) > 1.0) return -1;
    if (*end != '\0' || isnan(v)) return -1;
    *out = v;
    return 0;
}

double qh_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double qh_median(const double *v, int n) {
    double *s = qh_malloc(sizeof(double) * (size_t)n);
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

int qh_progress_enabled(void) {
    const char *v = getenv("QH_VERBOSE");
    if (v && *v) return strcmp(v, "0") != 0;
    const char *ci = getenv("CI");
    if (ci && *ci && strcmp(ci, "0") != 0 && strcmp(ci, "false") != 0) return 0;
    return isatty(STDERR_FILENO);
}

void qh_progress(const char *fmt, ...) {
    if (!qh_progress_enabled()) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void qh_pathf(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

void qh_drop_pages(const void *p, size_t bytes) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1), b = ((uintptr_t)p + bytes) & ~(uintptr_t)(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

size_t qh_malloc_retained_bytes(size_t largest) {
    size_t most = (size_t)32 << 20; /* DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems */
    return 2 * (largest < most ? largest : most);
}

int qh_blas_begin(double work) {
    int n = omp_get_max_threads();
    if (work < QH_PAR_MIN_WORK && n > 1) omp_set_num_threads(1);
    return n;
}

void qh_blas_end(int saved) {
    if (omp_get_max_threads() != saved) omp_set_num_threads(saved);
}

int qh_open_regular(const char *path, const char *what, struct stat *st) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return qh_error("cannot open %s '%s': %s", what, path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return qh_error("cannot stat %s '%s': %s", what, path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return qh_error("%s '%s' is not a regular file (%s)", what, path,
                        S_ISDIR(sb.st_mode) ? "a folder" : S_ISFIFO(sb.st_mode) ? "a FIFO" : "a device or socket");
    }
    int fl = fcntl(fd, F_GETFL); /* ordinary (blocking) reads from here on */
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (st) *st = sb;
    return fd;
}

int qh_read_file(const char *path, char **data, size_t *len) {
    int fd = qh_open_regular(path, "file", NULL);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return qh_error("cannot open '%s': %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = qh_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = qh_realloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return qh_error("read error on '%s'", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

char *qh_tmp_path(const char *path) {
    char host[256];
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = 0;
    host[strcspn(host, "./")] = 0; /* the short name: no dots, never a path separator */
    size_t n = strlen(path) + strlen(host) + 32;
    char *tmp = qh_malloc(n);
    snprintf(tmp, n, "%s.tmp.%s.%ld", path, host, (long)getpid());
    return tmp;
}

int qh_write_file_atomic(const char *path, const void *data, size_t len) {
    char *tmp = qh_tmp_path(path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        qh_error("cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int ok = fwrite(data, 1, len, f) == len;
    ok = (fflush(f) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        qh_error("cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int qh_in_list(const char *list, const char *name) {
    size_t l = strlen(name);
    for (const char *c = list; c && *c;) {
        const char *e = strchr(c, ',');
        size_t k = e ? (size_t)(e - c) : strlen(c);
        if (k == l && !strncmp(c, name, l)) return 1;
        c = e ? e + 1 : NULL;
    }
    return 0;
}
