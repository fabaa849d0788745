/* hf_tok_internal.h: the parsed form of a tokenizer.json, shared by its
 * loader (hf_tok_load.c), encoder (hf_tok_encode.c) and decoder
 * (hf_tok_decode.c). Sequences of normalizers, pre-tokenizers,
 * post-processors and decoders are flattened into arrays in order (applying
 * a Sequence is applying its members one after the other). */
#ifndef QH_HF_TOK_INTERNAL_H
#define QH_HF_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bpe_model.h"
#include "hf_regex.h"
#include "hf_tok.h"

typedef struct HfAdded {
    char *content;      /* as in the file (owned) */
    size_t len;
    char *norm;         /* content through the normalizer, matched when `normalized` (owned) */
    size_t norm_len;
    int id;
    int single_word, lstrip, rstrip, normalized, special;
} HfAdded;

/* Added tokens matched in text: leftmost, then longest (the library's
 * Aho-Corasick, MatchKind::LeftmostLongest), by first byte. */
typedef struct HfAddedSet {
    int *idx;           /* indices into HfTok.added, grouped by first byte */
    int start[257];     /* idx[start[b] .. start[b+1]) begin with byte b */
    int n;
} HfAddedSet;

typedef enum { NORM_NFC, NORM_PREPEND, NORM_REPLACE } HfNormKind;
typedef struct HfNorm {
    HfNormKind kind;
    char *str;          /* Prepend: the prefix; Replace: the content (owned) */
    size_t str_len;
    HfRegex re;         /* Replace: the pattern */
} HfNorm;

/* Pre-tokenizers run nested, one call level each: their number is bounded. */
#define HF_MAX_PRETOKS 64

typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } HfSplitBehavior;
typedef enum { PT_SPLIT, PT_BYTE_LEVEL, PT_DIGITS, PT_PUNCTUATION, PT_METASPACE } HfPreTokKind;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } HfPrependScheme;
typedef struct HfPreTok {
    HfPreTokKind kind;
    HfRegex re;                 /* Split: the pattern */
    HfSplitBehavior behavior;   /* Split, Punctuation */
    int invert;                 /* Split */
    int add_prefix_space;       /* ByteLevel */
    int use_regex;              /* ByteLevel: split with the GPT-2 pattern first */
    int individual_digits;      /* Digits */
    char rep[5];                /* Metaspace: the replacement character, UTF-8 */
    size_t rep_len;
    HfPrependScheme prepend;    /* Metaspace */
    int split;                  /* Metaspace: split on the replacement */
} HfPreTok;

typedef enum { DEC_BYTE_LEVEL, DEC_METASPACE, DEC_BYTE_FALLBACK, DEC_FUSE, DEC_STRIP, DEC_REPLACE } HfDecKind;
typedef struct HfDec {
    HfDecKind kind;
    uint32_t ch;                /* Metaspace: replacement; Strip: content */
    HfPrependScheme prepend;    /* Metaspace */
    long start, stop;           /* Strip */
    HfRegex re;                 /* Replace */
    char *content;              /* Replace (owned) */
    size_t content_len;
} HfDec;

/* A TemplateProcessing for one sequence: items in order, each the sequence
 * itself (n == -1) or the ids of a special token. */
typedef struct HfTplItem {
    int *ids;                   /* owned */
    int n;                      /* -1: the sequence */
} HfTplItem;
typedef struct HfTemplate {
    HfTplItem *items;
    int n;
} HfTemplate;

struct HfTok {
    char *path;                 /* owned, for messages */
    BpeModel model;
    HfAdded *added;             /* (n_added) in file order */
    int n_added;
    HfAddedSet raw_set;         /* normalized == false: matched in the raw text */
    HfAddedSet norm_set;        /* normalized == true: matched in the normalized text */
    int *added_of_id;           /* (n_ids) index into added, or -1 */
    int n_ids;                  /* one past the largest id */
    HfNorm *norms;
    int n_norms;
    int has_normalizer;         /* a normalizer is configured (even an empty Sequence) */
    HfPreTok *pretoks;
    int n_pretoks;
    HfRegex gpt2;               /* the ByteLevel pre-tokenizer's pattern, compiled when used */
    int have_gpt2;
    HfTemplate *tpls;           /* post-processors that change ids, in order */
    int n_tpls;
    int *prefix, n_prefix;      /* what the templates add around a text */
    int *suffix, n_suffix;
    HfDec *decs;
    int n_decs;
    int has_decoder;
    char byte_char[256][3];     /* ByteLevel: byte -> its character, UTF-8, NUL-terminated */
    int16_t char_byte[512];     /* ByteLevel: codepoint (< 512) -> byte, or -1 */
};

/* Normalize s[0..n) with h's normalizers: allocated result. 0 or -1. */
int hf_tok_normalize(const HfTok *h, HfMatchScratch *sc, const char *s, size_t n, char **out, size_t *out_len);
/* Fill byte_char / char_byte (the GPT-2 byte <-> character table). */
void hf_tok_byte_table(HfTok *h);

#endif
