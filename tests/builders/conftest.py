"""Small builds of every dataset, made once per session, for the tests that read them as outsiders do: stock
WebDataset readers, 🤗 datasets without polymodal, and the Hub's card parser."""

from pathlib import Path

import pytest

from polymodal.builders.core.runner import build
from polymodal.builders.symile_m3.builder import LANGUAGE_SETS, M3Config, SymileM3Builder
from polymodal.builders.symile_m3.speech import CACHE_ENV
from polymodal.builders.vggsound_plus.builder import VggConfig, VggSoundPlusBuilder
from polymodal.builders.xnor import XnorBuilder, XnorConfig
from polymodal.builders.xor import XorBuilder, XorConfig


@pytest.fixture(scope="session")
def small_xor(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("xor")
    build(XorBuilder(XorConfig(train=600, val=100, test=150, test_draws=2, shard_size=250)), out, progress=False)
    return out


@pytest.fixture(scope="session")
def small_xnor(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("xnor")
    build(XnorBuilder(XnorConfig(bits=4, dim=20, samples=400, shard_size=150)), out, progress=False)
    return out


@pytest.fixture(scope="session")
def small_m3(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("m3")
    with pytest.MonkeyPatch.context() as mp:  # a speech cache of the session's own
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("tts-cache")))
        config = M3Config(languages=LANGUAGE_SETS["M3-5"], train=60, val=20, test=30, shard_size=25, seed=1)
        build(SymileM3Builder(config), out, progress=False)
    return out


@pytest.fixture(scope="session")
def small_vgg(tmp_path_factory) -> Path:
    """Four fixture clips made by ffmpeg, cut from a folder: two train, two test."""
    from tests.builders.test_vggsound_plus import LABELS, make_clip, ytid

    clips = tmp_path_factory.mktemp("vgg-clips")
    lines = []
    for n in range(4):
        name = ytid(f"clip{n}")
        make_clip(clips / f"{name}_000000.mp4", tone=300 + 100 * n)
        lines.append(f'{name},0,"{LABELS[n % 3]}",{("train", "test")[n % 2]}')
    (clips / "index.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path_factory.mktemp("vgg")
    config = VggConfig(index=str(clips / "index.csv"), source=f"dir:{clips}", frame_size=32, shard_size=1)
    build(VggSoundPlusBuilder(config), out, progress=False)
    return out
