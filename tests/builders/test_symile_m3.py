"""The Symile-M3 builder on its embedded sources (digits, number words, espeak-ng): the paper's sampling,
the shard contract, and what readers see."""

import argparse
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from scipy import stats

from polymodal.builders.cli import add_commands
from polymodal.builders.core.manifest import load_manifest, verify
from polymodal.builders.core.runner import build
from polymodal.builders.schema import AUDIO, IMAGE, TEXT
from polymodal.builders.symile_m3.builder import (
    LANGUAGE_SETS,
    M3Config,
    SymileM3Builder,
    draw,
)
from polymodal.builders.symile_m3.names import digit_words, load_table
from polymodal.builders.symile_m3.speech import CACHE_ENV
from tests.helpers import folder_bytes, sigkill_when, split_samples

M3_5 = LANGUAGE_SETS["M3-5"]
SMALL = dict(languages=M3_5, train=3000, val=500, test=500, shard_size=500, seed=1)


@pytest.fixture(scope="module", autouse=True)
def tts_cache(tmp_path_factory):
    """One speech cache for the module, so the pool is synthesised once."""
    path = tmp_path_factory.mktemp("tts-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(path))
        yield path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("m3")
    manifest = build(SymileM3Builder(M3Config(**SMALL)), out, progress=False)
    return out, manifest


def _samples(folder: Path, split: str) -> list[dict]:
    """Every sample of a split, members as bytes, in key order."""
    return list(split_samples(folder, split).values())


def test_babel_table_gives_the_class_counts_of_the_spec():
    counts = {name: len(load_table("babel", langs)) for name, langs in LANGUAGE_SETS.items()}
    assert counts == {"M3-2": 572, "M3-5": 295, "M3-10": 167}
    goldfish = next(c for c in load_table("babel", LANGUAGE_SETS["M3-10"]) if c.cls_id == 1)
    assert goldfish.key == "n01443537" and goldfish.names["en"] == "goldfish" and goldfish.names["zh-CN"] == "鲫鱼"


def test_number_words_exist_and_differ_across_all_ten_languages():
    words = {lang: digit_words(lang) for lang in LANGUAGE_SETS["M3-10"]}
    assert words["en"][3] == "three" and words["el"][3] == "τρία" and words["ja"][3] == "さん"
    every = [w for ws in words.values() for w in ws]
    assert len(set(every)) == len(every) == 100  # no word names two digits, nor is shared by two languages


def test_command_line_options_make_the_config():
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))

    def config(*options):
        args = parser.parse_args(["build", "symile-m3", "--out", "x", *options])
        (cfg,) = args.builder_cls.configs_from_args(args).values()
        return cfg

    cfg = config("--languages", "M3-10", "--size", "xs", "--test", "7", "--images", "imagenet:/data",
                 "--translations", "t.json", "--missing-p", "0.6")
    assert cfg.languages == LANGUAGE_SETS["M3-10"] and (cfg.train, cfg.val, cfg.test) == (500_000, 25_000, 7)
    assert cfg.names == "translations:t.json" and cfg.missing_p == 0.6
    assert config("--images", "imagenet:/data").names == "babel"
    assert config("--languages", "en, de").languages == ("en", "de")
    assert (config().train, config().names, config().languages) == (10_000, "digits", M3_5)


def test_draw_follows_the_disjoint_mode():
    n, w, k = 20_000, 5, 12
    d = draw(np.random.default_rng(0), n, w, np.full(w, 7), np.arange(1, k + 1), 0.0)
    assert np.array_equal(np.sort(d.word_language, axis=1), np.tile(np.arange(w), (n, 1)))  # each language once
    assert all(len(set(row)) == w for row in d.word_cls)  # w distinct classes
    target = d.word_language == d.language[:, None]
    assert np.array_equal(d.word_cls[target], d.cls)  # the word in L names y
    assert np.all(d.clip < 7) and np.all(d.image < np.arange(1, k + 1)[d.cls])
    for values, cats in ((d.language, w), (d.cls, k), (np.argmax(target, axis=1), w), (d.word_cls[~target], k)):
        assert stats.chisquare(np.bincount(values, minlength=cats)).pvalue > 1e-4


def test_shards_hold_the_papers_samples(built):
    out, manifest = built
    names = {c.cls_id: c.names for c in load_table("digits", M3_5)}
    languages = []
    classes = []
    for split in ("train", "val", "test"):
        for s in _samples(out, split):
            meta = json.loads(s["json"])
            words = s[TEXT].decode().split("_")
            assert sorted(w["language"] for w in meta["words"]) == sorted(M3_5)
            assert words == [w["word"] for w in meta["words"]]
            assert len({w["class_id"] for w in meta["words"]}) == len(M3_5)
            assert all(names[w["class_id"]][w["language"]] == w["word"] for w in meta["words"])
            assert meta["target"] == names[meta["class_id"]][meta["language"]] in words
            assert int(s["cls"]) == meta["class_id"]
            assert meta["audio"].startswith(f"espeak:{meta['language']}:")  # the clip is in the target's language
            assert not any(meta["missing"].values())
            if split == "train":
                languages.append(M3_5.index(meta["language"]))
                classes.append(meta["class_id"])
    assert stats.chisquare(np.bincount(languages, minlength=5)).pvalue > 1e-4
    assert stats.chisquare(np.bincount(classes, minlength=10)).pvalue > 1e-4
    assert manifest["info"]["classes_used"] == 10 and manifest["info"]["audio_pool"] == {lang: 10 for lang in M3_5}


def test_audio_is_16k_mono_speech_and_images_decode(built):
    out, _ = built
    for s in _samples(out, "val")[:200]:
        audio, rate = sf.read(io.BytesIO(s[AUDIO]))
        assert rate == 16_000 and audio.ndim == 1
        assert 0.2 < len(audio) / rate < 5.0 and np.abs(audio).max() > 0.05
        image = Image.open(io.BytesIO(s[IMAGE]))
        assert image.format == "JPEG" and image.size == (32, 32)


def test_builds_are_byte_identical_across_runs_and_worker_counts(built, tmp_path):
    out, manifest = built
    again = build(SymileM3Builder(M3Config(**SMALL)), tmp_path / "again", workers=2, progress=False)
    assert again == manifest
    assert folder_bytes(tmp_path / "again") == folder_bytes(out)
    other = build(SymileM3Builder(M3Config(**{**SMALL, "seed": 2, "train": 500, "val": 0, "test": 0})),
                  tmp_path / "other", progress=False)
    assert other["dataset_id"] != manifest["dataset_id"]
    assert other["shards"][0]["sha256"] != manifest["shards"][0]["sha256"]


def test_manifest_card_and_verify(built):
    out, manifest = built
    assert verify(out) == []
    assert manifest["splits"]["train"] == {"samples": 3000, "shards": 6, "rows": 3000, "failed": 0}
    assert manifest["fields"] == ["cls", "flac", "jpg", "json", "txt"]  # the WebDataset convention
    assert {"espeak-ng", "num2words", "pillow"} <= set(manifest["tools"])
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and manifest["dataset_id"] in card and "{{ " not in card
    assert "| train | 3,000 | 6 | 0 |" in card and "M3-5" in card
    assert "espeak-ng text-to-speech instead of Common Voice" in card


def test_missing_modalities_are_placeholders_in_train_and_val_only(tmp_path):
    cfg = M3Config(languages=LANGUAGE_SETS["M3-2"], train=1000, val=400, test=400, shard_size=400, missing_p=0.5)
    build(SymileM3Builder(cfg), tmp_path, progress=False)
    assert verify(tmp_path) == []
    for split in ("train", "val", "test"):
        samples = _samples(tmp_path, split)
        missing = np.array([[json.loads(s["json"])["missing"][m] for m in ("image", "audio", "text")] for s in samples])
        if split == "test":
            assert not missing.any()
            continue
        assert np.all(np.abs(missing.mean(axis=0) - 0.5) < 0.1)
        for s, (no_image, no_audio, no_text) in zip(samples, missing):
            assert (Image.open(io.BytesIO(s[IMAGE])).size == (1, 1)) == no_image
            audio, rate = sf.read(io.BytesIO(s[AUDIO]))
            assert rate == 16_000 and (not np.any(audio)) == no_audio
            assert (s[TEXT] == b"") == no_text
            assert s["cls"] and json.loads(s["json"])["target"]  # the label survives

    # Readers take placeholders like any sample.
    import webdataset as wds

    urls = sorted(str(p) for p in (tmp_path / "train").glob("*.tar"))
    decoded = [s for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pil") if s]
    assert len(decoded) == 1000 and all(isinstance(s["cls"], int) for s in decoded)


def test_hf_datasets_reads_the_folder_by_its_card(built, tmp_path):
    datasets = pytest.importorskip("datasets")
    out, _ = built
    ds = datasets.load_dataset(str(out), split="validation", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 500
    row = ds[0]
    assert row["json"]["target"] in row[TEXT].split("_") and row["cls"] == row["json"]["class_id"]
    assert row[IMAGE].size == (32, 32)
    assert sf.read(io.BytesIO(row[AUDIO]))[1] == 16_000


def test_sigkill_mid_build_then_resume_equals_uninterrupted(tmp_path, run_cli, tts_cache):
    args = ["--languages", "M3-2", "--train", "6000", "--val", "0", "--test", "0", "--shard-size", "200",
            "--seed", "7", "--no-progress"]
    env = {**os.environ, CACHE_ENV: str(tts_cache)}
    run_cli("polymodal.builders", "build", "symile-m3", "--out", tmp_path / "whole", *args, env=env)

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "polymodal.builders", "build", "symile-m3", "--out", str(killed), *args]
    sigkill_when(cmd, lambda: len(list(killed.glob("train/*.stats.json"))) >= 2, env=env)
    done = len(list(killed.glob("train/*.stats.json")))
    assert 2 <= done < 30 and not (killed / "manifest.json").exists()

    run_cli("polymodal.builders", "build", "symile-m3", "--out", killed, *args, env=env)
    assert folder_bytes(killed) == folder_bytes(tmp_path / "whole")
    assert verify(killed) == []
    assert load_manifest(killed)["splits"]["train"]["samples"] == 6000
