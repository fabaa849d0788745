/* hf_unicode.h: the Unicode pieces the tokenizer.json pipeline needs, with
 * the exact semantics of the Rust `tokenizers` library where it matters:
 * UTF-8 decoding, repair of invalid UTF-8 (one U+FFFD per maximal invalid
 * subpart, as Python's bytes.decode(errors="replace") and Rust's
 * String::from_utf8_lossy do), NFC (utf8proc), and the character classes that
 * the library tests with Rust's char methods and its `regex` crate:
 * White_Space, char::is_numeric, punctuation, the `\w` word class.
 * Not here: regular expressions (hf_regex.h), tokenizer logic. */
#ifndef QH_HF_UNICODE_H
#define QH_HF_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Decode the codepoint at s[0..n) (n >= 1); *len gets its byte length. Meant
 * for valid UTF-8; on other bytes it returns some value and never reads past n. */
uint32_t u8_decode(const char *s, size_t n, size_t *len);
/* Encode cp into out (4 bytes room); returns the byte length. */
size_t u8_encode(uint32_t cp, char *out);
/* Byte length of the character starting at s[0..n), from its lead byte, at most n. */
size_t u8_char_len(const char *s, size_t n);

/* Is s[0..n) valid UTF-8 (no surrogates, no overlongs, nothing above U+10FFFF)? */
int u8_valid(const char *s, size_t n);
/* Valid UTF-8 made from s[0..n): every maximal subpart of an ill-formed
 * sequence becomes U+FFFD (Unicode 3.9 "best practice", = Python's
 * errors="replace"). Allocated, NUL-terminated; *out_len its length. */
char *u8_repair(const char *s, size_t n, size_t *out_len);

/* NFC of valid UTF-8 s[0..n) (utf8proc, NUL bytes kept). Allocated; -1 on failure. */
int u8_nfc(const char *s, size_t n, char **out, size_t *out_len);

/* Character classes (codepoints). */
int uc_is_white_space(uint32_t cp);  /* Unicode White_Space (Rust char::is_whitespace, regex \s) */
int uc_is_numeric(uint32_t cp);      /* general category Nd, Nl or No (Rust char::is_numeric) */
int uc_is_punctuation(uint32_t cp);  /* ASCII punctuation or category P* (the Punctuation pre-tokenizer) */
int uc_is_word(uint32_t cp);         /* Rust regex \w: Alphabetic, M*, Nd, Pc, Join_Control */

#endif
