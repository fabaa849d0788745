/* capture.h: stderr capture for tests that check error messages: everything
 * written to stderr between cap_begin_in(dir) and cap_end() goes to a file in
 * dir, and cap_end() returns it (owned string). Header-only, one capture at a
 * time. Not here: assertions (check.h). */
#ifndef QH_CAPTURE_H
#define QH_CAPTURE_H

#include <fcntl.h>
#include <stdio.h>
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

#endif
