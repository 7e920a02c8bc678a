"""How close VGG-sound+'s per-clip processing comes to a bare ffmpeg command doing the same extraction.

Anchor (the floor): one ffmpeg process, started with subprocess from an
argument list typed out below, writing the centre frame of the 10 s window as
JPEG and the window's audio as 16 kHz mono FLAC. Measured: the builder's
`extract` on the same clip - the same one ffmpeg process, built through
ffmpeg-python, plus its temporary folder and the checks of what ffmpeg wrote
(frame size, audio length). The script checks that both write the same bytes.
Each is timed per clip, interleaved, best of --repeats.

Also: clips/s per core, with --workers processes each extracting one clip
at a time (ffmpeg may use more than one thread per clip).

    python benchmarks/perf/vggsound_process.py [--clips DIR] [--workers N]

Without --clips it makes 8 clips of 11 s (640x360, 25 fps, 44.1 kHz stereo)
with ffmpeg. Goal: ratio <= 1.3.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from polymodal.builders.vggsound_plus.clips import CLIP_SECONDS, extract

FRAME_SIZE = 256


def bare_command(path: str, jpeg: str, flac: str) -> list[str]:
    """The extraction the builder does, written out by hand: window [0, 10 s) of a cut clip."""
    scale = f"scale=w='if(lt(iw,ih),{FRAME_SIZE},-2)':h='if(lt(iw,ih),-2,{FRAME_SIZE})'"
    audio = "aformat=sample_rates=16000:channel_layouts=mono,atrim=end_sample=160000"
    return ["ffmpeg", "-ss", str(CLIP_SECONDS / 2), "-i", path, "-ss", "0.0", "-t", str(CLIP_SECONDS), "-i", path,
            "-map", "0:v:0", "-f", "image2", "-pix_fmt", "yuvj420p", "-q:v", "2", "-vf", scale, "-vframes", "1", jpeg,
            "-map", "1:a:0", "-acodec", "flac", "-af", audio, flac,
            "-nostdin", "-v", "error", "-y"]


def make_clips(folder: Path, count: int) -> list[Path]:
    import ffmpeg

    paths = []
    for n in range(count):
        path = folder / f"synthetic{n:02d}.mp4"
        video = ffmpeg.input("testsrc2=size=640x360:rate=25:duration=11", f="lavfi").video
        audio = ffmpeg.input(f"sine=frequency={300 + 50 * n}:sample_rate=44100:duration=11", f="lavfi").audio
        ffmpeg.output(video, audio, str(path), vcodec="mpeg4", acodec="aac", ac=2, **{"q:v": 5}) \
            .global_args("-v", "error").overwrite_output().run()
        paths.append(path)
    return paths


def builder_path(clip: Path, _: Path) -> None:
    extract(str(clip), 0.0, FRAME_SIZE, clip.name)


def floor(clip: Path, folder: Path) -> None:
    subprocess.run(bare_command(str(clip), str(folder / "f.jpg"), str(folder / "a.flac")), check=True)


def same_bytes(clip: Path, folder: Path) -> bool:
    floor(clip, folder)
    ours = extract(str(clip), 0.0, FRAME_SIZE, clip.name)
    return ours.jpeg == (folder / "f.jpg").read_bytes() and ours.flac == (folder / "a.flac").read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, help="a folder of cut clips (*.mp4); default: 8 synthetic ones")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per clip; the best counts (default %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="processes for the clips/s per core figure (default: all cores, %(default)s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = sorted(args.clips.glob("*.mp4")) if args.clips else make_clips(folder, 8)
        if not clips:
            raise SystemExit(f"no *.mp4 in {args.clips}")
        if not all(same_bytes(clip, folder) for clip in clips):
            raise SystemExit("the bare command does not write the builder's bytes; the comparison would be unfair")

        best = {"builder": [float("inf")] * len(clips), "floor": [float("inf")] * len(clips)}
        for _ in range(args.repeats):
            for n, clip in enumerate(clips):
                for name, fn in (("builder", builder_path), ("floor", floor)):
                    began = time.perf_counter()
                    fn(clip, folder)
                    best[name][n] = min(best[name][n], time.perf_counter() - began)

        rounds = max(1, 4 * args.workers // len(clips))  # enough clips to keep every worker busy
        work = [str(clip) for clip in clips] * rounds
        with ProcessPoolExecutor(args.workers) as pool:
            list(pool.map(_extract, work[: args.workers]))  # start the workers before the clock
            began = time.perf_counter()
            list(pool.map(_extract, work))
            pooled = len(work) / (time.perf_counter() - began)

    builder, bare = sum(best["builder"]) / len(clips), sum(best["floor"]) / len(clips)
    print(f"clips                   {len(clips)} ({args.clips or 'synthetic 640x360'})")
    print(f"builder extract         {builder * 1000:.0f} ms per clip")
    print(f"bare ffmpeg (floor)     {bare * 1000:.0f} ms per clip")
    print(f"ratio builder/floor     {builder / bare:.2f}  (goal <= 1.3)")
    print(f"one process             {1 / builder:.1f} clips/s")
    print(f"{args.workers} processes             {pooled:.1f} clips/s, {pooled / args.workers:.1f} clips/s per core")


def _extract(path: str) -> None:
    extract(path, 0.0, FRAME_SIZE, Path(path).name)


if __name__ == "__main__":
    main()
