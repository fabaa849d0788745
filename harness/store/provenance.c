/* provenance.c: collect the provenance strings of provenance.h. The git commit
 * comes from build/gen/git_version.c, which the Makefile regenerates on every
 * make (rewritten, and qharness relinked, only when HEAD or the dirty state
 * changed) and links into build/qharness only; other binaries (tests) get the
 * weak "unknown" below. */
#include "provenance.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <omp.h>
#include <unistd.h>

#include "forward.h"

/* The full commit hash, "-dirty" appended when the tree had changes. */
__attribute__((weak)) const char qh_git_commit[] = "unknown";

char *openblas_get_config(void);
int openblas_get_num_threads(void);

void provenance_collect(Provenance *p, int argc, char **argv) {
    memset(p, 0, sizeof *p);
    size_t off = 0;
    for (int i = 0; i < argc && off < sizeof p->cmdline - 2; i++)
        off += (size_t)snprintf(p->cmdline + off, sizeof p->cmdline - off, "%s%s", i ? " " : "", argv[i]);
    snprintf(p->git_commit, sizeof p->git_commit, "%s", qh_git_commit);
    snprintf(p->compiler, sizeof p->compiler, "gcc %s", __VERSION__);
    snprintf(p->blas, sizeof p->blas, "OpenBLAS %s", openblas_get_config());
#ifdef QH_HAVE_CUDA
    snprintf(p->cuda, sizeof p->cuda, "built with CUDA; GPU %s", qh_cuda_available() ? "present" : "absent");
#else
    snprintf(p->cuda, sizeof p->cuda, "not built");
#endif
    gethostname(p->host, sizeof p->host - 1);
    time_t now = time(NULL);
    strftime(p->time_utc, sizeof p->time_utc, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(p->version, sizeof p->version, "qharness 0.1");
    p->omp_threads = omp_get_max_threads();
    p->blas_threads = openblas_get_num_threads();
}
