/* tokenizer.h: the one tokenizer interface over the three kinds of file:
 * a llama2.c `tokenizer.bin`, a SentencePiece `tokenizer.model` (converted to
 * the llama2.c vocabulary, spm_model.c) and a Hugging Face `tokenizer.json`
 * (byte-level BPE and the rest of hf_tok.h, which this interface wraps).
 * tokenizer_load picks the kind by the file name (*.model, *.json, else
 * tokenizer.bin); encode, decode and the rest do not care which kind they hold.
 *
 * The llama2.c tokenizer: loading a `tokenizer.bin` (int32
 * max_token_length, then per token: float32 score, int32 length, that many
 * bytes, no NUL), encoding text exactly as llama2.c run.c encode() does (dummy
 * prefix, UTF-8 codepoint lookup with <0xXX> byte fallback, greedy
 * highest-score BPE merges), and decoding one token as run.c decode() does.
 * Two encoders with the same contract: tokenizer_encode (linked list + heap,
 * O(n log n), for whole corpora) and tokenizer_encode_ref (run.c's O(n^2)
 * merge loop, kept as an executable specification for the tests).
 * Not here: sampling, or any knowledge of datasets and how their lines are
 * joined (SPEC section 7). */
#ifndef QH_TOKENIZER_H
#define QH_TOKENIZER_H

#include <stddef.h>

#define TOKENIZER_UNK 0
#define TOKENIZER_BOS 1
#define TOKENIZER_EOS 2
#define TOKENIZER_BYTE0 3 /* <0x00> .. <0xFF> are ids 3 .. 258 */

typedef enum { TOKENIZER_LLAMA2C = 0, TOKENIZER_SPM, TOKENIZER_HF_JSON } TokenizerKind;

struct HfTok;

typedef struct Tokenizer {
    char **vocab;         /* vocab[i]: piece i, NUL-terminated (pieces never contain NUL) */
    float *scores;        /* merge priority of piece i (higher merges first) */
    int vocab_size;
    int max_token_length; /* as in the file header; every piece is at most this long */
    /* private: */
    int *piece_len;       /* byte length of each piece */
    int max_piece_len;    /* longest piece actually present (<= max_token_length) */
    char *arena;          /* storage behind vocab[] */
    int *table;           /* open-addressing hash piece -> id (-1 empty), lowest id wins */
    size_t table_mask;    /* table size - 1 (a power of two) */
    unsigned char byte_pieces[512]; /* byte b followed by NUL at 2*b */
    int space_prefix_only; /* every mergeable piece has spaces only in a leading run */
    /* every kind: */
    TokenizerKind kind;
    struct HfTok *hf;     /* tokenizer.json: the parsed file (owned), else NULL; then scores and
                           * table are NULL and vocab[i] holds token i's bytes (hf_tok_token_bytes) */
    char *path;           /* the file it was loaded from (owned; NULL for a buffer) */
    char sha256[65];      /* sha256 of that file's bytes ("" for a buffer) */
} Tokenizer;

/* Load a tokenizer file of any kind: *.model -> tokenizer_load_spm, *.json ->
 * tokenizer_load_hf, anything else is read as a llama2.c tokenizer.bin, with
 * path and sha256 recorded. tokenizer.bin: vocab_size <= 0: read tokens until the end of
 * the file; > 0: exactly that many, and the file must end right after them.
 * Rejected with a message naming the file (and token index, offset and the
 * bytes expected where that applies): short files, trailing bytes, lengths
 * outside 0..max_token_length, pieces containing a NUL byte, NaN scores, and
 * vocabularies of fewer than 259 tokens (3 specials + 256 byte tokens).
 * Returns 0, or -1 with *t left empty (tokenizer_free on it is harmless). */
int tokenizer_load(Tokenizer *t, const char *path, int vocab_size);
void tokenizer_free(Tokenizer *t);
/* The same from a tokenizer.bin image in memory (`path` names it in messages). */
int tokenizer_load_buffer(Tokenizer *t, const char *buf, size_t size, int vocab_size, const char *path);
/* A SentencePiece BPE model file (tokenizer.model of LLaMA-1/2, Mistral),
 * converted to the llama2.c vocabulary exactly as llama2.c's export does
 * (U+2581 -> space, <s> / </s> -> "\n<s>\n" / "\n</s>\n"); spm_model.c.
 * tokenizer_load dispatches here for paths ending in ".model". */
int tokenizer_load_spm(Tokenizer *t, const char *path, int vocab_size);
/* The tokenizer that goes with the model at model_path (a checkpoint file or
 * a model directory) of vocab_size: inside a directory the first of
 * tokenizer.json (as AutoTokenizer), tok<V>.bin, tokenizer.bin,
 * tokenizer.model; beside a file the first of tok<V>.bin, tokenizer.bin,
 * tokenizer.model, tokenizer.json; its path in buf[0..n). -1 (no message)
 * when there is none. tokenizer_find.c. */
int tokenizer_find(const char *model_path, int vocab_size, char *buf, size_t n);
/* The names tokenizer_find tries for that model, in its order, for messages:
 * "tok512.bin, tokenizer.bin, tokenizer.model and tokenizer.json". */
void tokenizer_find_tried(const char *model_path, int vocab_size, char *buf, size_t n);
/* A Hugging Face tokenizer.json (hf_tok.h). vocab_size > 0 is the model's
 * embedding rows: every id of the file must be below it (a model's table may
 * have more rows than the tokenizer has ids, never fewer). */
int tokenizer_load_hf(Tokenizer *t, const char *path, int vocab_size);
/* The same from the file's text in memory (`path` names it in messages). */
int tokenizer_load_hf_buffer(Tokenizer *t, const char *buf, size_t size, int vocab_size, const char *path);
/* For the loaders: record the file (path and sha256 of its bytes) in t. */
void tokenizer_set_source(Tokenizer *t, const char *path, const void *file, size_t size);
/* "llama2.c tokenizer.bin", "SentencePiece model" or "tokenizer.json (BPE)". */
const char *tokenizer_kind_name(const Tokenizer *t);

/* Piece -> id, or -1 if the exact byte string is not in the vocabulary
 * (tokenizer.json: the token string as written in the file, e.g. "Ġthe"). */
int tokenizer_lookup(const Tokenizer *t, const char *piece, size_t len);

/* Encode text[0..len) like llama2.c run.c encode(): optional BOS (id 1); the
 * piece " " as a dummy prefix when len > 0; each UTF-8 codepoint (a lead byte
 * plus following continuation bytes, at most 4 bytes, grouped exactly as
 * run.c groups them, invalid sequences included) looked up as a piece, else
 * one <0xXX> token (id byte + 3) per byte; then, while any adjacent pair's
 * concatenated pieces form a piece whose score is > -1e10, merge the pair with
 * the highest score, the leftmost one on ties; BOS takes part in the merges
 * exactly as in run.c. Optional EOS (id 2) at the end. Unlike run.c (which
 * reads a C string), a NUL byte in the text is an ordinary byte (<0x00>).
 * *ids is allocated with qh_malloc (the caller frees it), *n is its count.
 * Returns 0, or -1 with a message (NULL text with len > 0, a vocabulary
 * without a " " piece for the dummy prefix, text longer than INT_MAX/4). */
int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int bos, int eos,
                     int **ids, size_t *n);
/* For a tokenizer.json, tokenizer_encode is the library's encode(text,
 * add_special_tokens=bos): `bos` adds what the file's post-processor adds (a
 * BOS for Llama-3, nothing for Qwen); eos must be 0 (such a file defines no
 * end-of-sequence id of its own: refused with a message). */
/* The same contract computed with run.c's naive algorithm: after every merge
 * rescan all adjacent pairs for the first strictly highest score, merge it,
 * shift the tail left. String lookups by binary search in a sorted copy of
 * the vocabulary built per call; each pair's lookup result is remembered
 * until one of its two tokens changes (the only departure from run.c, which
 * repeats every lookup each round; the chosen merges are the same). O(n^2):
 * for tests on texts up to tens of KB. */
int tokenizer_encode_ref(const Tokenizer *t, const char *text, size_t len, int bos, int eos,
                         int **ids, size_t *n);

/* Decode one token as run.c decode(): after BOS (prev_token == 1) a leading
 * space of the piece is dropped; a piece of exactly the form "<0xXX>" (two
 * hex digits) gives that raw byte as a one-byte string (byte 0 gives "").
 * Returns a pointer valid while t lives, or NULL with a message if token is
 * not in 0..vocab_size-1. */
const char *tokenizer_decode(const Tokenizer *t, int prev_token, int token);
/* For a tokenizer.json: token's own bytes (ByteLevel: the raw bytes, possibly
 * part of a UTF-8 character), whatever prev_token; the pieces of a sequence
 * concatenate to its text wherever the decoder works token by token. */

/* The text of a whole id sequence: tokenizer.json: the library's
 * decode(ids, skip_special_tokens=False); the other kinds: the concatenation
 * of tokenizer_decode(ids[i-1], ids[i]) (ids[0] after BOS). *out allocated,
 * NUL-terminated, *len its length. 0, or -1 with a message (an id out of range). */
int tokenizer_decode_text(const Tokenizer *t, const int *ids, size_t n, char **out, size_t *len);

/* The token `generate` starts from: BOS (1) for llama2.c / SentencePiece;
 * for a tokenizer.json the first token its post-processor puts in front of a
 * text, else (Qwen) its first special added token (the document separator
 * <|endoftext|>); -1 if it has none. */
int tokenizer_start_token(const Tokenizer *t);
/* Does generation stop at this token? BOS (1) for llama2.c / SentencePiece,
 * as run.c; any special added token for a tokenizer.json. */
int tokenizer_is_stop(const Tokenizer *t, int token);

#endif
