/* provenance.h: where a result came from: command line, git commit, compiler,
 * BLAS, CUDA, host, thread counts (the last bits of CPU results depend on
 * them: float sums split across threads) and time. Written as attributes on every result file. */
#ifndef QH_PROVENANCE_H
#define QH_PROVENANCE_H

typedef struct Provenance {
    char cmdline[4096];
    char git_commit[64];
    char compiler[128];
    char blas[256];
    char cuda[128];
    char host[128];
    char time_utc[32];
    char version[32];
    int omp_threads;   /* OpenMP threads of parallel regions (float reductions split by them) */
    int blas_threads;  /* OpenBLAS threads */
} Provenance;

void provenance_collect(Provenance *p, int argc, char **argv);

#endif
