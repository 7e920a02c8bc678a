"""VGG-sound+ without media: the index and its filters, the class list, failure kinds, template captions, options."""

import argparse

import pytest

from polymodal.builders.cli import add_commands
from polymodal.builders.core.media import SourceError
from polymodal.builders.vggsound_plus.builder import VggConfig, VggSoundPlusBuilder
from polymodal.builders.vggsound_plus.captioners import (
    TEMPLATES,
    Clip,
    TemplateCaptioner,
    open_captioner,
)
from polymodal.builders.vggsound_plus.failures import (
    KINDS,
    ClipFailure,
    download_failure,
    tidy_ffmpeg_message,
)
from polymodal.builders.vggsound_plus.fetch import open_source
from polymodal.builders.vggsound_plus.index import (
    class_index,
    read_index,
    select,
    synonyms,
)

FULL_FORM = """\
abcdefghijk,30,dog barking,train
ABCDEFGHIJK,1,"bird chirping, tweeting",test
bad!id,30,dog barking,test
lmnopqrstuv,12s,dog barking,test

-_-_-_-_-_-,0,not a class,test
lmnopqrstuv,5,dog barking,validation
only,two
zyxwvutsrqp,7,playing piano,test
"""


def _index(tmp_path, text, name="index.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_bundled_class_list_has_309_classes_and_credits_its_source():
    classes = class_index()
    assert len(classes) == 309 and sorted(classes.values()) == list(range(309))
    assert classes["ambulance siren"] == 0 and classes["air horn"] == 308
    assert classes["bird chirping, tweeting"] == 2
    from importlib import resources

    head = resources.files("polymodal.builders.vggsound_plus").joinpath("resources", "vggsound_classes.csv").read_text().splitlines()[:4]
    assert any("CC BY 4.0" in line for line in head) and any("VGGSounder" in line for line in head)


def test_full_form_rows_and_bad_rows_carry_their_line_numbers(tmp_path):
    rows = read_index(_index(tmp_path, FULL_FORM), "test")
    assert [r.line for r in rows] == [1, 2, 3, 4, 6, 7, 8, 9]  # the blank line 5 is no row
    good = [r for r in rows if r.ok]
    assert [(r.ytid, r.start, r.label, r.split, r.cls) for r in good] == [
        ("abcdefghijk", 30, "dog barking", "train", class_index()["dog barking"]),
        ("ABCDEFGHIJK", 1, "bird chirping, tweeting", "test", 2),
        ("zyxwvutsrqp", 7, "playing piano", "test", class_index()["playing piano"]),
    ]
    problems = {r.line: r.problem for r in rows if not r.ok}
    assert problems == {
        3: "malformed YouTube id 'bad!id'",
        4: "start '12s' is not a whole number of seconds",
        6: "unknown label 'not a class'",
        7: "unknown split 'validation'",
        8: "expected `ytid,start,label,split` or `<ytid>_<start:06d>.mp4,<label>`",
    }
    assert good[1].clip_name == "ABCDEFGHIJK_000001"


def test_no_line_of_an_index_stops_the_others(tmp_path):
    """A BOM, a superscript digit, invalid UTF-8, a 200 kB field, a NUL and a repeated row: each is one bad
    row with its line number, or (the BOM) no problem at all; every good row is still read."""
    path = tmp_path / "index.csv"
    path.write_bytes(b"\xef\xbb\xbfabcdefghijk,30,dog barking,train\r\n"
                     + "ABCDEFGHIJK,\u00b2,dog barking,test\n".encode()
                     + b"lmnopqrstuv,5,dog \xff barking,test\n"
                     + b"zyxwvutsrqp,7," + b"x" * 200_000 + b",test\n"
                     + b"lmnopqrstuv,\x005,dog barking,test\n"
                     + b"abcdefghijk,30,dog barking,train\n"
                     + b"zyxwvutsrqp,7,playing piano,test\n")
    rows = read_index(str(path), "test")
    assert [r.line for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert [(r.line, r.ytid) for r in rows if r.ok] == [(1, "abcdefghijk"), (7, "zyxwvutsrqp")]
    problems = {r.line: r.problem for r in rows if not r.ok}
    assert problems[2] == "start '\u00b2' is not a whole number of seconds"
    assert problems[3].startswith("not UTF-8 text")
    assert problems[4].startswith("a line of 200,") and len(rows[3].text) < 300  # the record stays small
    assert 5 in problems
    assert problems[6] == "duplicate of line 1"
    assert {r.line: r.failure for r in rows if not r.ok} == {2: "bad-index-row", 3: "bad-index-row", 4: "bad-index-row",
                                                             5: "bad-index-row", 6: "duplicate-row"}
    # The duplicate is recorded once and built once: select keeps the first copy alone as a good row.
    assert [r.line for r in select(str(path), "test", ("train",), (), 0)["train"] if r.ok] == [1]


def test_clip_form_rows_take_the_given_split(tmp_path):
    text = ('glLQrEijrKg_000300.mp4,playing hammond organ\n'
            '0_8-g2rof7E_000049.mp4,"heart sounds, heartbeat"\n'
            'x_1.mp4,orchestra\n')
    rows = read_index(_index(tmp_path, text), "train")
    assert [(r.ytid, r.start, r.split) for r in rows[:2]] == [("glLQrEijrKg", 300, "train"), ("0_8-g2rof7E", 49, "train")]
    assert rows[1].label == "heart sounds, heartbeat"
    assert rows[2].problem == "malformed YouTube id 'x'"


def test_filters_keep_file_order_and_never_drop_unreadable_rows(tmp_path):
    path = _index(tmp_path, FULL_FORM)
    both = select(path, "test", ("train", "test"), (), 0)
    assert [r.line for r in both["train"]] == [1]
    assert [r.line for r in both["test"]] == [2, 3, 4, 6, 7, 8, 9]  # rows with no readable split go to index_split
    piano = select(path, "test", ("test",), ("playing piano",), 0)["test"]
    # Unknown label or split: the class cannot be told, so the row stays and is reported.
    assert [r.line for r in piano] == [6, 7, 8, 9]
    assert [r.line for r in select(path, "test", ("test",), (), 2)["test"]] == [2, 3]
    with pytest.raises(SourceError, match="does not exist"):
        read_index(str(tmp_path / "missing.csv"), "test")


def test_downloader_messages_map_to_kinds():
    cases = {
        "ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video": "private",
        "ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader": "unavailable",
        "ERROR: [youtube] abc: Video unavailable. The uploader has not made this video available in your country":
            "geo-blocked",
        "ERROR: [youtube] abc: Sign in to confirm you’re not a bot. Use --cookies-from-browser": "bot-check",
        "ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.":
            "login-required",
        "ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found (caused by <HTTPError 404>)":
            "unavailable",
        "ERROR: Unable to download webpage: HTTP Error 429: Too Many Requests": "rate-limited",
        "ERROR: [generic] x: Unable to download webpage: HTTP Error 403: Forbidden": "forbidden",
        "ERROR: ffmpeg exited with code 1\nhttp://m/x.mp4: Server returned 403 Forbidden (access denied)": "forbidden",
        "ERROR: Unsupported URL: http://m/x.mp4\nhttp://m/x.mp4: HTTP 200, a page asking to confirm the client is "
        "not a bot": "bot-check",
        "ERROR: Did not get any data blocks": "empty",
        "ERROR: [download] Got error: 27738 bytes read, 27739 more expected. Giving up after 3 retries": "partial",
        "ERROR: ffmpeg exited with code 1\n[http] Stream ends prematurely at 27738, should be 55477": "partial",
        "ERROR: Unable to download webpage: <urlopen error [Errno 111] Connection refused>": "network",
        "ERROR: unable to download video data: HTTP Error 503: Service Unavailable": "network",
        "ERROR: ffmpeg exited with code 1": "decode-error",
        "ERROR: something nobody has seen before": "download-error",
    }
    for message, kind in cases.items():
        failure = download_failure(message)
        assert failure.kind == kind, message
        assert not failure.message.startswith("ERROR")
    assert set(cases.values()) <= set(KINDS)
    with pytest.raises(ValueError, match="unknown failure kind"):
        ClipFailure("gremlins", "no such kind")


def test_ffmpeg_messages_lose_what_changes_between_runs():
    stderr = "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55948a6e9bc0] moov atom not found\n/tmp/vggsound-x1/source.mp4: Invalid data\n"
    assert tidy_ffmpeg_message(stderr, "/tmp/vggsound-x1/source.mp4", "http://m/a.mp4") == (
        "[mov,mp4,m4a,3gp,3g2,mj2] moov atom not found\nhttp://m/a.mp4: Invalid data"
    )


def test_template_captions_are_fixed_by_seed_and_clip():
    assert 75 <= len(TEMPLATES) <= 85 and "a photo and sound of {}." in TEMPLATES
    assert all(t.count("{}") == 1 and " a image" not in t and not t.startswith("a image") for t in TEMPLATES)
    clips = [Clip(f"clip{n:07d}_000000", "bird chirping, tweeting", b"") for n in range(200)]
    captioner = TemplateCaptioner("", seed=0, batch=1)
    first = captioner.caption(clips)
    assert first == captioner.caption(clips) == [captioner.caption([c])[0] for c in clips]  # per clip, any batch
    assert captioner.caption(clips[::-1]) == first[::-1]
    assert all(any(c == t.format(w) for t in TEMPLATES for w in ("bird chirping", "tweeting")) for c in first)
    assert {"bird chirping", "tweeting"} <= {w for c in first for w in synonyms("bird chirping, tweeting") if w in c}
    assert len(set(first)) > 50
    other = TemplateCaptioner("", seed=1, batch=1).caption(clips)
    assert sum(a != b for a, b in zip(first, other)) > 150
    assert open_captioner("hf:some/model", 0, 4).name == "hf:some/model"
    with pytest.raises(SourceError, match="unknown captioner"):
        open_captioner("gpt:x", 0, 1)


def test_sources_and_url_templates():
    row = read_index_row("abcdefghijk,30,dog barking,test")
    assert open_source("youtube").url(row) == "https://www.youtube.com/watch?v=abcdefghijk"
    assert open_source("url:http://m/{ytid}.mp4").url(row) == "http://m/abcdefghijk.mp4"
    assert open_source("clip-url:http://m/{ytid}_{start:06d}.mp4").url(row) == "http://m/abcdefghijk_000030.mp4"
    assert open_source("url:http://m/{ytid}?t={start}-{end}").url(row) == "http://m/abcdefghijk?t=30-40"
    with pytest.raises(SourceError, match="may use only"):
        open_source("url:http://m/{id}.mp4")
    with pytest.raises(SourceError, match="unknown media source"):
        open_source("ftp:x")


def read_index_row(text):
    from polymodal.builders.vggsound_plus.index import parse_row

    return parse_row(text.split(","), 1, "test")


def _config(*options):
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["build", "vggsound-plus", "--out", "x", *options])
    (config,) = args.builder_cls.configs_from_args(args).values()
    return config


def test_command_line_makes_the_config_and_fetch_options_do_not_change_the_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "i.csv").write_text("abcdefghijk,30,dog barking,test\n")  # the index's content enters the id
    c = _config("--index", "i.csv", "--splits", "test", "--classes", "dog barking", "playing piano",
                "--limit", "5", "--source", "url:http://m/{ytid}.mp4", "--frame-size", "0", "--captioner", "hf:m")
    assert (c.splits, c.classes, c.limit, c.source, c.frame_size, c.captioner) == (
        ("test",), ("dog barking", "playing piano"), 5, "url:http://m/{ytid}.mp4", 0, "hf:m")
    assert _config("--index", "i.csv", "--media-dir", "clips").source == "dir:clips"
    assert _config("--index", "i.csv", "--source", "clip-url:u/{ytid}").source == "clip-url:u/{ytid}"
    assert _config("--index", "i.csv").source == "youtube"

    plain = VggSoundPlusBuilder(_config("--index", "i.csv"))
    tuned = VggSoundPlusBuilder(_config("--index", "i.csv", "--cookies", "c.txt", "--proxy", "http://u:secret@p:1",
                                        "--rate-limit", "1M", "--sleep", "2", "--retries", "9", "--threads", "8"))
    assert plain.dataset_id() == tuned.dataset_id()
    assert "proxy" not in tuned.config_dict() and "secret" not in str(tuned.config_dict())
    assert tuned.run_config()["proxy"] == "http://u:secret@p:1"  # the workers still get it
    assert VggConfig(**tuned.run_config()) == tuned.config
    runtime = {f.name for f in VggConfig.__dataclass_fields__.values() if f.metadata.get("runtime")}
    assert runtime == {"cookies", "proxy", "rate_limit", "sleep", "retries", "backoff", "socket_timeout",
                       "clip_timeout", "threads", "caption_batch"}
    assert _config("--index", "i.csv", "--clip-timeout", "2.5").fetch_options().clip_timeout == 2.5
    with pytest.raises(ValueError, match="unknown VGGSound classes"):
        VggConfig(index="i.csv", classes=("dog barkin",))
    with pytest.raises(SystemExit):  # --media-dir is --source dir:DIR: one or the other
        _config("--index", "i.csv", "--source", "url:u/{ytid}", "--media-dir", "clips")
