"""Template captions redrawn every training epoch, as Synergy-CLIP's prompt-mode loader (`Dataset_Step1` in
`JoSangYeon/Synergy-CLIP`'s dataset.py, IS_CAPTIONED=False) draws a template and a label synonym on every load.

The built caption of a template dataset is one such draw, fixed per clip; training replaces it every epoch with
a fresh one, byte-encoded as the featurizer encodes the stored text. Validation and test keep the built captions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from polymodal.builders.vggsound_plus import TEMPLATES, class_index, synonyms


class TemplateRedraw:
    """The train split's text for each epoch: per clip, a template of TEMPLATES and a synonym of its label.

    The draws of an epoch come from numpy's default_rng([seed, epoch]), clip by clip in the split's order, so
    they depend on the run's seed, the epoch and the clip's place alone: the same on every rank and on resume.
    """

    rule = ("text: every training epoch, each clip's caption is drawn afresh, a template of "
            "builders/vggsound_plus/captioners.TEMPLATES filled with a synonym of its label, from "
            "numpy.random.default_rng([seed, epoch]); validation and test keep the built captions")

    def __init__(self, classes: np.ndarray, encode: Callable[[str], np.ndarray]):
        """`classes`: the VGGSound class index of each training clip, in the split's order; `encode`: caption ->
        token ids, as the featurizer wrote the built captions."""
        labels, self._label = np.unique(np.asarray(classes, np.int64), return_inverse=True)
        self._label = self._label.reshape(-1)
        names = {index: name for name, index in class_index().items()}
        self._words = [synonyms(names[int(c)]) for c in labels]
        self._counts = np.array([len(words) for words in self._words], np.int64)
        self._encode = encode

    def __call__(self, epoch: int, seed: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([seed, epoch])
        template = rng.integers(len(TEMPLATES), size=len(self._label))
        synonym = rng.integers(self._counts[self._label])  # below each clip's own count of synonyms
        # Each distinct caption is encoded once: a few hundred labels meet 80 templates, however many clips.
        drawn, inverse = np.unique(np.stack([self._label, synonym, template], 1), axis=0, return_inverse=True)
        ids = np.stack([self._encode(TEMPLATES[t].format(self._words[label][s])) for label, s, t in drawn])
        return {"text": torch.from_numpy(ids[inverse.reshape(-1)])}
