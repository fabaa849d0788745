/* capture.h: stderr capture for tests that check error messages: everything
 * written to stderr between cap_begin_in(dir) and cap_end() goes to a file in
 * dir, and cap_end() returns it (owned string); CAPTURE_CHECK_FAIL_IN checks
 * that a call fails with a given message (the includer includes check.h).
 * Header-only, one capture at a time. Not here: the assertions themselves
 * (check.h). */
#ifndef QH_CAPTURE_H
#define QH_CAPTURE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static int cap_saved_fd = -1;
static char cap_path[512];

static inline void cap_begin_in(const char *dir) {
    fflush(stderr);
    snprintf(cap_path, sizeof cap_path, "%s/stderr.txt", dir);
    int fd = open(cap_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cap_saved_fd = dup(2);
    dup2(fd, 2);
    close(fd);
}

static inline char *cap_end(void) {
    fflush(stderr);
    dup2(cap_saved_fd, 2);
    close(cap_saved_fd);
    char *s;
    size_t n;
    if (qh_read_file(cap_path, &s, &n) != 0) return qh_strdup("");
    unlink(cap_path);
    return s;
}

/* call must return non-zero and write a message containing want to stderr
 * (captured in dir); what names the case in the CHECK. */
#define CAPTURE_CHECK_FAIL_IN(dir, call, want, what)                                                             \
    do {                                                                                                         \
        cap_begin_in(dir);                                                                                       \
        int rc_ = (call);                                                                                        \
        char *msg_ = cap_end();                                                                                  \
        CHECK(rc_ != 0 && strstr(msg_, (want)), "%s: rc %d, message '%s' (expected '%s')", (what), rc_, msg_,    \
              (want));                                                                                           \
        free(msg_);                                                                                              \
    } while (0)

#endif
