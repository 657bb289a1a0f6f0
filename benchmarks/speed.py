"""Model size, FLOPs, inference and training speed, and peak memory per model scale.

    python benchmarks/speed.py [--scales xxs s] [--device auto|cpu|cuda] [--repeats 5]
                               [--size 384 640] [--json out.json]
    python benchmarks/speed.py --backbones efficientnet_lite0 efficientnet_lite1 efficientnet_lite2 \
                               --size 256 448 --train_batch 4     # the real-data recipe's encoders
    python benchmarks/speed.py --backbones efficientnet_lite0 --size 320 576 --runtimes torch compile onnx

For each scale (and device, and precision) it reports:

* parameters (M) and FLOPs of one batch-1 forward at ``--size``, counted with
  ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no computation);
  a multiply-add counts as 2 FLOPs (GMACs = GFLOPs / 2). Convolutions, linear layers and
  attention matrix products are counted (attention through the math SDPA kernel, since
  the fused CPU kernel is not counted); element-wise ops, norms and softmax are not;
* inference time per frame at batch 1 and at ``--batch`` (per frame), under
  ``torch.inference_mode()``, after ``--warmup`` runs, median of ``--repeats`` runs;
* with ``--runtimes``, the same inference under ``torch.compile`` and ONNX Runtime, with
  each one's one-off cost (compiling, exporting);
* one training step (forward + backward + AdamW step, BCE on a random mask) at
  ``--train_batch``;
* peak memory of each measurement: on CPU the growth of the peak resident set size
  (``ru_maxrss``) over its value after model construction, measured in a fresh process
  per measurement so one cannot hide another's peak; on CUDA
  ``torch.cuda.max_memory_allocated``.

CUDA runs in fp32 and with AMP bf16 when a GPU is available; CPU runs in fp32 (``--precisions``
changes that). The CPU batch-1 fp32 time is compared with the reference OAST
implementation measured on the project's 2-core CPU machine. Timings on a shared machine
vary: check ``uptime`` first; the load average is printed with the results.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

import torch  # noqa: E402

# Reference OAST implementation, 384x640 frame, batch 1, on the project's 2-core CPU machine.
REFERENCE = {"xxs": {"s_per_frame": 1.34, "params_m": 11.8}, "s": {"s_per_frame": 3.60, "params_m": 49.7}}
TARGET_SPEEDUP = 3.0
RESULT_TAG = "SPEED_RESULT "


# --------------------------------------------------------------------------- worker side
def _peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def count_flops(scale: str, size: tuple[int, int], arch: str = "two_stream", blocks: str | None = None,
                backbone: str | None = None) -> float:
    """FLOPs of one batch-1 forward (multiply-add = 2), without computing anything if possible."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from models import build_model

    def run(device: str) -> float:
        with torch.device(device):
            model = build_model(scale, backbone, arch=arch, blocks=blocks).eval()
            x = torch.rand(1, 3, *size)
        # The math SDPA kernel is made of matmuls the counter sees; fused kernels are not counted.
        with torch.inference_mode(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
            model(x, x)
        return float(counter.get_total_flops())

    try:
        return run("meta")
    except Exception:  # some op without a meta kernel: count on a real CPU forward instead
        return run("cpu")


def _timed(fn: Callable[[], Any], warmup: int, repeats: int, cuda: bool) -> list[float]:
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times


def measure(job: dict) -> dict:
    """One measurement (``job["kind"]``: ``static``, ``infer`` or ``train``) in this process."""
    from models import build_model

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    scale, size, arch = job["scale"], tuple(job["size"]), job.get("arch", "two_stream")
    blocks = job.get("blocks")  # oast3d's block flavour; None: build_model's default
    backbone = job.get("backbone")  # a timm encoder instead of mobilevit_<scale>
    if job["kind"] == "static":
        model = build_model(scale, backbone, arch=arch, blocks=blocks)
        return {"params": sum(p.numel() for p in model.parameters()),
                "flops": count_flops(scale, size, arch, blocks, backbone), "threads": torch.get_num_threads()}

    device = torch.device(job["device"])
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = build_model(scale, backbone, arch=arch, blocks=blocks).to(device)
    b = job["batch"]
    image, flow = torch.rand(b, 3, *size, device=device), torch.rand(b, 3, *size, device=device)
    use_amp = job["precision"] == "bf16"

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp)

    runtime, setup_s = job.get("runtime", "torch"), 0.0
    if job["kind"] == "infer":
        model.eval()
        net, setup_s = runtime_network(model, runtime, size, device)

        def step() -> None:
            with torch.inference_mode(), autocast():
                net(image, flow)
    else:
        model.train()
        target = (torch.rand(b, 1, *size, device=device) > 0.5).float()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-2)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with autocast():
                logits = model(image, flow)["logits"]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
            loss.backward()
            opt.step()

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) / 2**20
    else:
        base = _peak_rss_mib()
    first_s = None
    if setup_s is None:  # torch.compile compiles in the first call, outside the warm-up's count
        t = time.perf_counter()
        step()
        first_s = time.perf_counter() - t
    times = _timed(step, job["warmup"], job["repeats"], cuda)
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = _peak_rss_mib()
    out = {"median_s": statistics.median(times), "min_s": min(times), "times_s": times,
           "peak_mib": peak, "peak_delta_mib": peak - base, "threads": torch.get_num_threads()}
    if first_s is not None:  # compilation: the first call minus what a compiled call costs
        setup_s = first_s - out["median_s"]
    return out | {"setup_s": setup_s}


def runtime_network(model: torch.nn.Module, runtime: str, size: tuple[int, int],
                    device: torch.device) -> tuple[Callable, float | None]:
    """``model`` run by ``runtime`` and the one-off seconds that took (None: measured later).

    ``torch``: eager PyTorch (the reference, default memory format); ``compile``:
    ``torch.compile`` (inductor), compiled on the first call; ``onnx``: exported to a temporary
    file and run by ONNX Runtime (``segment_video.onnx_runtime``, the video tool's default on a CPU).
    """
    if runtime == "torch":
        return model, 0.0
    if runtime == "compile":
        return torch.compile(model), None
    if runtime == "onnx":
        import tempfile

        from segment_video.onnx_runtime import OnnxNetwork, export

        if device.type != "cpu":
            raise ValueError("--runtimes onnx runs on the CPU only")
        with tempfile.TemporaryDirectory(prefix="speed_onnx_") as folder:  # the session holds the graph
            path = Path(folder) / "net.onnx"
            record = export(model, path, size)
            return OnnxNetwork(path, size), record["export_s"]
    raise ValueError(f"unknown runtime {runtime!r}")


# --------------------------------------------------------------------------- driver side
def run_job(job: dict) -> dict:
    """Run ``measure(job)`` in a fresh Python process (clean peak-RSS accounting)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def print_tables(results: dict, args: argparse.Namespace) -> None:
    h, w = args.size
    rows = results["rows"]
    print(f"\nModel speed at {h}x{w} (median of {args.repeats} runs after {args.warmup} warm-up; "
          f"batched inference at batch {args.batch} reported per frame; training step at batch {args.train_batch})")
    print("GFLOPs: one batch-1 forward, multiply-add = 2 FLOPs (GMACs = GFLOPs/2); conv, linear and attention "
          "matmuls counted, element-wise ops not")
    hdr = (f"{'arch / encoder':<18} {'scale':<5} {'device':<6} {'prec':<5} {'params M':>8} {'GFLOPs':>7} {'GMACs':>6} "
           f"{'b1 s/frame':>10} {'b1 best':>7} {f'b{args.batch} s/frame':>10} {f'train b{args.train_batch} s':>11} "
           f"{'peak MiB b1/b' + str(args.batch) + '/train':>26} {'runtime':<8} {'setup s':>7}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        per_frame_bn = r["bn"]["median_s"] / args.batch if "median_s" in r["bn"] else None
        mem = "/".join(_fmt(r[k].get("peak_delta_mib") if r.get(k) else None, ".0f") for k in ("b1", "bn", "train"))
        arch = r.get("arch", "two_stream") + (f"/{r['blocks']}" if r.get("blocks") else "")
        if r.get("backbone"):
            arch = r["backbone"]
        print(f"{arch:<18} {r['scale']:<5} {r['device']:<6} {r['precision']:<5} "
              f"{r['params'] / 1e6:>8.2f} "
              f"{r['flops'] / 1e9:>7.2f} {r['flops'] / 2e9:>6.2f} "
              f"{_fmt(r['b1'].get('median_s')):>10} {_fmt(r['b1'].get('min_s')):>7} {_fmt(per_frame_bn):>10} "
              f"{_fmt(r['train'].get('median_s')):>11} {mem:>26} {r.get('runtime', 'torch'):<8} "
              f"{_fmt(r['bn'].get('setup_s'), '.1f'):>7}")
        for k in ("b1", "bn", "train"):
            if "error" in r[k]:
                print(f"      {k} failed: {r[k]['error']}")
    print("peak memory: CPU = growth of peak RSS over the RSS after model construction (fresh process each); "
          "CUDA = max_memory_allocated")
    if any(r.get("runtime", "torch") != "torch" for r in rows):
        print("setup s: one-off cost at batch " + str(args.batch) + " (onnx: export and check; compile: the first "
              "call minus one timed call); the training step runs in eager PyTorch, on the first runtime's row only")

    comp = results["comparison"]
    if not comp:
        return
    print(f"\nAgainst the reference OAST implementation (CPU, batch 1, 384x640, same 2-core machine); "
          f"target: at least {TARGET_SPEEDUP:g}x faster with fewer parameters.\nThe verdict uses the median "
          f"time; '(best)' is the fastest run, the code's cost when nothing else competes for the cores")
    hdr = (f"{'scale':<5} {'ref s/frame':>11} {'ours s/frame':>12} {'speed-up':>8} {'(best)':>7} {'ref params M':>12} "
           f"{'ours params M':>13} {'params ratio':>12}  target")
    print(hdr)
    print("-" * len(hdr))
    for c in comp:
        speed = "-" if c["speedup"] is None else f"{c['speedup']:.2f}x"
        best = "-" if c["speedup_best"] is None else f"{c['speedup_best']:.2f}x"
        verdict = "MET" if c["target_met"] else ("not met" if c["target_met"] is False else "n/a")
        print(f"{c['scale']:<5} {c['ref_s_per_frame']:>11.2f} {_fmt(c['ours_s_per_frame']):>12} {speed:>8} {best:>7} "
              f"{c['ref_params_m']:>12.1f} {c['ours_params_m']:>13.2f} {c['params_ratio']:>12.3f}  {verdict}")
    if tuple(args.size) != (384, 640):
        print(f"note: measured at {h}x{w}, not the reference's 384x640; the speed-up is not like for like")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scales", nargs="+", default=["xxs", "s"], choices=["xxs", "xs", "s"],
                   help="model scales (default: xxs s)")
    p.add_argument("--backbones", nargs="+", default=None, metavar="TIMM_NAME",
                   help="two-stream networks on these timm encoders instead of --scales (e.g. efficientnet_lite0 "
                        "efficientnet_lite1 efficientnet_lite2: the real-data recipe's family); random weights")
    p.add_argument("--archs", nargs="+", default=["two_stream"], choices=["two_stream", "oast3d"],
                   help="networks to measure (oast3d: the authors' 3D MobileViT; benchmarks/compare_arch.py)")
    p.add_argument("--blocks", default=None, choices=["timm", "authors"],
                   help="oast3d's MobileViT block flavour: timm, or authors (the authors' own network); "
                        "default: timm, as --arch oast3d builds it")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: CPU, plus CUDA when available (default: auto)")
    p.add_argument("--precisions", nargs="+", default=None, choices=["fp32", "bf16"],
                   help="default: fp32 on CPU, fp32 and AMP bf16 on CUDA")
    p.add_argument("--size", type=int, nargs=2, default=(384, 640), metavar=("H", "W"),
                   help="input size (default: 384 640)")
    p.add_argument("--batch", type=int, default=4, help="batch size of the batched inference (default: 4)")
    p.add_argument("--train_batch", type=int, default=2, help="batch size of the training step (default: 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported (default: 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: 1)")
    p.add_argument("--runtimes", nargs="+", default=["torch"], choices=["torch", "compile", "onnx"],
                   help="what runs the inference rows: torch (eager), compile (torch.compile, "
                        "inductor; its compile time is reported apart) or onnx (ONNX Runtime, needs "
                        "requirements-onnx.txt; CPU only); the training step always runs in eager PyTorch "
                        "(default: torch)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's own default, left unchanged)")
    p.add_argument("--json", type=Path, default=None, help="also write all results to this JSON file")
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._worker is not None:  # child process: one measurement, result on stdout
        print(RESULT_TAG + json.dumps(measure(json.loads(args._worker))), flush=True)
        return 0
    if args.repeats < 1 or args.warmup < 0 or args.batch < 1 or args.train_batch < 1:
        p.error("--repeats, --batch and --train_batch must be >= 1 and --warmup >= 0")

    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []), "cpu": ["cpu"],
               "cuda": ["cuda"]}[args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device available")
    load = os.getloadavg()
    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPU cores, "
          f"torch threads: {threads}{'' if args.threads else ' (default)'}, "
          f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + (f", GPU: {torch.cuda.get_device_name(0)}" if "cuda" in devices else ""))
    common = {"size": list(args.size), "warmup": args.warmup, "repeats": args.repeats, "threads": args.threads}
    rows = []
    t_start = time.perf_counter()
    models = ([("two_stream", "-", b) for b in args.backbones] if args.backbones
              else [(a, s, None) for a in args.archs for s in args.scales])
    for arch, scale, backbone in models:
        blocks = args.blocks if arch == "oast3d" else None
        net = {"scale": scale, "arch": arch, "blocks": blocks, "backbone": backbone}  # what every job builds
        static = run_job({"kind": "static", **net, **common})
        if "error" in static:
            print(f"{arch} {scale}: cannot build or count the model: {static['error']}", file=sys.stderr)
            return 1
        for device in devices:
            precisions = args.precisions or (["fp32", "bf16"] if device == "cuda" else ["fp32"])
            for prec, runtime in [(p_, r) for p_ in precisions for r in args.runtimes]:
                if runtime == "onnx" and (device != "cpu" or prec != "fp32"):
                    continue  # the ONNX export runs in fp32 on the CPU
                row: dict[str, Any] = {"arch": arch, "blocks": blocks, "scale": scale, "backbone": backbone,
                                       "device": device, "runtime": runtime,
                                       "precision": prec, "params": static["params"], "flops": static["flops"]}
                jobs = [("b1", "infer", 1), ("bn", "infer", args.batch)]
                if runtime == args.runtimes[0]:  # training runs in eager PyTorch whatever the runtime
                    jobs.append(("train", "train", args.train_batch))
                for key, kind, batch in jobs:
                    print(f"  measuring {arch} {scale} {device} {prec} {runtime} {kind} batch {batch} ...",
                          file=sys.stderr, flush=True)
                    row[key] = run_job({"kind": kind, **net, "device": device, "precision": prec, "batch": batch,
                                        "runtime": runtime, **common})
                row.setdefault("train", {})
                rows.append(row)

    comparison = []
    for scale in args.scales:
        ref = REFERENCE.get(scale)
        row = next((r for r in rows if r["arch"] == "two_stream" and r["scale"] == scale and r["device"] == "cpu"
                    and r["precision"] == "fp32" and r["runtime"] == "torch"), None)
        if ref is None or row is None:
            continue
        ours_t = row["b1"].get("median_s")
        ours_p = row["params"] / 1e6
        speedup = ref["s_per_frame"] / ours_t if ours_t else None
        best_t = row["b1"].get("min_s")
        speedup_best = ref["s_per_frame"] / best_t if best_t else None
        like_for_like = tuple(args.size) == (384, 640)  # the reference was timed at 384x640 only
        met = None if speedup is None or not like_for_like else bool(speedup >= TARGET_SPEEDUP
                                                                      and ours_p < ref["params_m"])
        comparison.append({"scale": scale, "ref_s_per_frame": ref["s_per_frame"], "ours_s_per_frame": ours_t,
                           "speedup": speedup, "speedup_best": speedup_best, "ref_params_m": ref["params_m"],
                           "ours_params_m": ours_p, "params_ratio": ours_p / ref["params_m"], "target_met": met})
    results = {"torch": torch.__version__, "cpu_count": os.cpu_count(), "threads": threads,
               "load_average_start": load, "load_average_end": os.getloadavg(), "size": list(args.size),
               "batch": args.batch, "train_batch": args.train_batch, "repeats": args.repeats,
               "warmup": args.warmup, "rows": rows, "comparison": comparison,
               "wall_s": time.perf_counter() - t_start}
    print_tables(results, args)
    end = results["load_average_end"]
    print(f"\nload average at the end: {end[0]:.2f} {end[1]:.2f} {end[2]:.2f}; total {results['wall_s']:.0f} s")
    if args.json:
        from utils.io import atomic_write
        text = json.dumps(results, indent=1)
        atomic_write(args.json, lambda tmp: tmp.write_text(text))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
