/* model_open.h: open a model by path, whatever its format: a llama2.c
 * checkpoint file (model.h) or a Hugging Face directory holding config.json
 * (hf_model.h), with its tokenizer (the one given, or the one found beside
 * it: tokenizer_find). Used by the command line, the sweep and the reader of
 * quantized-model files alike. A procedural model spec (procedural.h) opens
 * a generated model. */
#ifndef QH_MODEL_OPEN_H
#define QH_MODEL_OPEN_H

#include "model.h"
#include "tokenizer.h"

/* Load the model at model_path (a llama2.c checkpoint file, or a Hugging Face
 * directory holding config.json, hf_model.h) and its tokenizer: tok_path, or
 * else the one tokenizer_find gives (tokenizer.json first inside a
 * directory). The tokenizer must fit the model: the same vocabulary size for
 * a llama2.c / SentencePiece vocabulary, every id below the embedding rows
 * for a tokenizer.json. t may be NULL (no tokenizer wanted). */
int model_open(const char *model_path, const char *tok_path, Model *m, Tokenizer *t);
/* The same; with block_by_block a Hugging Face directory is opened streamed
 * (hf_model_open_streamed: one block's linears resident at a time) for work
 * under --max-memory (a llama2.c file is mmapped either way). */
int model_open_for(const char *model_path, const char *tok_path, Model *m, Tokenizer *t, int block_by_block);

#endif
