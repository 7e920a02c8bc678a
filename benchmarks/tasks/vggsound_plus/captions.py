"""Template captions redrawn every training epoch, as Synergy-CLIP's prompt-mode loader (`Dataset_Step1` in
`JoSangYeon/Synergy-CLIP`'s dataset.py, IS_CAPTIONED=False) draws a template and a label synonym on every load.

The built caption of a template dataset is one such draw, fixed per clip; training replaces it every epoch with
a fresh one, byte-encoded as the featurizer encodes the stored text. Validation and test keep the built captions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from polymodal.builders.vggsound_plus import TEMPLATES, class_index, synonyms


class TemplateRedraw:
    """A training piece's text for each epoch: per clip, a template of TEMPLATES and a synonym of its label.

    The draws come from numpy's default_rng([seed, epoch, piece]), clip by clip in the piece's order, so they
    depend on the run's seed, the epoch and the clip's place alone: the same on every rank and on resume.
    """

    rule = ("text: every training epoch, each clip's caption is drawn afresh, a template of "
            "builders/vggsound_plus/captioners.TEMPLATES filled with a synonym of its label, from "
            "numpy.random.default_rng([seed, epoch, shard]); validation and test keep the built captions")

    def __init__(self, encode: Callable[[str], np.ndarray]):
        """`encode`: caption -> token ids, as the featurizer wrote the built captions."""
        self._names = {index: name for name, index in class_index().items()}
        self._encode = encode

    def __call__(self, arrays: dict[str, np.ndarray], epoch: int, seed: int, piece: int) -> dict[str, np.ndarray]:
        if not len(arrays["cls"]):
            return {}
        labels, label = np.unique(np.asarray(arrays["cls"], np.int64), return_inverse=True)
        label = label.reshape(-1)
        words = [synonyms(self._names[int(c)]) for c in labels]
        counts = np.array([len(w) for w in words], np.int64)
        rng = np.random.default_rng([seed, epoch, piece])
        template = rng.integers(len(TEMPLATES), size=len(label))
        synonym = rng.integers(counts[label])  # below each clip's own count of synonyms
        # Each distinct caption is encoded once: a few hundred labels meet 80 templates, however many clips.
        drawn, inverse = np.unique(np.stack([label, synonym, template], 1), axis=0, return_inverse=True)
        ids = np.stack([self._encode(TEMPLATES[t].format(words[c][s])) for c, s, t in drawn])
        return {"text": ids[inverse.reshape(-1)]}
