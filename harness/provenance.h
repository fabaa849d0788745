/* provenance.h: where a result came from: command line, git commit, compiler,
 * BLAS, CUDA, host and time. Written as attributes on every result file. */
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
} Provenance;

void provenance_collect(Provenance *p, int argc, char **argv);

#endif
