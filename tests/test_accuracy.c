/* test_accuracy.c: bits at equal accuracy and published values
 * (harness/experiment/accuracy.h, report_compare.c) on made-up fronts:
 *   - the Pareto front drops dominated and failed (NaN) points;
 *   - the bits reaching a target are interpolated with ln ppl linear in bits
 *     (closed form), exact at a measured point, "not reached" (NaN) beyond
 *     the best point and never extrapolated below the fewest bits;
 *   - perplexity at given bits, NaN outside the range;
 *   - targets and [paper] entries parse, and bad ones are refused with why;
 *   - the report's equal-accuracy section on a made-up report prints the
 *     interpolated bits, "not reached", and the other datasets at those bits;
 *     the published-values section matches points by their settings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accuracy.h"
#include "check.h"
#include "report.h"

static void test_front(void) {
    BitsPpl p[] = {{4.0, 10.0}, {3.0, 20.0}, {3.5, 25.0} /* dominated by 3.0 */, {5.0, NAN} /* failed */,
                   {4.5, 10.5} /* dominated by 4.0 */, {6.0, 9.0}, {3.0, 22.0} /* same bits, worse */};
    int n = acc_front(p, 7);
    CHECK(n == 3, "front of 3 points, got %d", n);
    CHECK(p[0].bits == 3.0 && p[0].ppl == 20.0 && p[1].bits == 4.0 && p[2].bits == 6.0, "front order");

    AccStatus st;
    /* between (3, 20) and (4, 10): ln t = ln 20 + u (ln 10 - ln 20) -> t = 15: u = ln(20/15) / ln 2 */
    double b = acc_bits_at_ppl(p, n, 15.0, &st);
    CHECK(st == ACC_INTERPOLATED, "interpolated");
    CHECK_CLOSE(b, 3.0 + log(20.0 / 15.0) / log(2.0), 1e-12, 0, "bits at ppl 15");
    b = acc_bits_at_ppl(p, n, 10.0, &st);
    CHECK(st == ACC_INTERPOLATED && b == 4.0, "exactly a measured point: %g", b);
    b = acc_bits_at_ppl(p, n, 9.5, &st); /* between (4, 10) and (6, 9) */
    CHECK_CLOSE(b, 4.0 + 2.0 * log(10.0 / 9.5) / log(10.0 / 9.0), 1e-12, 0, "bits at ppl 9.5");
    b = acc_bits_at_ppl(p, n, 8.9, &st);
    CHECK(st == ACC_NOT_REACHED && isnan(b), "below the best point: not reached, got %g", b);
    b = acc_bits_at_ppl(p, n, 30.0, &st);
    CHECK(st == ACC_AT_FEWEST && b == 3.0, "reached by the fewest-bits point: an upper bound, no extrapolation");
    b = acc_bits_at_ppl(p, 0, 30.0, &st);
    CHECK(st == ACC_NOT_REACHED && isnan(b), "empty front: not reached");

    CHECK_CLOSE(acc_ppl_at_bits(p, n, 3.5), sqrt(200.0), 1e-12, 0, "ppl at 3.5 bits (geometric mean of 20 and 10)");
    CHECK(acc_ppl_at_bits(p, n, 6.0) == 9.0 && acc_ppl_at_bits(p, n, 3.0) == 20.0, "ends");
    CHECK(isnan(acc_ppl_at_bits(p, n, 2.9)) && isnan(acc_ppl_at_bits(p, n, 6.1)), "outside the range: NaN");
}

static void test_parsing(void) {
    AccTarget t;
    char why[512];
    CHECK(acc_target_parse("+1%", &t, why, sizeof why) == 0 && t.relative && t.value == 0.01 && !t.dataset[0], "+1%%");
    CHECK(acc_target_parse("wikitext2:5.88", &t, why, sizeof why) == 0 && !t.relative && t.value == 5.88 &&
              !strcmp(t.dataset, "wikitext2"), "absolute");
    CHECK(acc_target_parse("c4:+2.5%", &t, why, sizeof why) == 0 && t.relative && fabs(t.value - 0.025) < 1e-15,
          "relative on one dataset");
    CHECK(acc_target_parse("5.88", &t, why, sizeof why) != 0 && strstr(why, "needs its dataset"), "%s", why);
    CHECK(acc_target_parse("wikitext2:abc", &t, why, sizeof why) != 0 && strstr(why, "not a target"), "%s", why);
    CHECK(acc_target_parse("+x%", &t, why, sizeof why) != 0, "bad relative");

    PaperValue p;
    CHECK(paper_parse("g4", "method=gptq, wbits=4, groupsize=row, dataset=wikitext2, ppl=6.09, source=GPTQ README, "
                            "LLaMA table", &p, why, sizeof why, NULL) == 0, "%s", why);
    CHECK(p.kind == PAPER_PPL && p.value == 6.09 && p.nconds == 2 && !strcmp(p.cond_key[1], "groupsize") &&
              !strcmp(p.source, "GPTQ README, LLaMA table") && isnan(p.at), "parsed: source keeps its comma");
    CHECK(paper_parse("e", "method=spqr, dataset=c4, bits=3.45, at_ppl=7.33, source=review", &p, why, sizeof why,
                      NULL) == 0 && p.kind == PAPER_BITS && p.at == 7.33, "bits at ppl");
    CHECK(paper_parse("a", "method=gptq, dataset=c4, at_bits=4.07, ppl=7.28, source=x", &p, why, sizeof why, NULL) == 0 &&
              p.at == 4.07, "ppl at bits");
    const char *bad[][2] = {
        {"method=gptq, dataset=c4, ppl=7", "no source"},
        {"method=bogus, dataset=c4, ppl=7, source=x", "expected fp16"},
        {"method=gptq, dataset=c4, ppl=7, bits=4, source=x", "exactly one"},
        {"method=gptq, dataset=c4, ppl=7, source=x", "needs its settings"},
        {"method=gptq, dataset=c4, bits=4, source=x", "needs at_ppl"},
        {"method=fp16, dataset=c4, wbits=4, ppl=5, source=x", "takes no settings"},
        {"method=gptq, dataset=c4, ppl=-1, wbits=4, source=x", "not a positive number"},
        {"method=gptq, dataset=c4, 7, source=x", "not key=value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = 0;
        int rc = paper_parse("b", bad[i][0], &p, why, sizeof why, NULL);
        CHECK(rc != 0 && strstr(why, bad[i][1]), "'%s': expected an error with '%s', got '%s'", bad[i][0], bad[i][1], why);
    }
}

/* A made-up report: rtn and gptq on two datasets, no experiment (the default +1% target). */
static void test_report_sections(void) {
    Report r;
    memset(&r, 0, sizeof r);
    char *ds[] = {"wikitext2", "c4"};
    r.ndatasets = 2;
    r.datasets = ds;
    double fp[] = {10.0, 20.0};
    r.fp_ppl = fp;
    r.have_fp = 1;
    ReportPoint pts[4];
    memset(pts, 0, sizeof pts);
    double ppl[4][2] = {{12.0, 24.0}, {10.5, 21.0}, {10.2, 20.3}, {9.95, 20.1}};
    double bits[4] = {3.0, 4.0, 3.0, 4.0};
    const char *meth[4] = {"rtn", "rtn", "gptq", "gptq"};
    const char *set[4] = {"{\"quant\":{\"wbits\":3,\"groupsize\":0}}", "{\"quant\":{\"wbits\":4,\"groupsize\":0}}",
                          "{\"quant\":{\"wbits\":3,\"groupsize\":0}}", "{\"quant\":{\"wbits\":4,\"groupsize\":128}}"};
    for (int i = 0; i < 4; i++) {
        snprintf(pts[i].method, sizeof pts[i].method, "%s", meth[i]);
        snprintf(pts[i].id, sizeof pts[i].id, "id%d", i);
        pts[i].avg_bits = bits[i];
        pts[i].ppl = ppl[i];
        pts[i].settings = json_loads(set[i], 0, NULL);
    }
    r.points = pts;
    r.npoints = 4;
    char *s = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&s, &n);
    report_equal_accuracy(&r, m);
    fclose(m);
    /* wikitext2 target 10.1: rtn never below 10.5 -> not reached; gptq between (3, 10.2) and (4, 9.95) */
    double b = 3.0 + log(10.2 / 10.1) / log(10.2 / 9.95);
    double c4 = exp(log(20.3) + (b - 3.0) * (log(20.1) - log(20.3)));
    char want[128];
    snprintf(want, sizeof want, "| GPTQ | %.3f | 10.100 | %.3f |", b, c4);
    CHECK(strstr(s, want) != NULL, "equal-accuracy row '%s' in:\n%s", want, s);
    CHECK(strstr(s, "| wikitext2 <= 10.1 (full precision 10 +1%) | RTN | not reached (best 10.5 at 4.000 bits) | - | - |"),
          "rtn not reached on wikitext2:\n%s", s);
    /* c4 target 20.2: gptq between 20.3 and 20.1 */
    CHECK(strstr(s, "| c4 <= 20.2 (full precision 20 +1%) | RTN | not reached"), "rtn not reached on c4");
    free(s);

    /* published values: matched by settings */
    PaperValue p;
    char why[256];
    paper_parse("g", "method=gptq, wbits=4, dataset=wikitext2, ppl=9.9, source=made up", &p, why, sizeof why, NULL);
    p.cond_num[0] = 4;
    int idx[4];
    CHECK(report_paper_matches(&r, &p, idx, 4) == 1 && idx[0] == 3, "wbits=4 gptq matches one point");
    paper_parse("g", "method=gptq, wbits=4, groupsize=row, dataset=wikitext2, ppl=9.9, source=made up", &p, why,
                sizeof why, NULL);
    p.cond_num[0] = 4, p.cond_num[1] = 0;
    CHECK(report_paper_matches(&r, &p, idx, 4) == 0, "gptq w4 row: none (the w4 point has groups of 128)");
    for (int i = 0; i < 4; i++) json_decref(pts[i].settings);
}

int main(void) {
    test_front();
    test_parsing();
    test_report_sections();
    return test_summary();
}
