/* util.h: small helpers shared by the whole harness: error reporting, checked
 * allocation, strict number parsing, monotonic time and terminal progress.
 * Nothing here knows about models, tokenizers or quantization. */
#ifndef QH_UTIL_H
#define QH_UTIL_H

#include <stddef.h>
#include <sys/stat.h>
#include <stdint.h>

/* Print "qharness: error: <message>\n" to stderr. Returns -1 so that callers can
 * write `return qh_error("...")`. */
int qh_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "qharness: warning: <message>\n" to stderr. */
void qh_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that aborts with a message on failure (out of memory is not an
 * input error we can recover from). Zero-sized requests return a valid pointer. */
void *qh_malloc(size_t n);
void *qh_calloc(size_t count, size_t size);
void *qh_realloc(void *p, size_t n);
char *qh_strdup(const char *s);
/* Is `name` one of the comma-separated items of `list` (NULL: none)? */
int qh_in_list(const char *list, const char *name);
/* Free and null the pointer. */
#define QH_FREE(p) do { free(p); (p) = NULL; } while (0)

/* Strict parsing: the whole string must be a number in range, else -1 (no message). */
int qh_parse_long(const char *s, long *out);
int qh_parse_double(const char *s, double *out);

/* Seconds from a monotonic clock. */
double qh_now(void);

/* The median of v[0..n) (n >= 1; the mean of the two middle values for an
 * even n), v left as it was. */
double qh_median(const double *v, int n);

/* Progress lines: shown on a terminal (stderr is a tty and CI is unset),
 * otherwise silent unless QH_VERBOSE=1. */
int qh_progress_enabled(void);
void qh_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* snprintf for paths: an over-long path is cut (and then simply not found). */
void qh_pathf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Open `path` for reading only if it is a regular file: opened without
 * blocking (a FIFO would wait for a writer, a device never end), then checked
 * with fstat (into *st when not NULL). The descriptor, or -1 with a message
 * naming `what` ("model", "tokenizer", ...) and the path. */
int qh_open_regular(const char *path, const char *what, struct stat *st);

/* Parallel work. A loop or a BLAS call goes to the OpenMP team only when its
 * work (about floating-point operations) reaches QH_PAR_MIN_WORK, ~1-2 ms on
 * one core: every parallel region synchronizes the team, which costs
 * microseconds on idle cores but up to a scheduler time slice (milliseconds)
 * when other processes hold them, and thousands of small regions made a
 * stories260K quantization 8-49x slower on a loaded machine
 * (bench/loaded_quant.sh). Which loops run in parallel depends on the
 * shapes only, never on the load: results stay reproducible. */
#define QH_PAR_MIN_WORK 16777216.0
/* Around a BLAS call of `work` operations: below QH_PAR_MIN_WORK it runs on
 * one thread (OpenBLAS's OpenMP build sizes its team from omp_get_max_threads
 * at each call). Returns the thread count to hand back to qh_blas_end. */
int qh_blas_begin(double work);
void qh_blas_end(int saved);

/* Read a whole regular file into memory (NUL-terminated; *len excludes the NUL). */
int qh_read_file(const char *path, char **data, size_t *len);

/* The temporary name of `path` while it is written (owned): PATH.tmp.HOST.PID,
 * the short host name included so that runs on different machines sharing a
 * file system (Slurm array tasks on NFS) never write the same temporary file. */
char *qh_tmp_path(const char *path);

/* Write `len` bytes to `path` atomically: a temporary file in the same folder
 * (qh_tmp_path), then rename. On failure nothing at `path` is changed. */
int qh_write_file_atomic(const char *path, const void *data, size_t len);

/* Drop the resident pages of [p, p + bytes) of a read-only file mapping (the
 * whole pages inside it; re-read from the file if touched again). */
void qh_drop_pages(const void *p, size_t bytes);

/* Freed memory glibc's malloc may keep resident once chunks of up to
 * `largest` bytes are freed and made again (memory plans): it raises its trim
 * threshold to twice the largest chunk it gave back to the system
 * (mallopt(3), M_MMAP_THRESHOLD, at most 32 MiB) and keeps up to that much. */
size_t qh_malloc_retained_bytes(size_t largest);

#endif
