"""VGG-sound+ end to end on clips made here with ffmpeg: fetched through yt-dlp from a loopback server, or read
from a folder; failures by kind, --retry-failed, kill and resume, the hf captioner, the dask and ray engines."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from PIL import Image

from polymodal.builders.core.manifest import load_manifest, verify
from polymodal.builders.core.runner import build
from polymodal.builders.schema import AUDIO, IMAGE, TEXT
from polymodal.builders.vggsound_plus.builder import VggConfig, VggSoundPlusBuilder
from polymodal.builders.vggsound_plus.clips import extract
from polymodal.builders.vggsound_plus.fetch import FetchOptions, open_source
from polymodal.builders.vggsound_plus.index import class_index, parse_row
from tests.helpers import ROOT, LoopbackServer, split_samples

TONES = (330, 440, 550, 660, 770, 880)  # one per good clip, to tell them apart in the shards
EARLY_TONE = 220  # the first second of every clip: a window starting at 1 s must not hold it
LUMA_PER_SECOND = 20  # the video's brightness says which second a frame shows
LABELS = ("dog barking", "playing piano", "bird chirping, tweeting")


# -- fixtures: clips, a server, an index ------------------------------------------
def make_clip(path: Path, seconds: float = 11.0, video: bool = True, audio: bool = True, tone: int = 440) -> bytes:
    """A small mp4 made by ffmpeg, its bytes: 64x48 at 10 fps growing brighter with time (luma 20 per second),
    and a tone after a 220 Hz first second."""
    import ffmpeg

    streams = []
    if video:
        blank = ffmpeg.input(f"nullsrc=size=64x48:rate=10:duration={seconds}", f="lavfi")
        streams.append(blank.filter("geq", lum=f"{LUMA_PER_SECOND}*T", cb=128, cr=128))
    if audio:
        wave = rf"sin(2*PI*t*if(lt(t\,1)\,{EARLY_TONE}\,{tone}))"  # commas escaped for the filter graph
        streams.append(ffmpeg.input(f"aevalsrc={wave}:s=16000:d={seconds}", f="lavfi").audio)
    codecs = {"vcodec": "mpeg4", "g": 10} if video else {}
    codecs.update({"acodec": "aac", "b:a": "32k"} if audio else {})
    ffmpeg.output(*streams, str(path), **codecs).global_args("-v", "error").overwrite_output().run()
    return path.read_bytes()


class ClipServer(LoopbackServer):
    """Files from memory on 127.0.0.1, with byte ranges (ffmpeg seeks with them); shuts itself down after
    `lifetime` seconds should a test hang. `files` may be changed while it runs."""

    def __init__(self, files: dict[str, bytes], lifetime: float = 300):
        self.files = dict(files)
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._send(body=True)

            def do_HEAD(self):
                self._send(body=False)

            def _send(self, body):
                name = self.path.lstrip("/").split("?")[0]
                server.requests.append(name)
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                first, last = 0, len(data) - 1
                wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if wanted:
                    first, last = int(wanted[1]), min(int(wanted[2] or last), last)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(last - first + 1))
                self.end_headers()
                if body:
                    self.wfile.write(data[first:last + 1])

            def log_message(self, *args):
                pass

        super().__init__(Handler, lifetime)

    @property
    def template(self) -> str:
        return f"http://127.0.0.1:{self.port}/{{ytid}}.mp4"


def ytid(name: str) -> str:
    return f"{name:_<11}"[:11]


GOOD = [ytid(f"good{n}") for n in range(len(TONES))]
BROKEN = {ytid("missing"): "unavailable", ytid("truncated"): "decode-error", ytid("noaudio"): "no-audio",
          ytid("novideo"): "no-video", ytid("tooshort"): "too-short"}
BAD_LINES = {  # line -> what the row table must say
    3: "malformed YouTube id 'bad id'",
    6: "start 'one' is not a whole number of seconds",
    9: "unknown label 'dog barkin'",
}


def index_text() -> str:
    """14 test rows (6 good, 5 broken, 3 bad) and 1 train row; the window of most rows starts at 1 s."""
    good = iter(GOOD)
    broken = iter(BROKEN)
    lines = []
    for line in range(1, 15):
        if line in BAD_LINES:
            lines.append({3: "bad id,1,dog barking,test", 6: f"{GOOD[0]},one,dog barking,test",
                          9: f"{GOOD[0]},1,dog barkin,test"}[line])
        elif line % 3 == 1 and (name := next(broken, None)):
            lines.append(f"{name},1,{LABELS[line % 3]},test")
        else:
            name = next(good)
            lines.append(f'{name},{line % 2},"{LABELS[line % 3]}",test')
    lines.append(f"{GOOD[0]},0,dog barking,train")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """The good clips, the broken ones, and the fixed versions of the broken ones, by YouTube id."""
    folder = tmp_path_factory.mktemp("clips")
    good = {name: make_clip(folder / f"{name}.mp4", tone=tone) for name, tone in zip(GOOD, TONES)}
    whole = make_clip(folder / "whole.mp4", tone=990)
    broken = {
        ytid("truncated"): whole[: len(whole) // 3],  # the index (moov) is at the end, so it is gone
        ytid("noaudio"): make_clip(folder / "noaudio.mp4", audio=False),
        ytid("novideo"): make_clip(folder / "novideo.mp4", video=False),
        ytid("tooshort"): make_clip(folder / "tooshort.mp4", seconds=5),
    }
    fixed = {name: whole for name in BROKEN}
    return good, broken, fixed


@pytest.fixture(scope="module")
def server(media):
    good, broken, _ = media
    with ClipServer({f"{k}.mp4": v for k, v in {**good, **broken}.items()}) as running:
        yield running


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    path = tmp_path_factory.mktemp("index") / "vggsound.csv"
    path.write_text(index_text())
    return str(path)


def url_config(index, server, **extra):
    return VggConfig(index=index, source=f"url:{server.template}", frame_size=32, shard_size=4, backoff=0,
                     **extra)


@pytest.fixture(scope="module")
def broken_build(tmp_path_factory, index, server):
    """A build while 5 of the clips are broken; the copy keeps its files for later comparison."""
    out = tmp_path_factory.mktemp("broken")
    manifest = build(VggSoundPlusBuilder(url_config(index, server)), out, progress=False)
    return out, manifest, _files(out)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _samples(folder: Path, split: str) -> dict[str, dict[str, bytes]]:
    return split_samples(folder, split)


def _row_table(folder: Path, split: str) -> list[dict]:
    return [row for path in sorted((folder / split).glob("*.rows.parquet")) for row in pq.read_table(path).to_pylist()]


def _dominant_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(len(audio), 1 / 16_000)[spectrum.argmax()])


# -- tests ---------------------------------------------------------------------
def test_every_row_is_a_sample_or_a_failure_of_the_right_kind(broken_build):
    out, manifest, _ = broken_build
    table = _row_table(out, "test")
    assert [r["key"] for r in table] == [f"{k:09d}" for k in range(14)]  # every input row, in order
    by_line = {json.loads(r["info"])["line"]: r for r in table}
    for line, problem in BAD_LINES.items():
        assert by_line[line]["status"] == "failed" and by_line[line]["error_kind"] == "bad-index-row"
        assert by_line[line]["message"] == f"line {line}: {problem}"
    kinds = {json.loads(r["info"]).get("ytid"): r["error_kind"] for r in table if r["status"] == "failed"}
    assert {k: v for k, v in kinds.items() if k in BROKEN} == BROKEN
    assert "404" in next(r["message"] for r in table if json.loads(r["info"]).get("ytid") == ytid("missing"))
    ok = [r for r in table if r["status"] == "ok"]
    assert len(ok) == len(GOOD) and all(r["error_kind"] is None for r in ok)

    samples = _samples(out, "test")
    assert sorted(samples) == [r["key"] for r in ok]  # a failed row never enters a tar
    assert manifest["splits"]["test"] == {"samples": 6, "shards": 4, "rows": 14, "failed": 8}
    assert manifest["splits"]["train"] == {"samples": 1, "shards": 1, "rows": 1, "failed": 0}
    assert manifest["errors"] == {"bad-index-row": 3, **{kind: 1 for kind in BROKEN.values()}}
    stats = [json.loads(p.read_text()) for p in sorted((out / "test").glob("*.stats.json"))]
    assert sum(s["failed"] for s in stats) == 8 and sum(sum(s["errors"].values()) for s in stats) == 8
    assert verify(out) == []


def test_samples_hold_the_window_centre_frame_16k_audio_and_caption(broken_build):
    out, manifest, _ = broken_build
    for key, s in _samples(out, "test").items():
        meta = json.loads(s["json"])
        image = Image.open(io.BytesIO(s[IMAGE]))
        assert image.format == "JPEG" and min(image.size) == 32 and list(image.size) == meta["frame_size"]
        audio, rate = sf.read(io.BytesIO(s[AUDIO]))
        assert rate == 16_000 and audio.ndim == 1 and len(audio) == 160_000 and meta["audio_seconds"] == 10.0
        tone = TONES[GOOD.index(meta["ytid"])]
        assert abs(_dominant_hz(audio) - tone) < 2
        early = np.abs(np.fft.rfft(audio))[EARLY_TONE * 10]  # 0.1 Hz bins
        assert (early < 0.01 * np.abs(np.fft.rfft(audio)).max()) == (meta["start"] == 1)  # the window starts at start
        assert meta["frame_time"] == meta["start"] + 5
        luma = LUMA_PER_SECOND * meta["frame_time"]
        full_range = (luma - 16) * 255 / 219  # the clip's video is limited-range, the JPEG full-range
        assert abs(np.asarray(image.convert("L")).mean() - full_range) < 1.5  # 5 s in, to the frame (2.3 per 0.1 s)
        assert int(s["cls"]) == meta["class_id"] == class_index()[meta["label"]]
        caption = s[TEXT].decode()
        assert meta["captioner"] == "template" and any(w in caption for w in meta["label"].split(", "))
        assert meta["source"] == "url" and meta["url"].endswith(f"/{meta['ytid']}.mp4")
    card = (out / "README.md").read_text()
    assert manifest["dataset_id"] in card and "{{ " not in card
    assert "| test | 6 | 4 | 8 |" in card and "46.7% of the rows" in card
    assert "| `bad-index-row` | 3 |" in card and "| `no-audio` | 1 |" in card
    assert {"ffmpeg", "yt-dlp", "ffmpeg-python"} <= set(manifest["tools"])


def test_retry_failed_fetches_only_failed_rows_and_equals_a_clean_build(broken_build, media, server, index, tmp_path):
    out, _, before = broken_build
    _, _, fixed = media
    retried = tmp_path / "retried"
    for name, data in before.items():  # work on a copy: the module's build stays as it was
        (retried / name).parent.mkdir(parents=True, exist_ok=True)
        (retried / name).write_bytes(data)
    (retried / ".polymodal-build.json").write_bytes((out / ".polymodal-build.json").read_bytes())
    server.files.update({f"{k}.mp4": v for k, v in fixed.items()})
    server.requests.clear()

    build(VggSoundPlusBuilder(url_config(index, server, threads=2)), retried, progress=False, retry_failed=True)
    assert set(server.requests) == {f"{name}.mp4" for name in BROKEN}  # the good clips were not fetched again
    assert load_manifest(retried)["errors"] == {"bad-index-row": 3}

    clean = build(VggSoundPlusBuilder(url_config(index, server)), tmp_path / "clean", progress=False)
    assert clean["splits"]["test"]["samples"] == 11
    assert _files(retried) == _files(tmp_path / "clean")


def test_a_source_that_cannot_be_cut_while_downloading_is_fetched_whole_and_cut_after(
        monkeypatch, tmp_path, server):
    from polymodal.builders.vggsound_plus import fetch

    real = fetch._in_child

    def refuse_ranges(job, timeout):  # what yt-dlp says of a format only its own downloader can fetch
        if job["section"]:
            return {"error": "ERROR: This format cannot be partially downloaded. Aborting", "retry_after": 0}, ""
        return real(job, timeout)

    monkeypatch.setattr(fetch, "_in_child", refuse_ranges)
    row = parse_row([GOOD[1], "1", "dog barking", "test"], 1, "test")
    got = open_source(f"url:{server.template}").fetch(row, tmp_path, FetchOptions(backoff=0))
    assert got.window_start == 1.0 and Path(got.path).read_bytes() == server.files[f"{GOOD[1]}.mp4"]
    audio, _ = sf.read(io.BytesIO(extract(got.path, got.window_start, 32, got.url).flac))
    assert len(audio) == 160_000 and abs(_dominant_hz(audio) - TONES[1]) < 2
    assert np.abs(np.fft.rfft(audio))[EARLY_TONE * 10] < 0.01 * np.abs(np.fft.rfft(audio)).max()


def test_sigkill_mid_build_then_resume_equals_uninterrupted(tmp_path, media, run_cli):
    good, _, _ = media
    clips = tmp_path / "clips"
    clips.mkdir()
    names = [(ytid(f"k{n}"), n % 2) for n in range(10)]
    lines = []
    for n, (name, start) in enumerate(names):
        (clips / f"{name}_{start:06d}.mp4").write_bytes(good[GOOD[n % len(GOOD)]])
        lines.append(f'{name},{start},"{LABELS[n % 3]}",test')
    (tmp_path / "index.csv").write_text("\n".join(lines) + "\n")
    args = ["--index", tmp_path / "index.csv", "--media-dir", clips, "--frame-size", "32", "--shard-size", "1",
            "--threads", "1", "--no-progress"]
    run_cli("polymodal.builders", "build", "vggsound-plus", "--out", tmp_path / "whole", *args)

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "polymodal.builders", "build", "vggsound-plus", "--out", str(killed), *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    deadline = time.monotonic() + 60
    while len(list(killed.glob("test/*.stats.json"))) < 2:
        assert proc.poll() is None, "the build finished before it could be killed; make it larger"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(killed.glob("test/*.stats.json")))
    assert 2 <= done < 10 and not (killed / "manifest.json").exists()

    run_cli("polymodal.builders", "build", "vggsound-plus", "--out", killed, *args)
    assert _files(killed) == _files(tmp_path / "whole")
    assert verify(killed) == []
    assert load_manifest(killed)["splits"]["test"] == {"samples": 10, "shards": 10, "rows": 10, "failed": 0}


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory, media):
    """The good clips as a folder of cut clips, and an index of them."""
    good, _, _ = media
    folder = tmp_path_factory.mktemp("cut")
    lines = []
    for n, name in enumerate(GOOD):
        (folder / f"{name}_000000.mp4").write_bytes(good[name])
        lines.append(f'{name},0,"{LABELS[n % 3]}",{("train", "test")[n % 2]}')
    lines.append(f"{ytid('absent')},0,dog barking,test")
    index = folder / "index.csv"
    index.write_text("\n".join(lines) + "\n")
    return folder, str(index)


@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_cluster_engine_gives_the_local_bytes(tmp_path, clip_folder, engine):
    folder, index = clip_folder
    config = VggConfig(index=index, source=f"dir:{folder}", frame_size=32, shard_size=2)
    local = build(VggSoundPlusBuilder(config), tmp_path / "local", progress=False)
    # A shard's clear error comes back as itself, not as a dead worker: here, a tar that cannot be reused.
    garbage = tmp_path / engine / "test" / "vggsound-000000.tar"
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"not a tar")
    # One worker process: a real cluster of the engine's own, and the cheapest on a 2-core CI box (each worker
    # imports torch).
    with pytest.raises(SystemExit, match="^cannot read .*vggsound-000000.tar") as failed:
        build(VggSoundPlusBuilder(config), tmp_path / engine, workers=1, engine=engine, progress=False)
    assert "Traceback" not in str(failed.value)  # the shard's own message, not a worker's report
    garbage.unlink()
    remote = build(VggSoundPlusBuilder(config), tmp_path / engine, workers=1, engine=engine, progress=False)
    assert remote == local and _files(tmp_path / engine) == _files(tmp_path / "local")
    assert local["errors"] == {"unavailable": 1}
    missing = next(r for r in _row_table(tmp_path / "local", "test") if r["status"] == "failed")
    assert missing["error_kind"] == "unavailable" and f"{ytid('absent')}_000000.mp4" in missing["message"]


def _tiny_captioning_model(path: Path, word: str) -> None:
    """A randomly initialised BLIP small enough to build in a second, biased to say `word` at every step."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", word, "of"]) + "\n")
    tokenizer = BertTokenizer(str(path / "vocab.txt"))  # positional: transformers 4 calls it vocab_file, 5 vocab
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    small = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    config = BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=40, bos_token_id=tokenizer.bos_token_id,
                         pad_token_id=tokenizer.pad_token_id, sep_token_id=tokenizer.sep_token_id, **small),
        vision_config=dict(image_size=32, patch_size=8, **small),
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config)
    with torch.no_grad():
        bias = model.text_decoder.cls.predictions.bias
        bias.fill_(-100.0)
        bias[tokenizer.convert_tokens_to_ids(word)] = 100.0
    model.save_pretrained(path)
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    processor.save_pretrained(path)


def test_hf_captioner_writes_captions_with_a_local_model(tmp_path, clip_folder):
    folder, index = clip_folder
    _tiny_captioning_model(tmp_path / "blip", "woof")
    captioner = f"hf:{tmp_path / 'blip'}"
    config = VggConfig(index=index, source=f"dir:{folder}", frame_size=32, captioner=captioner, caption_batch=2)
    manifest = build(VggSoundPlusBuilder(config), tmp_path / "out", progress=False)
    samples = [*_samples(tmp_path / "out", "train").values(), *_samples(tmp_path / "out", "test").values()]
    assert len(samples) == len(GOOD)
    for s in samples:
        words = s[TEXT].decode().split()
        assert words and set(words) == {"woof"}
        assert json.loads(s["json"])["captioner"] == captioner
    assert manifest["config"]["captioner"] == captioner and "transformers" in manifest["tools"]
    assert captioner in (tmp_path / "out" / "README.md").read_text()


def test_hf_datasets_reads_the_folder_by_its_card(tmp_path, clip_folder):
    datasets = pytest.importorskip("datasets")
    folder, index = clip_folder
    build(VggSoundPlusBuilder(VggConfig(index=index, source=f"dir:{folder}", frame_size=32)), tmp_path / "out",
          progress=False)
    ds = datasets.load_dataset(str(tmp_path / "out"), split="test", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 3
    row = ds[0]
    assert row["cls"] == row["json"]["class_id"] and row["json"]["source"] == "dir"
    assert min(row[IMAGE].size) == 32 and sf.read(io.BytesIO(row[AUDIO]))[1] == 16_000
