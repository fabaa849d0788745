# hf_tokenizers_time.py: the baseline of bench_tokenizer: the Hugging Face
# `tokenizers` library timed on the same file and text, in the same run.
# Usage: python3 hf_tokenizers_time.py TOKENIZER_JSON TEXT_FILE IDS_OUT REPS
# Prints "load_s encode_s n_ids load_cpu_s encode_cpu_s" (best of REPS each;
# wall-clock and process CPU time) and writes the ids as int32 little-endian
# to IDS_OUT, so that the C side can compare them.
# Exits 3 when the library is not installed (the benchmark then says so).
import struct, sys, time
try:
    from tokenizers import Tokenizer
except ImportError:
    sys.exit(3)
path, text_path, ids_out, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
text = open(text_path, "rb").read().decode("utf-8", errors="replace")
best = [float("inf")] * 4
for _ in range(reps):
    c0, t0 = time.process_time(), time.perf_counter()
    tk = Tokenizer.from_file(path)
    c1, t1 = time.process_time(), time.perf_counter()
    ids = tk.encode(text).ids  # add_special_tokens=True, as qharness --bos
    c2, t2 = time.process_time(), time.perf_counter()
    best = [min(b, x) for b, x in zip(best, (t1 - t0, t2 - t1, c1 - c0, c2 - c1))]
open(ids_out, "wb").write(struct.pack(f"<{len(ids)}i", *ids))
print(f"{best[0]:.6f} {best[1]:.6f} {len(ids)} {best[2]:.6f} {best[3]:.6f}")
