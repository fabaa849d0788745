/* zeroshot_tasks.c: THE table of zero-shot tasks (zs_tasks[]: name, file,
 * fields, prompt, lm-eval file followed, acc_norm or not, partial scoring)
 * and, per task, how a Hugging Face dataset row becomes the requests of one
 * item, following the task files of lm-eval (EleutherAI/lm-evaluation-harness,
 * lm_eval/tasks/...) in their zero-shot form: no description, no few-shot
 * examples, target delimiter " " (lm-eval's default) between the context and
 * each choice. Every field is checked: a missing or mistyped field, an empty
 * choice, an answer outside the choices, a winogrande sentence without "_" is
 * refused with the file, the line and the field. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "util.h"
#include "zeroshot.h"

/* ---- Python's str methods, as lm-eval's templates and utils use them ---------------------------- */

/* Bytes of the whitespace code point at s (Python's str.isspace: \t\n\v\f\r,
 * \x1c-\x1f, space, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
 * U+202F, U+205F, U+3000), 0 when s does not start with one. */
static int py_space(const char *s, size_t avail) {
    const unsigned char *u = (const unsigned char *)s;
    if (avail < 1) return 0;
    if (u[0] == ' ' || (u[0] >= 0x09 && u[0] <= 0x0d) || (u[0] >= 0x1c && u[0] <= 0x1f)) return 1;
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate(u, (utf8proc_ssize_t)avail, &c);
    if (k < 2) return 0;
    if (c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
        c == 0x202f || c == 0x205f || c == 0x3000)
        return (int)k;
    return 0;
}

/* Length of s[0..n) without its trailing whitespace (Python's rstrip()). */
size_t zs_rstrip_len(const char *s, size_t n) {
    while (n > 0) {
        size_t b = n - 1; /* the lead byte of the last code point */
        while (b > 0 && ((unsigned char)s[b] & 0xc0) == 0x80) b--;
        if (py_space(s + b, n - b) != (int)(n - b)) break;
        n = b;
    }
    return n;
}

/* A copy of s[0..n) without leading and trailing whitespace (Python's strip()). */
static char *py_strip(const char *s, size_t n) {
    size_t a = 0;
    int k;
    while (a < n && (k = py_space(s + a, n - a)) > 0) a += (size_t)k;
    size_t e = a + zs_rstrip_len(s + a, n - a);
    char *o = qh_malloc(e - a + 1);
    memcpy(o, s + a, e - a);
    o[e - a] = 0;
    return o;
}

/* Python's str.capitalize(): the first character in title case, the rest in
 * lower case, by utf8proc's simple (one code point to one) mappings; Python
 * uses the full ones, which differ for a few characters (e.g. "ß" title-cased
 * is "Ss" in Python, unchanged here). */
static char *py_capitalize(const char *s) {
    size_t n = strlen(s);
    char *o = qh_malloc(4 * n + 1), *w = o;
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(n - i), &c);
        if (k < 1) { /* not UTF-8 (jansson hands only valid text): copied as it is */
            *w++ = s[i++];
            continue;
        }
        c = i == 0 ? utf8proc_totitle(c) : utf8proc_tolower(c);
        w += utf8proc_encode_char(c, (utf8proc_uint8_t *)w);
        i += (size_t)k;
    }
    *w = 0;
    return o;
}

/* Characters (code points) of UTF-8 text, as Python's len(). */
static long py_len(const char *s) {
    long n = 0;
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) n += (*u & 0xc0) != 0x80;
    return n;
}

static char *cat3(const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *o = qh_malloc(la + lb + lc + 1);
    memcpy(o, a, la);
    memcpy(o + la, b, lb);
    memcpy(o + la + lb, c, lc + 1);
    return o;
}

/* lm-eval's hellaswag utils.preprocess: strip(); " [title]" -> ". "; every
 * re.sub("\\[.*?\\]", "") match removed (the shortest "[...]" with no newline
 * inside, as "." does not match one); then "  " -> " " once, left to right
 * (str.replace: three spaces become two). */
char *zs_hellaswag_preprocess(const char *text) {
    char *s = py_strip(text, strlen(text));
    size_t n = strlen(s);
    char *a = qh_malloc(2 * n + 1), *w = a; /* " [title]" (8) -> ". " (2): never longer */
    for (size_t i = 0; i < n;) {
        if (!strncmp(s + i, " [title]", 8)) {
            memcpy(w, ". ", 2), w += 2, i += 8;
            continue;
        }
        *w++ = s[i++];
    }
    *w = 0;
    n = (size_t)(w - a);
    char *b = qh_malloc(n + 1);
    w = b;
    for (size_t i = 0; i < n;) {
        if (a[i] == '[') {
            size_t j = i + 1;
            while (j < n && a[j] != ']' && a[j] != '\n') j++;
            if (j < n && a[j] == ']') { /* a match: removed */
                i = j + 1;
                continue;
            }
        }
        *w++ = a[i++];
    }
    *w = 0;
    n = (size_t)(w - b);
    w = a;
    for (size_t i = 0; i < n;) {
        if (b[i] == ' ' && i + 1 < n && b[i + 1] == ' ') {
            *w++ = ' ', i += 2;
            continue;
        }
        *w++ = b[i++];
    }
    *w = 0;
    free(s);
    free(b);
    return a;
}

/* ---- fields --------------------------------------------------------------------------------------- */

#define FIELD_ERR(file, line, field, ...) field_err(file, line, field, __VA_ARGS__)
__attribute__((format(printf, 4, 5))) static int field_err(const char *file, long line, const char *field,
                                                            const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qh_error("%s:%ld: field '%s' %s", file, line, field, msg);
}

static const json_t *get_field(const json_t *o, const char *name, const char *file, long line) {
    const json_t *v = json_object_get(o, name);
    if (!v) FIELD_ERR(file, line, name, "is missing");
    return v;
}

/* A string field (non-empty when nonempty): its text, or NULL after a message. */
static const char *get_str(const json_t *o, const char *name, int nonempty, const char *file, long line) {
    const json_t *v = get_field(o, name, file, line);
    if (!v) return NULL;
    if (!json_is_string(v)) return FIELD_ERR(file, line, name, "must be a string"), NULL;
    if (nonempty && !json_string_length(v)) return FIELD_ERR(file, line, name, "is empty"), NULL;
    return json_string_value(v);
}

/* An answer index: an integer, or a string of decimal digits (Hugging Face
 * stores hellaswag's label as "3", piqa's as 3); -1 after a message unless in 0..n-1. */
static int get_index(const json_t *o, const char *name, int base, int n, const char *file, long line) {
    const json_t *v = get_field(o, name, file, line);
    if (!v) return -1;
    long k;
    if (json_is_integer(v)) k = (long)json_integer_value(v);
    else if (json_is_string(v) && qh_parse_long(json_string_value(v), &k) == 0) {
    } else
        return FIELD_ERR(file, line, name, "must be an integer (or a string of one)"), -1;
    if (k < base || k >= base + n)
        return FIELD_ERR(file, line, name, "is %ld, out of range (%d .. %d for the %d choices)", k, base, base + n - 1, n),
               -1;
    return (int)(k - base);
}

static void item_alloc(ZsItem *it, int n) {
    it->nchoices = n;
    it->context = qh_calloc((size_t)n, sizeof(char *));
    it->cont = qh_calloc((size_t)n, sizeof(char *));
    it->chars = qh_calloc((size_t)n, sizeof(long));
}

/* The usual shape: one context, one request per choice with continuation " " + choice. */
static void item_set_choice(ZsItem *it, int i, const char *context, const char *choice) {
    it->context[i] = qh_strdup(context);
    it->cont[i] = cat3(" ", choice, "");
    it->chars[i] = py_len(choice);
}

/* ---- the tasks ------------------------------------------------------------------------------------ */

/* arc_easy / arc_challenge (lm_eval/tasks/arc/arc_easy.yaml): doc_to_text
 * "Question: {{question}}\nAnswer:", doc_to_choice choices.text, the gold
 * index choices.label.index(answerKey). */
static int build_arc(const json_t *row, const char *file, long line, ZsItem *it) {
    const char *q = get_str(row, "question", 0, file, line);
    const json_t *ch = q ? get_field(row, "choices", file, line) : NULL;
    const char *key = ch ? get_str(row, "answerKey", 1, file, line) : NULL;
    if (!key) return -1;
    const json_t *text = json_object_get(ch, "text"), *label = json_object_get(ch, "label");
    if (!json_is_object(ch)) return FIELD_ERR(file, line, "choices", "must be an object {\"text\": [...], \"label\": [...]}");
    if (!json_is_array(text)) return FIELD_ERR(file, line, "choices.text", "is missing or not a list");
    if (!json_is_array(label)) return FIELD_ERR(file, line, "choices.label", "is missing or not a list");
    int n = (int)json_array_size(text);
    if (n < 2) return FIELD_ERR(file, line, "choices.text", "has %d choices (at least 2)", n);
    if ((int)json_array_size(label) != n)
        return FIELD_ERR(file, line, "choices.label", "has %zu labels for %d choices", json_array_size(label), n);
    int gold = -1;
    char labels[200] = "";
    for (int i = 0; i < n; i++) {
        const json_t *t = json_array_get(text, i), *l = json_array_get(label, i);
        char f[40];
        snprintf(f, sizeof f, "choices.text[%d]", i);
        if (!json_is_string(t)) return FIELD_ERR(file, line, f, "must be a string");
        if (!json_string_length(t)) return FIELD_ERR(file, line, f, "is empty");
        snprintf(f, sizeof f, "choices.label[%d]", i);
        if (!json_is_string(l)) return FIELD_ERR(file, line, f, "must be a string");
        if (gold < 0 && !strcmp(json_string_value(l), key)) gold = i; /* list.index: the first */
        snprintf(labels + strlen(labels), sizeof labels - strlen(labels), "%s%s", i ? ", " : "", json_string_value(l));
    }
    if (gold < 0) return FIELD_ERR(file, line, "answerKey", "is '%s', not one of choices.label (%s)", key, labels);
    char *ctx = cat3("Question: ", q, "\nAnswer:");
    item_alloc(it, n);
    for (int i = 0; i < n; i++) item_set_choice(it, i, ctx, json_string_value(json_array_get(text, i)));
    free(ctx);
    it->gold = gold;
    return 0;
}

/* piqa (lm_eval/tasks/piqa/piqa.yaml): "Question: {{goal}}\nAnswer:", choices
 * [sol1, sol2], gold `label`. */
static int build_piqa(const json_t *row, const char *file, long line, ZsItem *it) {
    const char *goal = get_str(row, "goal", 0, file, line);
    const char *s1 = goal ? get_str(row, "sol1", 1, file, line) : NULL;
    const char *s2 = s1 ? get_str(row, "sol2", 1, file, line) : NULL;
    int gold = s2 ? get_index(row, "label", 0, 2, file, line) : -1;
    if (gold < 0) return -1;
    char *ctx = cat3("Question: ", goal, "\nAnswer:");
    item_alloc(it, 2);
    item_set_choice(it, 0, ctx, s1);
    item_set_choice(it, 1, ctx, s2);
    free(ctx);
    it->gold = gold;
    return 0;
}

/* hellaswag (lm_eval/tasks/hellaswag/hellaswag.yaml, utils.py process_docs):
 * context preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()),
 * choices preprocess(ending) for each of `endings`, gold int(label). */
static int build_hellaswag(const json_t *row, const char *file, long line, ZsItem *it) {
    const char *act = get_str(row, "activity_label", 0, file, line);
    const char *a = act ? get_str(row, "ctx_a", 0, file, line) : NULL;
    const char *b = a ? get_str(row, "ctx_b", 0, file, line) : NULL;
    const json_t *e = b ? get_field(row, "endings", file, line) : NULL;
    if (!e) return -1;
    if (!json_is_array(e)) return FIELD_ERR(file, line, "endings", "must be a list of strings");
    int n = (int)json_array_size(e);
    if (n < 2) return FIELD_ERR(file, line, "endings", "has %d choices (at least 2)", n);
    for (int i = 0; i < n; i++) {
        char f[32];
        snprintf(f, sizeof f, "endings[%d]", i);
        const json_t *s = json_array_get(e, i);
        if (!json_is_string(s)) return FIELD_ERR(file, line, f, "must be a string");
        char *p = zs_hellaswag_preprocess(json_string_value(s));
        int empty = !*p;
        free(p);
        if (empty) return FIELD_ERR(file, line, f, "is empty%s", json_string_length(s) ? " after lm-eval's preprocessing" : "");
    }
    int gold = get_index(row, "label", 0, n, file, line);
    if (gold < 0) return -1;
    char *cap = py_capitalize(b);
    char *ctx = cat3(a, " ", cap);
    char *q = cat3(act, ": ", ctx);
    char *query = zs_hellaswag_preprocess(q);
    item_alloc(it, n);
    for (int i = 0; i < n; i++) {
        char *p = zs_hellaswag_preprocess(json_string_value(json_array_get(e, i)));
        item_set_choice(it, i, query, p);
        free(p);
    }
    free(cap);
    free(ctx);
    free(q);
    free(query);
    it->gold = gold;
    return 0;
}

/* winogrande (lm_eval/tasks/winogrande/preprocess_winogrande.py), partial
 * evaluation: i = sentence.index("_"); the contexts sentence[:i] + option1 and
 * sentence[:i] + option2; the one continuation " " + sentence[i+1:].strip();
 * gold {"1": 0, "2": 1}[answer]. acc only (no acc_norm in lm-eval's file). */
static int build_winogrande(const json_t *row, const char *file, long line, ZsItem *it) {
    const char *s = get_str(row, "sentence", 1, file, line);
    const char *o1 = s ? get_str(row, "option1", 1, file, line) : NULL;
    const char *o2 = o1 ? get_str(row, "option2", 1, file, line) : NULL;
    int gold = o2 ? get_index(row, "answer", 1, 2, file, line) : -1;
    if (gold < 0) return -1;
    const char *u = strchr(s, '_');
    if (!u) return FIELD_ERR(file, line, "sentence", "has no '_' (the blank the options fill)");
    size_t i = (size_t)(u - s);
    char *head = qh_malloc(i + 1);
    memcpy(head, s, i);
    head[i] = 0;
    char *rest = py_strip(u + 1, strlen(u + 1));
    item_alloc(it, 2);
    const char *opt[2] = {o1, o2};
    for (int k = 0; k < 2; k++) {
        it->context[k] = cat3(head, opt[k], "");
        it->cont[k] = cat3(" ", rest, "");
        it->chars[k] = py_len(it->context[k]); /* lm-eval's completion_len (of the choices: the contexts); unused */
    }
    free(head);
    free(rest);
    it->gold = gold;
    return 0;
}

#define ARC_FIELDS "question, choices {text: [...], label: [...]}, answerKey"
#define ARC_PROMPT "context \"Question: <question>\\nAnswer:\", continuations \" <choices.text[i]>\", gold: the index of answerKey in choices.label"

const ZsTask zs_tasks[] = {
    {"arc_easy", "arc_easy.jsonl", ARC_FIELDS, ARC_PROMPT, "lm_eval/tasks/arc/arc_easy.yaml", 1, build_arc},
    {"arc_challenge", "arc_challenge.jsonl", ARC_FIELDS, ARC_PROMPT, "lm_eval/tasks/arc/arc_challenge.yaml", 1,
     build_arc},
    {"piqa", "piqa.jsonl", "goal, sol1, sol2, label (0 or 1)",
     "context \"Question: <goal>\\nAnswer:\", continuations \" <sol1>\", \" <sol2>\", gold: label",
     "lm_eval/tasks/piqa/piqa.yaml", 1, build_piqa},
    {"hellaswag", "hellaswag.jsonl", "activity_label, ctx_a, ctx_b, endings [...], label (\"0\"..\"3\")",
     "context preprocess(\"<activity_label>: <ctx_a> <ctx_b capitalized>\"), continuations \" preprocess(<endings[i]>)\", "
     "gold: label; preprocess: strip, \" [title]\" -> \". \", [...] removed, \"  \" -> \" \"",
     "lm_eval/tasks/hellaswag/hellaswag.yaml, utils.py", 1, build_hellaswag},
    {"winogrande", "winogrande.jsonl", "sentence (with one '_'), option1, option2, answer (\"1\" or \"2\")",
     "partial evaluation: contexts \"<sentence before _><option1>\", \"<sentence before _><option2>\", one "
     "continuation \" <sentence after _, stripped>\", gold: answer - 1; acc only",
     "lm_eval/tasks/winogrande/default.yaml, preprocess_winogrande.py", 0, build_winogrande},
};
const int zs_ntasks = (int)(sizeof zs_tasks / sizeof zs_tasks[0]);

const ZsTask *zs_task_get(const char *name) {
    for (int i = 0; i < zs_ntasks; i++)
        if (!strcmp(zs_tasks[i].name, name)) return &zs_tasks[i];
    return NULL;
}

void zs_task_names(char *buf, size_t n) {
    if (n == 0) return;
    buf[0] = 0;
    for (int i = 0; i < zs_ntasks; i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", i ? ", " : "", zs_tasks[i].name);
}

const ZsTask *zs_task_find(const char *name) {
    const ZsTask *z = zs_task_get(name);
    if (z) return z;
    char names[200];
    zs_task_names(names, sizeof names);
    qh_error("unknown zero-shot task '%s' (the tasks: %s)", name, names);
    return NULL;
}

int zs_task_list_check(const char *list, const char *what) {
    char *l = qh_strdup(list), *save = NULL;
    int rc = 0, n = 0;
    const ZsTask *seen[16];
    const char *p = list;
    for (; *p; p++)
        if (*p == ',' && (p == list || p[1] == ',' || p[1] == 0)) rc = qh_error("%s: an empty task name in '%s'", what, list);
    if (!*list) rc = qh_error("%s: no task given", what);
    for (char *t = strtok_r(l, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
        const ZsTask *z = zs_task_find(t);
        if (!z) {
            rc = qh_error("%s: '%s' is not a zero-shot task", what, t);
            break;
        }
        for (int i = 0; i < n; i++)
            if (seen[i] == z) rc = qh_error("%s: '%s' is named twice", what, t);
        if (n < 16) seen[n++] = z;
    }
    free(l);
    return rc;
}
