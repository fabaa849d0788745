# pth_to_npy.py: the SpQR authors' calibration sets, PyTorch files of token ids
# (data/red_pajama_n=1024.pth: RedPajama for LLaMA, data/refined_web_n=128.pth:
# RefinedWeb for Falcon, both in github.com/Vahe1994/SpQR), written as a NumPy
# .npy of int64 ids, shape (N, T), that `calibration.dataset = tokens:PATH` (and
# `qharness quantize --calib tokens:PATH`) reads. Optional: not part of the
# build, the tests or `make run`; needs `pip install torch numpy`.
#
# The reference slices what torch.load gives with [:nsamples] (datautils.py
# get_loaders) and uses each item as one window, so the file holds either one
# tensor (N, T) / (N, 1, T) or a sequence of N tensors (1, T) / (T,); all of
# them become rows of the (N, T) array, in order. Nothing is cut or padded: a
# window length other than the calibration seqlen is refused by the harness.
#
# Usage: python3 tools/pth_to_npy.py red_pajama_n=1024.pth data/calib/red_pajama_n=1024.npy
import os
import sys

import numpy as np
import torch


def load(path):
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        return torch.load(path, map_location='cpu')


def rows_of(obj, path):
    if isinstance(obj, torch.Tensor):
        t = obj
        if t.dim() == 3 and t.shape[1] == 1:
            t = t[:, 0, :]
        if t.dim() != 2:
            sys.exit('%s: a tensor of shape %s (expected (N, T) or (N, 1, T))' % (path, tuple(obj.shape)))
        return [t[i] for i in range(t.shape[0])]
    if isinstance(obj, (list, tuple)) and obj:
        out = []
        for k, x in enumerate(obj):
            if isinstance(x, (list, tuple)) and x and isinstance(x[0], torch.Tensor):
                x = x[0]  # (input_ids, targets) pairs, as get_c4 returns them
            if not isinstance(x, torch.Tensor) or x.numel() != x.shape[-1] or x.dim() > 2:
                sys.exit('%s: item %d is not one window of ids (%r)' % (path, k, getattr(x, 'shape', type(x))))
            out.append(x.reshape(-1))
        return out
    sys.exit('%s: holds %s (expected a tensor or a list of tensors of token ids)' % (path, type(obj).__name__))


src, dst = sys.argv[1:3]
rows = rows_of(load(src), src)
lengths = sorted(set(int(r.shape[0]) for r in rows))
if len(lengths) != 1:
    sys.exit('%s: windows of different lengths %s (expected one length)' % (src, lengths[:8]))
if rows[0].is_floating_point() or rows[0].is_complex():
    sys.exit('%s: ids of type %s (expected integers)' % (src, rows[0].dtype))
a = np.ascontiguousarray(torch.stack(rows).to(torch.int64).numpy().astype('<i8'))
if a.min() < 0:
    sys.exit('%s: negative id %d' % (src, int(a.min())))
os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
np.save(dst + '.tmp.npy', a)
os.replace(dst + '.tmp.npy', dst)
print('%s: %d windows of %d tokens, ids %d..%d -> %s (int64); use it as tokens:%s with calibration seqlen = %d '
      '(the model\'s vocabulary must hold id %d)' % (src, a.shape[0], a.shape[1], a.min(), a.max(), dst, dst,
                                                     a.shape[1], a.max()))
