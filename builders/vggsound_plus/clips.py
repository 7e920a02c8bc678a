"""One ffmpeg process per clip: the centre frame of the 10 s window as JPEG, and its audio as 16 kHz mono FLAC.

The command, run through ffmpeg-python as an argument list, opens the file
twice: once seeked to the window's centre for the frame, so that only the
frames from the keyframe before it are decoded, and once seeked to the
window's start for the audio. It is its own validation: a missing stream
stops it before any decoding, and what it wrote shows whether the window was
all there.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

from polymodal.builders.core.disk import NO_SPACE, DiskFull
from polymodal.builders.schema import CLIP_SECONDS, SAMPLE_RATE
from polymodal.builders.vggsound_plus.failures import ClipFailure, tidy_ffmpeg_message

MIN_AUDIO_SECONDS = 9.5  # real clips end up to ~20 ms early; shorter than this is a clip cut short
JPEG_QSCALE = 2  # ffmpeg's JPEG quality scale, 2 (best) to 31
VIDEO_INPUT, AUDIO_INPUT = 0, 1

# ffmpeg refuses to map a stream the file lacks; its message names the input, which says which stream.
MISSING_STREAMS = (
    (f"Stream map '{VIDEO_INPUT}:v:0' matches no streams", "no-video"),
    (f"Stream map '{AUDIO_INPUT}:a:0' matches no streams", "no-audio"),
)


@dataclass(frozen=True)
class Extracted:
    jpeg: bytes
    flac: bytes
    frame_size: tuple[int, int]  # (width, height)
    audio_seconds: float


def scale_filter(shorter_side: int) -> str:
    """Resize so that the shorter side is `shorter_side` pixels, the other even and in proportion."""
    n = shorter_side
    return f"scale=w='if(lt(iw,ih),{n},-2)':h='if(lt(iw,ih),-2,{n})'"


def extraction(path: str, window_start: float, frame_size: int, jpeg_path: str, flac_path: str):
    """The ffmpeg command as an ffmpeg-python graph; `frame_size` 0 keeps the source's size."""
    import ffmpeg

    video = ffmpeg.input(path, ss=window_start + CLIP_SECONDS / 2)["v:0"]
    audio = ffmpeg.input(path, ss=window_start, t=CLIP_SECONDS)["a:0"]
    resize = {"vf": scale_filter(frame_size)} if frame_size else {}
    audio_filter = f"aformat=sample_rates={SAMPLE_RATE}:channel_layouts=mono,atrim=end_sample={SAMPLE_RATE * CLIP_SECONDS}"
    return ffmpeg.merge_outputs(
        ffmpeg.output(video, jpeg_path, f="image2", vframes=1, pix_fmt="yuvj420p", **{"q:v": JPEG_QSCALE}, **resize),
        ffmpeg.output(audio, flac_path, af=audio_filter, acodec="flac"),
    ).global_args("-nostdin", "-v", "error").overwrite_output()


def extract(path: str, window_start: float, frame_size: int, name: str) -> Extracted:
    """Frame and audio of the window [window_start, window_start + 10 s) of the media at `path`.

    `name` stands for `path` in failure messages, which must not hold temporary paths.
    """
    import ffmpeg

    with tempfile.TemporaryDirectory(prefix="vggsound-") as tmp:
        jpeg_path, flac_path = Path(tmp, "frame.jpg"), Path(tmp, "audio.flac")
        try:
            _, stderr = extraction(path, window_start, frame_size, str(jpeg_path), str(flac_path)).run(
                capture_stdout=True, capture_stderr=True
            )
        except ffmpeg.Error as err:
            message = tidy_ffmpeg_message(err.stderr.decode(errors="replace"), path, name)
            kind = next((kind for text, kind in MISSING_STREAMS if text in message), "decode-error")
            raise ClipFailure(kind, message) from None
        errors = tidy_ffmpeg_message(stderr.decode(errors="replace"), path, name)
        if NO_SPACE in errors:  # ffmpeg may exit 0 with its outputs cut: nothing it wrote can be kept
            raise DiskFull(tempfile.gettempdir(), "TMPDIR, where clips are extracted")
        if errors:  # at `-v error` all ffmpeg prints is an error, whatever its exit code: damage in the window
            raise ClipFailure("decode-error", errors)
        if not (jpeg_path.is_file() and jpeg_path.stat().st_size > 0):
            raise ClipFailure("too-short", f"no video frame at {CLIP_SECONDS / 2:g} s, the centre of the window")
        flac = flac_path.read_bytes() if flac_path.is_file() else b""
        frames = decoded_frames(flac) if flac else 0
        if frames < MIN_AUDIO_SECONDS * SAMPLE_RATE:
            raise ClipFailure("too-short", f"{frames / SAMPLE_RATE:.2f} s of audio in the window, "
                                           f"fewer than {MIN_AUDIO_SECONDS:g} s")
        jpeg = jpeg_path.read_bytes()
        return Extracted(jpeg, flac, decoded_size(jpeg), round(frames / SAMPLE_RATE, 4))


def decoded_size(jpeg: bytes) -> tuple[int, int]:
    """The frame's (width, height), once every pixel of it decodes: a header alone proves nothing."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            image.load()
            return image.size
    except (OSError, SyntaxError, ValueError) as err:
        raise ClipFailure("decode-error", f"the extracted frame does not decode: {err}") from None


def decoded_frames(flac: bytes) -> int:
    """The audio's sample count, once all of it decodes to the length its header gives."""
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(flac)) as audio:
            expected, got = audio.frames, len(audio.read(dtype="int16"))
    except RuntimeError as err:  # soundfile.LibsndfileError: no header, lost sync, a cut stream
        raise ClipFailure("decode-error", f"the extracted audio does not decode: {err}") from None
    if got != expected:
        raise ClipFailure("decode-error", f"the extracted audio decodes to {got} samples, its header says {expected}")
    return got
