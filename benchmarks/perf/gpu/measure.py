"""GPU throughput and model FLOP utilisation of polymodal's paper-scale pieces, in one JSON file (run by gpu.sh).

Sections:
  train_heads  bf16 (autocast) training steps of Symile over the Symile-M3 paper heads (m3-paper: Linear ->
               LayerNorm over CLIP ViT-L/14's 1024 and Whisper-large-v3's 1280 features, and XLM-R-large's
               token embeddings plus its first layer, fine-tuned), the harness's own step (batch_loss, AdamW),
               at each --d-models width; text rows are --text-len real tokens.
  featurize    forward throughput of randomly initialised models of the paper encoders' exact configs (ENCODERS:
               written out, since from_pretrained configs cannot be downloaded; transformers' own defaults are
               the base sizes): float32, as PaperFeaturizer runs them today, and bf16 autocast.
  symile_loss  forward + backward of polymodal's Symile loss at N = --loss-n, O(N^2) and O(N) negatives.

FLOPs are counted, not estimated: torch.utils.flop_counter.FlopCounterMode counts every matrix product
(mm, addmm, bmm, convolution, attention) of one pass, backward included, run first as the warm-up, with
attention on the math backend so that every attention product is a counted matmul on any device. The
formulas beside the counts (FORMULAS) say what those products are; tests check that the two agree. MFU =
counted FLOPs per second / the device's dense bf16 peak (PEAK_BF16, by device name; --peak-tflops for
another). It is given for bf16 work only; float32 work (the featurizer today, and the Symile loss, which
turns autocast off) gets its achieved FLOP/s and no MFU, with the reason.

    python benchmarks/perf/gpu/measure.py --out gpu.json     # on a GPU: the paper sizes, a few minutes
    python benchmarks/perf/gpu/measure.py --smoke --out x.json   # tiny sizes, seconds on a CPU
    python benchmarks/perf/gpu/measure.py --flops            # counted FLOPs of the paper configs, on the meta
                                                             # device: no compute, no GPU (for docs/scale.md)

The results are written after every section, with "complete": false until the last.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import platform
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

#: Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, FLOP/s; the first name that the device's
#: name contains wins, so the PCIe/NVL variants come before their SXM names.
PEAK_BF16 = (
    ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H200 NVL", 835e12),
    ("H100", 989e12), ("H200", 989e12),  # SXM
    ("A100", 312e12),
)


def peak_bf16(device_name: str, override_tflops: float | None = None) -> tuple[float | None, str]:
    """(peak dense bf16 FLOP/s or None, where it comes from or why there is none)."""
    if override_tflops is not None:
        return override_tflops * 1e12, "--peak-tflops"
    for name, flops in PEAK_BF16:
        if name in device_name:
            return flops, f"PEAK_BF16[{name!r}]"
    return None, f"no dense bf16 peak known for device {device_name!r}: pass --peak-tflops"


def mfu(flops_per_s: float, peak: float | None, peak_source: str, bf16: bool) -> dict:
    if not bf16:
        return {"mfu": None, "mfu_reason": "float32 work: the peak table holds dense bf16 peaks"}
    if peak is None:
        return {"mfu": None, "mfu_reason": peak_source}
    return {"mfu": flops_per_s / peak, "mfu_reason": None}


# ---------------------------------------------------------------- the paper encoders' configs, written out

@dataclasses.dataclass(frozen=True)
class Encoder:
    """A featurize encoder: how to build it from its config class, and one batch of its inputs."""

    hf_name: str  # the checkpoint whose config this is
    config: Callable[[dict], object]  # keyword overrides -> the transformers config
    model: Callable[[object], torch.nn.Module]
    inputs: Callable[[object, int, int, torch.device], dict]  # (config, batch, text_len, device) -> model kwargs
    tokens: Callable[[object, int], int]  # (config, text_len) -> sequence length per sample
    exact: dict  # the checkpoint's hyper-parameters
    smoke: dict  # a tiny model of the same family


def _clip_config(overrides: dict):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(**overrides)


def _whisper_config(overrides: dict):
    from transformers import WhisperConfig

    return WhisperConfig(**overrides)


def _xlmr_config(overrides: dict):
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(**overrides)


def _whisper_encoder(config) -> torch.nn.Module:
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    return WhisperEncoder(config)  # the encoder alone, as PaperFeaturizer's WhisperModel(...).get_encoder()


def _clip_model(config) -> torch.nn.Module:
    from transformers import CLIPVisionModel

    return CLIPVisionModel(config)


def _xlmr_model(config) -> torch.nn.Module:
    from transformers import XLMRobertaModel

    return XLMRobertaModel(config, add_pooling_layer=False)


def _text_ids(config, batch: int, length: int, device) -> torch.Tensor:
    """Real tokens only (ids above the specials 0-3), so no row is cropped or masked."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    return torch.randint(4, config.vocab_size, (batch, length), generator=generator).to(device)


ENCODERS = {
    "clip-vit-large-patch14": Encoder(
        "openai/clip-vit-large-patch14", _clip_config, _clip_model,
        lambda c, b, _, device: {"pixel_values": torch.randn(b, 3, c.image_size, c.image_size, device=device)},
        lambda c, _: (c.image_size // c.patch_size) ** 2 + 1,  # patches + CLS
        exact={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
               "image_size": 224, "patch_size": 14, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
               "projection_dim": 768},
        smoke={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
               "image_size": 32, "patch_size": 8}),
    "whisper-large-v3-encoder": Encoder(
        "openai/whisper-large-v3", _whisper_config, _whisper_encoder,
        # WhisperFeatureExtractor pads every clip to 30 s: 3000 frames, 1500 positions after the stride-2 conv.
        lambda c, b, _, device: {"input_features": torch.randn(b, c.num_mel_bins, 2 * c.max_source_positions,
                                                               device=device)},
        lambda c, _: c.max_source_positions,
        exact={"d_model": 1280, "encoder_layers": 32, "encoder_attention_heads": 20, "encoder_ffn_dim": 5120,
               "decoder_layers": 32, "decoder_attention_heads": 20, "decoder_ffn_dim": 5120, "num_mel_bins": 128,
               "max_source_positions": 1500, "max_target_positions": 448, "vocab_size": 51866,
               "activation_function": "gelu"},
        smoke={"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
               "decoder_layers": 1, "decoder_attention_heads": 2, "decoder_ffn_dim": 64, "num_mel_bins": 16,
               "max_source_positions": 50, "vocab_size": 100}),
    "xlm-roberta-large": Encoder(
        "FacebookAI/xlm-roberta-large", _xlmr_config, _xlmr_model,
        lambda c, b, length, device: {"input_ids": _text_ids(c, b, length, device)},
        lambda c, length: length,
        exact={"vocab_size": 250002, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
               "intermediate_size": 4096, "max_position_embeddings": 514, "type_vocab_size": 1,
               "layer_norm_eps": 1e-5, "hidden_act": "gelu", "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2},
        smoke={"vocab_size": 1000, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 1, "pad_token_id": 1}),
}


# ---------------------------------------------------------------- FLOP formulas (what the counter counts)

def encoder_forward_flops(params: int, tokens: int, layers: int, hidden: int) -> float:
    """2 · params · tokens (each weight multiplies once per token; params without the embedding tables, which
    are looked up, not multiplied; biases and norms count as weights, a fraction of a percent at paper sizes)
    + 4 · layers · tokens² · hidden (QKᵀ and attention · V)."""
    return 2 * params * tokens + 4 * layers * tokens**2 * hidden


def heads_step_flops(batch: int, d_model: int, image_in: int, audio_in: int, hidden: int, ffn: int,
                     text_len: int) -> float:
    """One training step of Symile over the m3-paper heads, forward + backward (backward: 2 products per forward
    product, one where the input needs no gradient):
      image and audio Linear(in -> d) on frozen features:   4 · B · (image_in + audio_in) · d
      XLM-R layer 0 (Q, K, V, O and the two FFN matrices):  6 · B · L · (4 · H² + 2 · H · ffn)
      its attention (QKᵀ, A · V):                           12 · B · L² · H
      text Linear(H -> d) after the mean over tokens:       6 · B · H · d
      Symile's O(N) logits, 3 anchors of (B x d)(d x B):    18 · B² · d
    LayerNorms, embedding lookups and AdamW are not matrix products (they are memory-bound)."""
    b, d, h, length = batch, d_model, hidden, text_len
    return (4 * b * (image_in + audio_in) * d + 6 * b * length * (4 * h * h + 2 * h * ffn)
            + 12 * b * length**2 * h + 6 * b * h * d + 18 * b * b * d)


def symile_n_squared_flops(n: int, dim: int) -> float:
    """Forward + backward of the 3-modality O(N^2) loss: forward, the N x N^2 logits (2 · N³ · d); backward
    recomputes them and takes two products with the softmax weights (3 · 2 · N³ · d)."""
    return 8 * n**3 * dim


FORMULAS = {"encoder_forward": encoder_forward_flops.__doc__, "heads_step": heads_step_flops.__doc__,
            "symile_n_squared": symile_n_squared_flops.__doc__}


# ---------------------------------------------------------------- timing

def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _addmm_inplace_flops(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


#: FlopCounterMode knows aten.addmm but not its in-place form, which the O(N^2) loss's backward accumulates with.
UNCOUNTED = {torch.ops.aten.addmm_: _addmm_inplace_flops}


def flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=UNCOUNTED)


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters less the embedding tables'."""
    tables = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    return sum(p.numel() for p in model.parameters()) - tables


def counted(step: Callable[[], None], device: torch.device) -> int:
    """FLOPs of one call of `step`, every attention product as a counted matmul. Resets the device's peak
    memory, so that `peak_memory` afterwards is that of this measurement."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with flop_counter() as counter, sdpa_kernel(SDPBackend.MATH):
        step()
    synchronize(device)
    return counter.get_total_flops()


def timed(step: Callable[[], None], device: torch.device, min_steps: int, seconds: float) -> tuple[int, float]:
    """(steps, seconds per step) over at least `min_steps` calls and about `seconds`, after one more warm-up."""
    step()
    synchronize(device)
    began, steps = time.perf_counter(), 0
    while steps < min_steps or time.perf_counter() - began < seconds:
        step()
        steps += 1
        if steps % 4 == 0 or steps >= min_steps:
            synchronize(device)
    synchronize(device)
    return steps, (time.perf_counter() - began) / steps


def peak_memory(device: torch.device) -> dict:
    """The most GPU memory torch held since `counted` (the math-backend counting pass included); none on a CPU."""
    return {"peak_gpu_memory_bytes": torch.cuda.max_memory_allocated(device)} if device.type == "cuda" else {}


def rates(flops: int, per_step: float, rows: int, peak: float | None, peak_source: str, bf16: bool,
          device: torch.device) -> dict:
    achieved = flops / per_step
    return {"seconds_per_step": per_step, "samples_per_s": rows / per_step, "achieved_flops_per_s": achieved,
            **mfu(achieved, peak, peak_source, bf16), **peak_memory(device)}


# ---------------------------------------------------------------- sections

def text_head_checkpoint(folder: str, overrides: dict) -> object:
    """A randomly initialised XLM-R of the given config with its first layer only, saved where PretrainedTextHead
    loads it by path (it keeps layer 0 of whatever it loads): the paper's text head without a download."""
    config = _xlmr_config({**overrides, "num_hidden_layers": 1})
    _xlmr_model(config).save_pretrained(folder)
    return config


def train_heads(sizes: dict, device: torch.device, peak, peak_source, budget: float) -> list[dict]:
    from polymodal.baselines.models import MODELS
    from polymodal.benchmarks.training import Placement, _autocast, batch_loss

    place = Placement(device)
    results = []
    with tempfile.TemporaryDirectory(prefix="polymodal-gpu-xlmr-") as folder:
        text = text_head_checkpoint(folder, sizes["xlmr"])
        b, length = sizes["batch"], sizes["text_len"]
        generator = torch.Generator().manual_seed(0)
        flag = torch.zeros(b, 1)
        batch = {"image": torch.cat([torch.randn(b, sizes["image_in"], generator=generator), flag], 1),
                 "audio": torch.cat([torch.randn(b, sizes["audio_in"], generator=generator), flag], 1),
                 "text": _text_ids(text, b, length, "cpu")}
        batch = {m: x.to(device) for m, x in batch.items()}
        inputs = {"image": sizes["image_in"] + 1, "audio": sizes["audio_in"] + 1, "text": length}
        for d_model in sizes["d_models"]:
            torch.manual_seed(0)
            model = MODELS["symile"](inputs, d_model=d_model, encoders="m3-paper", encoder_options={
                "text_model": folder, "text_vocab": text.vocab_size + 1, "text_pad": text.pad_token_id}).to(device)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            loss_generator, autocast = torch.Generator().manual_seed(0), _autocast(place, True)

            def step():
                loss = batch_loss(model, batch, loss_generator, autocast)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            flops = counted(step, device)
            steps, per_step = timed(step, device, sizes["min_steps"], budget)
            results.append({
                "d_model": d_model, "batch_size": b, "text_len": length, "precision": "bf16 autocast",
                "parameters": sum(p.numel() for p in model.parameters()),
                "flops_per_step": flops,
                "flops_per_step_formula": heads_step_flops(b, d_model, sizes["image_in"], sizes["audio_in"],
                                                           text.hidden_size, text.intermediate_size, length),
                "steps": steps, **rates(flops, per_step, b, peak, peak_source, True, device)})
            del model, optimizer
    return results


def featurize(sizes: dict, device: torch.device, peak, peak_source, budget: float, exact: bool) -> dict:
    results = {}
    for name, encoder in ENCODERS.items():
        config = encoder.config(encoder.exact if exact else encoder.smoke)
        torch.manual_seed(0)
        with torch.device(device):
            model = encoder.model(config).eval()
        batch = sizes["featurize_batch"][name]
        kwargs = encoder.inputs(config, batch, sizes["text_len"], device)
        tokens = encoder.tokens(config, sizes["text_len"])
        layers, hidden = _depth(config)
        params = sum(p.numel() for p in model.parameters())
        entry = {"checkpoint": encoder.hf_name, "config": encoder.exact if exact else encoder.smoke,
                 "parameters": params, "batch_size": batch, "tokens_per_sample": tokens,
                 "flops_per_sample_formula": encoder_forward_flops(matmul_params(model), tokens, layers, hidden)}
        for precision, bf16 in (("float32", False), ("bf16", True)):
            cast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

            def step():
                with torch.inference_mode(), cast:
                    model(**kwargs)

            flops = counted(step, device)
            entry["flops_per_sample"] = flops / batch
            steps, per_step = timed(step, device, sizes["min_steps"], budget)
            entry[precision] = {"steps": steps, **rates(flops, per_step, batch, peak, peak_source, bf16, device)}
        results[name] = entry
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def _depth(config) -> tuple[int, int]:
    """(transformer layers the forward runs, hidden width) of a CLIP vision, Whisper or XLM-R config."""
    layers = getattr(config, "encoder_layers", None) or config.num_hidden_layers
    return layers, getattr(config, "d_model", None) or config.hidden_size


def symile_loss_section(sizes: dict, device: torch.device, budget: float) -> dict:
    from polymodal.baselines.losses import symile_loss

    n, dim = sizes["loss_n"], sizes["loss_dim"]
    generator = torch.Generator().manual_seed(0)
    embeddings = [F.normalize(torch.randn(n, dim, generator=generator), dim=1).to(device).requires_grad_()
                  for _ in range(3)]
    scale = torch.tensor(math.log(1 / 0.07), device=device, requires_grad=True)
    results = {"n": n, "dim": dim, "precision": "float32 (the loss runs in float32: batch_loss casts the "
               "embeddings, and the O(N^2) sweep turns autocast off)"}
    for negatives, min_steps in (("n_squared", 1), ("n", sizes["min_steps"])):
        loss_generator = torch.Generator(device=device).manual_seed(0)

        def step():
            symile_loss(embeddings, scale.exp(), negatives, generator=loss_generator).backward()
            for leaf in (*embeddings, scale):
                leaf.grad = None

        flops = counted(step, device)
        steps, per_step = timed(step, device, min_steps, budget)
        results[negatives] = {"flops": flops, "steps": steps, "seconds": per_step,
                              "achieved_flops_per_s": flops / per_step,
                              **mfu(flops / per_step, None, "", False), **peak_memory(device)}
        if negatives == "n_squared":
            results[negatives]["flops_formula"] = symile_n_squared_flops(n, dim)
    return results


# ---------------------------------------------------------------- sizes and the run

PAPER = {"image_in": 1024, "audio_in": 1280, "xlmr": ENCODERS["xlm-roberta-large"].exact, "batch": 256,
         "d_models": [256, 1024, 8192], "text_len": 96, "min_steps": 10, "loss_n": 4096, "loss_dim": 256,
         "featurize_batch": {"clip-vit-large-patch14": 256, "whisper-large-v3-encoder": 32, "xlm-roberta-large": 256}}
SMOKE = {"image_in": 24, "audio_in": 20, "xlmr": ENCODERS["xlm-roberta-large"].smoke, "batch": 8,
         "d_models": [16], "text_len": 8, "min_steps": 2, "loss_n": 24, "loss_dim": 8,
         "featurize_batch": dict.fromkeys(ENCODERS, 2)}


def device_info(device: torch.device, override: float | None) -> dict:
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})"
    peak, source = peak_bf16(name, override)
    return {"name": name, "type": device.type, "torch": torch.__version__, "transformers": transformers.__version__,
            "cuda": torch.version.cuda, "threads": torch.get_num_threads(), "peak_bf16_flops_per_s": peak,
            # torch's defaults, as PaperFeaturizer runs: float32 matmuls without TF32 ("highest")
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "peak_source": source}


def count_paper_flops() -> dict:
    """Counted forward FLOPs per sample of the paper encoders' exact configs, on the meta device (shapes only)."""
    out = {}
    for name, encoder in ENCODERS.items():
        config = encoder.config(encoder.exact)
        with torch.device("meta"):
            model = encoder.model(config)
            kwargs = encoder.inputs(config, 1, PAPER["text_len"], torch.device("meta"))
            with flop_counter() as counter, torch.no_grad():
                model(**kwargs)
        layers, hidden = _depth(config)
        params, tokens = sum(p.numel() for p in model.parameters()), encoder.tokens(config, PAPER["text_len"])
        out[name] = {"parameters": params, "tokens_per_sample": tokens, "flops_per_sample": counter.get_total_flops(),
                     "flops_per_sample_formula": encoder_forward_flops(matmul_params(model), tokens, layers, hidden)}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="where the JSON goes (required unless --flops)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: every measurement in seconds on a CPU")
    parser.add_argument("--flops", action="store_true",
                        help="print the counted FLOPs per sample of the paper encoders (meta device) and exit")
    parser.add_argument("--seconds", type=float, help="timed seconds per measurement (default 5, smoke 0)")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, TFLOP/s, where PEAK_BF16 "
                        "does not know it")
    parser.add_argument("--d-models", help="comma-separated head widths (default 256,1024,8192)")
    parser.add_argument("--text-len", type=int, help="real XLM-R tokens per text (default 96)")
    args = parser.parse_args(argv)
    if args.flops:
        print(json.dumps(count_paper_flops(), indent=2))
        return
    if not args.out:
        parser.error("--out is required (the JSON file to write)")
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        parser.error(f"--peak-tflops must be > 0, got {args.peak_tflops}")
    sizes = dict(SMOKE if args.smoke else PAPER)
    if args.d_models:
        try:
            sizes["d_models"] = [int(d) for d in args.d_models.split(",")]
        except ValueError:
            parser.error(f"--d-models: comma-separated integers, got {args.d_models!r}")
    if args.text_len is not None:
        if args.text_len < 1:
            parser.error(f"--text-len must be >= 1, got {args.text_len}")
        sizes["text_len"] = args.text_len
    budget = args.seconds if args.seconds is not None else (0.0 if args.smoke else 5.0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info = device_info(device, args.peak_tflops)
    result = {"complete": False, "smoke": args.smoke, "device": info, "sizes": sizes, "formulas": FORMULAS}
    sections = {
        "train_heads": lambda: train_heads(sizes, device, info["peak_bf16_flops_per_s"], info["peak_source"], budget),
        "featurize": lambda: featurize(sizes, device, info["peak_bf16_flops_per_s"], info["peak_source"], budget,
                                       exact=not args.smoke),
        "symile_loss": lambda: symile_loss_section(sizes, device, budget),
    }
    for name, section in sections.items():
        began = time.perf_counter()
        result[name] = section()
        result.setdefault("section_seconds", {})[name] = time.perf_counter() - began
        print(f"{name}: done in {result['section_seconds'][name]:.1f} s", flush=True)
        with open(args.out, "w") as out:  # after every section: a run cut short keeps what it measured
            json.dump(result, out, indent=2)
    result["complete"] = True
    with open(args.out, "w") as out:
        json.dump(result, out, indent=2)
    print(f"wrote {args.out} ({info['name']})")


if __name__ == "__main__":
    main()
