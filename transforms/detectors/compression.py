"""Compression features: how well a text compresses, alone and after reference samples.

`zlib` with a preset dictionary (`zdict`) compresses a text as if it followed the reference, so
C(x | machine reference) - C(x | human reference) measures which sample the text shares more
strings with ("extra bytes"). The references are small fixed strings (≤ `ref_bytes` bytes each,
a seeded sample of the training texts of each class) saved with the model. Speed: the
compressor with the dictionary loaded is built once and `copy()`-ed per text, level 6, 16 KB
window, and only the first `max_bytes` bytes of a text are compressed (~0.15 ms per text per
reference on a 2.4 KB document). lzma was measured at ~0.3 ms per 2.4 KB text at preset 0
(more with a reference) and is not used. Standardised features → logistic regression.
"""
from __future__ import annotations

import zlib

import numpy as np

from .base import LinearHead, LinearDetector

FEATURE_NAMES = ["ratio", "ratio_given_machine", "ratio_given_human", "extra_machine_minus_human",
                 "gain_machine", "gain_human"]


class CompressionDetector(LinearDetector):
    feature_names = FEATURE_NAMES
    name = "compression"

    def __init__(self, ref_bytes=16000, max_bytes=2000, level=6, wbits=14, C=1.0):
        self.ref_bytes, self.max_bytes = int(ref_bytes), int(max_bytes)
        self.level, self.wbits, self.C = int(level), int(wbits), float(C)
        self.ref_machine = b""
        self.ref_human = b""
        self.head = LinearHead()
        self._co = None

    def prepare(self, texts, y, seed=0):
        """Pick the references: a seeded sample of each class's texts, joined up to ref_bytes."""
        rng = np.random.default_rng(seed)
        y = np.asarray(y)

        def sample(label):
            idx = rng.permutation(np.flatnonzero(y == label))
            out, size = [], 0
            for i in idx:
                b = texts[i].encode("utf-8")[:1500]
                out.append(b)
                size += len(b) + 1
                if size >= self.ref_bytes:
                    break
            return b" ".join(out)[: self.ref_bytes]

        self.ref_machine, self.ref_human = sample(1), sample(0)
        self._co = None
        return self

    def _compressors(self):
        if self._co is None:
            mk = lambda ref: zlib.compressobj(self.level, zlib.DEFLATED, -self.wbits, 8,
                                              zlib.Z_DEFAULT_STRATEGY, ref) if ref else None
            self._co = (zlib.compressobj(self.level, zlib.DEFLATED, -self.wbits, 8), mk(self.ref_machine),
                        mk(self.ref_human))
        return self._co

    def features_one(self, text):
        b = text.encode("utf-8")[: self.max_bytes]
        if not b:
            return np.zeros(len(FEATURE_NAMES))
        n = float(len(b))
        sizes = []
        for co in self._compressors():
            if co is None:
                sizes.append(n)
                continue
            c = co.copy()
            sizes.append(len(c.compress(b)) + len(c.flush()))
        c0, cm, ch = sizes
        return np.array([c0 / n, cm / n, ch / n, (cm - ch) / n, (c0 - cm) / n, (c0 - ch) / n])

    def get_state(self):
        arrays = {"ref_machine": np.frombuffer(self.ref_machine, dtype=np.uint8),
                  "ref_human": np.frombuffer(self.ref_human, dtype=np.uint8)}
        arrays.update(self.head.get_state(""))
        return ({"ref_bytes": self.ref_bytes, "max_bytes": self.max_bytes, "level": self.level,
                 "wbits": self.wbits, "C": self.C, "features": FEATURE_NAMES}, arrays)

    @classmethod
    def from_state(cls, params, arrays):
        d = cls(params["ref_bytes"], params["max_bytes"], params["level"], params["wbits"], params["C"])
        d.ref_machine = bytes(np.asarray(arrays["ref_machine"], dtype=np.uint8))
        d.ref_human = bytes(np.asarray(arrays["ref_human"], dtype=np.uint8))
        d.head = LinearHead.from_state(arrays, "")
        return d
