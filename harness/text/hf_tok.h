/* hf_tok.h: Hugging Face tokenizer.json files of model type BPE (Llama-3,
 * Qwen2/2.5/3, Falcon, Mistral-Nemo, DeepSeek), giving exactly the ids of the
 * `tokenizers` library's encode(text, add_special_tokens) and the text of its
 * decode(ids). Supported: the BPE model (vocabulary, merges in the "a b" and
 * ["a", "b"] forms, unk_token, fuse_unk, byte_fallback, ignore_merges),
 * added_tokens (single_word, lstrip, rstrip, normalized, special), the
 * normalizers NFC, Prepend, Replace and Sequence, the pre-tokenizers Split,
 * ByteLevel, Digits, Punctuation, Metaspace and Sequence, the post-processors
 * TemplateProcessing, ByteLevel and Sequence, the decoders ByteLevel,
 * Metaspace, ByteFallback, Fuse, Strip, Replace and Sequence. Anything else
 * in a file is refused with the file, the JSON path and the value.
 * Text that is not valid UTF-8 is first repaired as Python's
 * bytes.decode("utf-8", errors="replace") does (the library takes str).
 * Not here: the llama2.c / SentencePiece kinds (tokenizer.h is the one
 * interface over all three). */
#ifndef QH_HF_TOK_H
#define QH_HF_TOK_H

#include <stddef.h>

typedef struct HfTok HfTok;

/* Parse the tokenizer.json text buf[0..len) (`path` names it in messages).
 * max_ids > 0: every id must be below it (the model's embedding rows), else
 * refused with the JSON path of the largest id. 0, or -1 after a message. */
int hf_tok_load(HfTok **out, const char *buf, size_t len, const char *path, int max_ids);
void hf_tok_free(HfTok *h);

/* One past the largest id (vocabulary and added tokens). */
int hf_tok_n_ids(const HfTok *h);
/* The ids the post-processor adds in front of / after a text (TemplateProcessing
 * for one sequence); *n their count; a pointer into h. */
const int *hf_tok_prefix(const HfTok *h, int *n);
const int *hf_tok_suffix(const HfTok *h, int *n);
/* Is id an added token marked special? */
int hf_tok_is_special(const HfTok *h, int id);
/* Token string (vocabulary or added token content) -> id, or -1. */
int hf_tok_token_to_id(const HfTok *h, const char *s, size_t len);
/* id -> token string as the library's id_to_token (NULL outside the ids). */
const char *hf_tok_id_to_token(const HfTok *h, int id, size_t *len);

/* encode(text, add_special_tokens): *ids allocated (qh_malloc), *n its count.
 * 0, or -1 after a message. */
int hf_tok_encode(const HfTok *h, const char *text, size_t len, int add_special, int **ids, size_t *n);
/* decode(ids, skip_special_tokens): the decoder chain over the tokens (joined
 * with " " without a decoder). *out allocated, NUL-terminated, *out_len its
 * length. An id outside 0..hf_tok_n_ids-1 or without a token is refused. */
int hf_tok_decode(const HfTok *h, const int *ids, size_t n, int skip_special, char **out, size_t *out_len);
/* The bytes one token stands for on its own, for streaming output: the
 * decoder chain applied to that token alone, without the final UTF-8 repair
 * (ByteLevel gives the raw bytes, ByteFallback the raw byte) and treating it
 * as not the first token (Metaspace gives a space). *out allocated. */
int hf_tok_token_bytes(const HfTok *h, int id, char **out, size_t *out_len);

#endif
