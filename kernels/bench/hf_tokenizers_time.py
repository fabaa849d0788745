# hf_tokenizers_time.py: the baseline of bench_tokenizer: the Hugging Face
# `tokenizers` library timed on the same file and text, in the same run.
# Usage: python3 hf_tokenizers_time.py TOKENIZER_JSON TEXT_FILE IDS_OUT REPS
# Prints "load_s encode_s n_ids" (best of REPS each) and writes the ids as
# int32 little-endian to IDS_OUT, so that the C side can compare them.
# Exits 3 when the library is not installed (the benchmark then says so).
import struct, sys, time
try:
    from tokenizers import Tokenizer
except ImportError:
    sys.exit(3)
path, text_path, ids_out, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
text = open(text_path, "rb").read().decode("utf-8", errors="replace")
best_load = best_enc = float("inf")
for _ in range(reps):
    t0 = time.perf_counter()
    tk = Tokenizer.from_file(path)
    t1 = time.perf_counter()
    ids = tk.encode(text).ids  # add_special_tokens=True, as qharness --bos
    t2 = time.perf_counter()
    best_load, best_enc = min(best_load, t1 - t0), min(best_enc, t2 - t1)
open(ids_out, "wb").write(struct.pack(f"<{len(ids)}i", *ids))
print(f"{best_load:.6f} {best_enc:.6f} {len(ids)}")
