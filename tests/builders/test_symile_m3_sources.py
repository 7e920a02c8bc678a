"""Symile-M3's sources on small fixture folders: ImageNet, an image folder, Common Voice, espeak-ng,
and the clear failures when a tool or an input is missing."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from polymodal.builders.core.media import SourceError
from polymodal.builders.core.runner import build
from polymodal.builders.schema import AUDIO, IMAGE
from polymodal.builders.symile_m3 import speech as tts
from polymodal.builders.symile_m3.builder import (
    LANGUAGE_SETS,
    M3Config,
    SymileM3Builder,
)
from polymodal.builders.symile_m3.names import load_table
from tests.helpers import split_samples

M3_2 = LANGUAGE_SETS["M3-2"]
from tests.helpers import ROOT


@pytest.fixture(scope="module", autouse=True)
def tts_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("tts-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(tts.CACHE_ENV, str(path))
        yield path


def _samples(folder: Path, split: str = "train") -> list[dict]:
    return list(split_samples(folder, split).values())


def _jpeg(path: Path, color, mode="RGB", fmt="JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (24, 16), color).save(path, format=fmt)


def _mp3(path: Path, seconds: float) -> None:
    """A 440 Hz tone at 44.1 kHz; 0 seconds gives a header-only file, as Common Voice's empty clips are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
           "-t", str(seconds), "-ar", "44100", "-ac", "1", str(path)]
    subprocess.run(cmd, check=True)


def test_imagenet_source_uses_synset_folders_and_babel_names(tmp_path):
    classes = load_table("babel", M3_2)[:3]
    train = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "train"  # the Kaggle download's layout
    for n, c in enumerate(classes):
        _jpeg(train / c.key / f"{c.key}_1.JPEG", (40 * n, 90, 200))
    _jpeg(train / classes[0].key / f"{classes[0].key}_2.JPEG", (10, 20, 30, 40), mode="CMYK")
    _jpeg(train / classes[1].key / f"{classes[1].key}_3.JPEG", (200, 10, 10), fmt="PNG")  # a PNG named .JPEG
    cfg = M3Config(languages=M3_2, images=f"imagenet:{tmp_path}", train=300, val=0, test=0, shard_size=150)
    manifest = build(SymileM3Builder(cfg), tmp_path / "out", progress=False)

    assert cfg.names == "babel"
    assert manifest["info"]["classes_named_in_every_language"] == 572 and manifest["info"]["classes_used"] == 3
    by_key = {c.key: c for c in classes}
    seen = set()
    for s in _samples(tmp_path / "out"):
        meta = json.loads(s["json"])
        cls = by_key[meta["class_key"]]
        assert meta["class_id"] == cls.cls_id and meta["target"] == cls.names[meta["language"]]
        image = Image.open(io.BytesIO(s[IMAGE]))
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (24, 16)
        if meta["image"].endswith("_1.JPEG"):  # an RGB JPEG passes through untouched
            assert s[IMAGE] == (train / meta["image"]).read_bytes()
        seen.add(meta["image"].rpartition("_")[2])
    assert seen == {"1.JPEG", "2.JPEG", "3.JPEG"}
    assert "Babel-ImageNet names instead of the paper's Google Translate" in (tmp_path / "out" / "README.md").read_text()


def test_imagefolder_source_reads_its_class_table(tmp_path):
    for n, folder in enumerate(("cat", "dog", "bird", "fish")):  # fish is not in the table
        for k in range(2):
            _jpeg(tmp_path / "images" / folder / f"{k}.jpg", (60 * n, 30 * k, 90))
    table = {
        "cat": {"en": "cat", "de": "Katze", "cls_id": 0},
        "dog": {"en": "dog", "de": "Hund", "cls_id": 1},
        "bird": {"en": "bird", "de": "Vogel", "cls_id": 2},
        "cow": {"en": "cow", "de": "Kuh", "cls_id": 3},  # no images
        "horse": {"en": "horse", "cls_id": 4},  # no German name
    }
    (tmp_path / "images" / "classes.json").write_text(json.dumps(table))
    cfg = M3Config(languages=("en", "de"), images=f"imagefolder:{tmp_path / 'images'}", train=200, val=0, test=0)
    manifest = build(SymileM3Builder(cfg), tmp_path / "out", progress=False)

    assert manifest["info"]["classes_named_in_every_language"] == 4 and manifest["info"]["classes_used"] == 3
    for s in _samples(tmp_path / "out"):
        meta = json.loads(s["json"])
        assert meta["class_key"] in ("cat", "dog", "bird")
        assert meta["target"] == table[meta["class_key"]][meta["language"]]
        assert meta["image"].startswith(meta["class_key"] + "/")
    assert SymileM3Builder(cfg).catalog().audio.prepare() == 0  # the pool was made once, before the shards


def test_commonvoice_clips_are_decoded_to_16k_and_empty_ones_dropped(tmp_path):
    cv = tmp_path / "cv"
    clips = {"en": {"a.mp3": 0.5, "b.mp3": 0.75, "listed_empty.mp3": 0, "empty.mp3": 0}, "el": {"c.mp3": 0.5, "d.mp3": 1.0}}
    for lang, files in clips.items():
        for name, seconds in files.items():
            _mp3(cv / lang / "clips" / name, seconds)
        rows = ["client_id\tpath\tsentence"] + [f"x\t{name}\tΚάτι \"quoted\"" for name in files]
        (cv / lang / "train.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (cv / "en" / "clip_durations.tsv").write_text("clip\tduration[ms]\nlisted_empty.mp3\t0\na.mp3\t500\n")
    cfg = M3Config(languages=M3_2, audio=f"commonvoice:{cv}", train=240, val=0, test=0, shard_size=120)
    manifest = build(SymileM3Builder(cfg), tmp_path / "out", progress=False)

    assert manifest["info"]["audio_pool"] == {"en": 3, "el": 2}  # listed_empty never enters the pool
    assert "ffmpeg" in manifest["tools"]
    used = set()
    for s in _samples(tmp_path / "out"):
        meta = json.loads(s["json"])
        lang, _, name = meta["audio"].partition("/clips/")
        assert lang == meta["language"] and clips[lang][name] > 0
        audio, rate = sf.read(io.BytesIO(s[AUDIO]))
        assert rate == 16_000 and audio.ndim == 1
        assert abs(len(audio) - clips[lang][name] * rate) < 0.03 * rate
        used.add(name)
    assert used == {"a.mp3", "b.mp3", "c.mp3", "d.mp3"}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "the clips `clip_durations.tsv` gives 0 ms" in card and "text-to-speech" not in card


@pytest.mark.parametrize("audio, tool", [("espeak", "espeak-ng"), ("commonvoice:{tmp}", "ffmpeg")])
def test_a_missing_tool_fails_naming_it_before_any_shard(tmp_path, audio, tool):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    cmd = [sys.executable, "-m", "polymodal.builders", "build", "symile-m3", "--out", str(tmp_path / "out"),
           "--audio", audio.format(tmp=tmp_path), "--train", "10", "--val", "0", "--test", "0", "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PATH": str(empty_bin)})
    assert proc.returncode != 0
    assert f"{tool} is not on PATH" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("*.tar")) and not list(tmp_path.rglob("*.tmp"))


def test_an_unreadable_image_fails_naming_it_and_leaves_no_partial_shard(tmp_path):
    for n, folder in enumerate(("one", "two")):
        _jpeg(tmp_path / "images" / folder / "ok.jpg", (90 * n, 0, 0))
    (tmp_path / "images" / "bad").mkdir()
    (tmp_path / "images" / "bad" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is no jpeg")
    table = {name: {"en": name, "el": f"λ{name}", "cls_id": k} for k, name in enumerate(("one", "two", "bad"))}
    (tmp_path / "images" / "classes.json").write_text(json.dumps(table))
    cfg = M3Config(languages=M3_2, images=f"imagefolder:{tmp_path / 'images'}", train=400, val=0, test=0, shard_size=10)
    with pytest.raises(SourceError, match=r"unreadable image .*bad/broken\.jpg"):
        build(SymileM3Builder(cfg), tmp_path / "out", progress=False)
    for tar in (tmp_path / "out").rglob("*.tar"):  # shards before the failure are whole and marked done
        assert tar.with_suffix(".stats.json").is_file()
    assert not list((tmp_path / "out").rglob("*.tmp")) and not (tmp_path / "out" / "manifest.json").exists()


def test_espeak_speaks_every_language_of_the_sets_reproducibly():
    goldfish = next(c for c in load_table("babel", LANGUAGE_SETS["M3-10"]) if c.cls_id == 1)
    for lang in LANGUAGE_SETS["M3-10"]:
        u = tts.utterance(lang, goldfish.names[lang])
        flac = tts.synthesize(u)
        audio, rate = sf.read(io.BytesIO(flac))
        assert rate == 16_000 and audio.ndim == 1 and 0.2 < len(audio) / rate < 5, lang
        assert np.abs(audio).max() > 0.05, lang
        if lang == "ja":
            assert flac == tts.synthesize(u)  # the same entry twice gives the same bytes
    assert tts.kana("金魚") == "きんぎょ" and tts.pinyin("大白鲨") == "da4 bai2 sha1"
    assert tts.utterance("zh-CN", "鲫鱼").voice == "cmn-latn-pinyin"


def test_the_cache_key_names_the_speech_and_a_missing_entry_is_a_clear_error(tmp_path, monkeypatch):
    assert tts.utterance("en", "cat").key != tts.utterance("en", "dog").key != tts.utterance("de", "dog").key
    assert tts.utterance("en", "cat").key == tts.utterance("en", "cat").key
    monkeypatch.setenv(tts.CACHE_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(SourceError, match=tts.CACHE_ENV):
        tts.read(tts.utterance("en", "cat"))
