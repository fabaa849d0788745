/* spm_model.c: reads a SentencePiece model file (the protobuf ModelProto of
 * LLaMA-1/2 and Mistral's tokenizer.model) and turns it into the llama2.c
 * vocabulary image that tokenizer.c encodes with, the way llama2.c's
 * tokenizer export does: pieces in id order, U+2581 written as a space, the
 * BOS / EOS pieces as "\n<s>\n" / "\n</s>\n", scores kept. Only BPE models
 * with an identity normalizer, a dummy prefix and no whitespace folding are
 * accepted (what the encoder reproduces); anything else is refused by name.
 * Protobuf fields read: ModelProto.pieces (1: piece 1, score 2, type 3),
 * trainer_spec (2: model_type 3, unk/bos/eos ids 40/41/42), normalizer_spec
 * (3: name 1, add_dummy_prefix 3, remove_extra_whitespaces 4). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "util.h"

typedef struct {
    const unsigned char *p, *end;
} PbReader;

static int pb_varint(PbReader *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        unsigned char b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Next field: number, wire type, and for length-delimited fields the payload. */
static int pb_field(PbReader *r, uint32_t *field, int *wt, PbReader *sub, uint64_t *val) {
    uint64_t key;
    if (pb_varint(r, &key) != 0) return -1;
    *field = (uint32_t)(key >> 3);
    *wt = (int)(key & 7);
    switch (*wt) {
    case 0: return pb_varint(r, val);
    case 1:
        if (r->end - r->p < 8) return -1;
        memcpy(val, r->p, 8);
        r->p += 8;
        return 0;
    case 2: {
        uint64_t len;
        if (pb_varint(r, &len) != 0 || len > (uint64_t)(r->end - r->p)) return -1;
        sub->p = r->p;
        sub->end = r->p + len;
        r->p += len;
        return 0;
    }
    case 5: {
        if (r->end - r->p < 4) return -1;
        uint32_t v32;
        memcpy(&v32, r->p, 4);
        *val = v32;
        r->p += 4;
        return 0;
    }
    default: return -1;
    }
}

typedef struct {
    const unsigned char *text;
    size_t len;
    float score;
    int type;
} SpmPiece;

enum { SPM_NORMAL = 1, SPM_UNKNOWN = 2, SPM_CONTROL = 3, SPM_BYTE = 6, SPM_BPE = 2 };

int tokenizer_load_spm(Tokenizer *t, const char *path, int vocab_size) {
    memset(t, 0, sizeof *t);
    char *buf;
    size_t size;
    if (qh_read_file(path, &buf, &size) != 0) return qh_error("%s: cannot read tokenizer model", path);
    PbReader r = {(const unsigned char *)buf, (const unsigned char *)buf + size};
    SpmPiece *pieces = NULL;
    int np = 0, cap = 0, rc = -1;
    uint64_t model_type = 1 /* unigram, the protobuf default */, bos = 1, eos = 2;
    int dummy_prefix = 1, remove_ws = 1;
    char norm[64] = "nmt_nfkc";
    while (r.p < r.end) {
        uint32_t f;
        int wt;
        PbReader sub = {0};
        uint64_t v = 0;
        if (pb_field(&r, &f, &wt, &sub, &v) != 0) {
            qh_error("%s: not a SentencePiece model (malformed protobuf at byte %td)", path, (const char *)r.p - buf);
            goto out;
        }
        if (f == 1 && wt == 2) { /* SentencePiece */
            SpmPiece pc = {NULL, 0, 0.0f, SPM_NORMAL};
            while (sub.p < sub.end) {
                uint32_t g;
                int w;
                PbReader s2 = {0};
                uint64_t x = 0;
                if (pb_field(&sub, &g, &w, &s2, &x) != 0) {
                    qh_error("%s: piece %d: malformed protobuf", path, np);
                    goto out;
                }
                if (g == 1 && w == 2) pc.text = s2.p, pc.len = (size_t)(s2.end - s2.p);
                else if (g == 2 && w == 5) {
                    uint32_t u = (uint32_t)x;
                    memcpy(&pc.score, &u, 4);
                } else if (g == 3 && w == 0) pc.type = (int)x;
            }
            if (!pc.text) {
                qh_error("%s: piece %d has no text", path, np);
                goto out;
            }
            if (np == cap) pieces = qh_realloc(pieces, sizeof(SpmPiece) * (size_t)(cap = cap ? 2 * cap : 1024));
            pieces[np++] = pc;
        } else if (f == 2 && wt == 2) { /* TrainerSpec */
            while (sub.p < sub.end) {
                uint32_t g;
                int w;
                PbReader s2;
                uint64_t x = 0;
                if (pb_field(&sub, &g, &w, &s2, &x) != 0) {
                    qh_error("%s: trainer_spec: malformed protobuf", path);
                    goto out;
                }
                if (g == 3 && w == 0) model_type = x;
                else if (g == 41 && w == 0) bos = x;
                else if (g == 42 && w == 0) eos = x;
            }
        } else if (f == 3 && wt == 2) { /* NormalizerSpec */
            while (sub.p < sub.end) {
                uint32_t g;
                int w;
                PbReader s2 = {0};
                uint64_t x = 0;
                if (pb_field(&sub, &g, &w, &s2, &x) != 0) {
                    qh_error("%s: normalizer_spec: malformed protobuf", path);
                    goto out;
                }
                if (g == 1 && w == 2) snprintf(norm, sizeof norm, "%.*s", (int)(s2.end - s2.p), (const char *)s2.p);
                else if (g == 3 && w == 0) dummy_prefix = x != 0;
                else if (g == 4 && w == 0) remove_ws = x != 0;
            }
        }
    }
    if (model_type != SPM_BPE) {
        qh_error("%s: SentencePiece model type %llu is not supported (only BPE, as LLaMA and Mistral use)", path,
                 (unsigned long long)model_type);
        goto out;
    }
    if (strcmp(norm, "identity") != 0 || !dummy_prefix || remove_ws) {
        qh_error("%s: normalizer '%s' (dummy prefix %d, remove extra whitespaces %d) is not supported: only the "
                 "LLaMA settings (identity, 1, 0)", path, norm, dummy_prefix, remove_ws);
        goto out;
    }
    if (vocab_size > 0 && np != vocab_size) {
        qh_error("%s: %d pieces, the model's vocab_size is %d", path, np, vocab_size);
        goto out;
    }
    /* the llama2.c image: int32 max_token_length, then (float score, int32 len, bytes) per piece */
    size_t img_cap = 4;
    for (int i = 0; i < np; i++) img_cap += 8 + pieces[i].len + 8;
    char *img = qh_malloc(img_cap), *o = img + 4;
    int32_t maxlen = 1;
    for (int i = 0; i < np; i++) {
        char tmp[1024];
        size_t n = 0;
        if ((uint64_t)i == bos) n = (size_t)snprintf(tmp, sizeof tmp, "\n<s>\n");
        else if ((uint64_t)i == eos) n = (size_t)snprintf(tmp, sizeof tmp, "\n</s>\n");
        else {
            for (size_t k = 0; k < pieces[i].len && n < sizeof tmp - 3;) {
                const unsigned char *c = pieces[i].text + k;
                if (pieces[i].len - k >= 3 && c[0] == 0xE2 && c[1] == 0x96 && c[2] == 0x81) { /* U+2581 */
                    tmp[n++] = ' ';
                    k += 3;
                } else {
                    tmp[n++] = (char)*c;
                    k++;
                }
            }
        }
        int32_t len = (int32_t)n;
        memcpy(o, &pieces[i].score, 4);
        memcpy(o + 4, &len, 4);
        memcpy(o + 8, tmp, n);
        o += 8 + n;
        if (len > maxlen) maxlen = len;
    }
    memcpy(img, &maxlen, 4);
    rc = tokenizer_load_buffer(t, img, (size_t)(o - img), vocab_size > 0 ? vocab_size : np, path);
    free(img);
    if (rc == 0) {
        t->kind = TOKENIZER_SPM;
        tokenizer_set_source(t, path, buf, size);
    }
out:
    free(pieces);
    free(buf);
    return rc;
}
