"""Measurement helpers of ``tools/analysis/benchmark.py``: interleaved
timing with medians, peak memory of one call (CUDA allocator or Linux peak
RSS) and a FLOP model of a CLIP train step for projecting ratios.

Benchmarks compare variants side by side in one process: every round runs
each variant once (A B C, then B C A, ...), so drift of a shared machine
hits all variants alike, and the median over rounds is reported. Each call
is timed by the wall clock and by this process's CPU time: on a CPU shared
with other processes the CPU time (one torch thread) is the stable measure
of the work a variant does; on a GPU the wall clock is the measure.
"""
import ctypes
import gc
import re
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import torch

#: How peak memory is measured on each device kind (goes into the report).
MEMORY_METHODS = {
    'cuda': 'torch.cuda.max_memory_allocated() during the call minus '
            'torch.cuda.memory_allocated() before it',
    'cpu': 'peak anonymous resident memory (RssAnon, sampled every ms by '
           'a monitor thread) during the call minus RssAnon before it; '
           'glibc mmap threshold pinned to 64 KiB with mallopt so that '
           'freed tensors leave the RSS at once (Linux)',
}


def synchronize(device: str) -> None:
    """Wait for queued device work, so wall-clock times are complete."""
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


CLOCKS = ('wall', 'cpu')


class Stopwatch:
    """Wall-clock and process CPU seconds of one timed region. A garbage
    collection first puts every region at the same start (no collection
    owed by earlier code lands in it)."""

    def __init__(self, device: str = 'cpu') -> None:
        self.device = device
        self.wall = self.cpu = 0.0

    def __enter__(self) -> 'Stopwatch':
        gc.collect()
        synchronize(self.device)
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def interleaved_times(variants: Dict[str, Callable[[], object]],
                      repeats: int, warmup: int = 1,
                      device: str = 'cpu') -> Dict[str, Dict[str, list]]:
    """Seconds per call of each variant, ``{'wall': [...], 'cpu': [...]}``,
    over ``repeats`` rounds after ``warmup`` untimed rounds; each round
    runs every variant once, the starting variant rotating each round."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f'interleaved_times: repeats must be >= 1 and '
                         f'warmup >= 0, got {repeats} and {warmup}.')
    names = list(variants)
    times = {name: dict(wall=[], cpu=[]) for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            with Stopwatch(device) as watch:
                variants[name]()
            if round_ >= warmup:
                times[name]['wall'].append(watch.wall)
                times[name]['cpu'].append(watch.cpu)
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Figure:
    """One benchmark figure: a ratio of two medians and what it means."""
    name: str
    numerator: str
    denominator: str
    ratio: Optional[float]
    unit: str = ''
    goal: Optional[str] = None
    met: Optional[bool] = None
    note: str = ''

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# --------------------------------------------------------------- memory

_M_MMAP_THRESHOLD = -3
_rss_ready: Optional[bool] = None
_libc = None


def _proc_status_kib(key: str) -> int:
    with open('/proc/self/status') as f:
        match = re.search(rf'^{key}:\s+(\d+) kB', f.read(), re.M)
    if match is None:
        raise RuntimeError(f'/proc/self/status has no {key}.')
    return int(match.group(1))


def prepare_rss_measurement() -> bool:
    """Make the RSS track live tensors (Linux + glibc); False where it
    cannot. Call it before building what is measured (memory malloc'ed
    earlier may stay resident) and after any timing (it makes large
    allocations slower)."""
    global _rss_ready, _libc
    if _rss_ready is None:
        try:
            _libc = ctypes.CDLL('libc.so.6')
            pinned = _libc.mallopt(_M_MMAP_THRESHOLD, 64 * 1024) == 1
            _proc_status_kib('RssAnon')
            _rss_ready = pinned
        except (OSError, RuntimeError, AttributeError):
            _rss_ready = False
    return _rss_ready


class _AnonPeak(threading.Thread):
    """Samples RssAnon until stopped (anonymous memory only: library pages
    that the kernel evicts and faults back in do not count)."""

    def __init__(self, period_s: float = 1e-3) -> None:
        super().__init__(daemon=True)
        self.period_s = period_s
        self.peak_kib = _proc_status_kib('RssAnon')
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.period_s):
            self.peak_kib = max(self.peak_kib, _proc_status_kib('RssAnon'))

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak_kib, _proc_status_kib('RssAnon'))


def peak_memory(fn: Callable[[], object], device: str) -> Optional[int]:
    """Bytes of memory ``fn()`` needs at its peak above what was allocated
    before it (see :data:`MEMORY_METHODS`); None where unmeasurable."""
    gc.collect()
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - before)
    if not prepare_rss_measurement():
        return None
    _libc.malloc_trim(0)  # hand freed heap pages back before the baseline
    before = _proc_status_kib('RssAnon')
    monitor = _AnonPeak()
    monitor.start()
    try:
        fn()
    finally:
        peak = monitor.stop()
    return int((peak - before) * 1024)


# --------------------------------------------------------------- FLOPs

def transformer_flops(tokens: float, width: int, layers: int,
                      seq_len: float, mlp_ratio: float = 4.0) -> float:
    """Forward FLOPs of ``tokens`` tokens through a pre-LN transformer:
    QKV/out projections and MLP (2 FLOPs per multiply-add) plus attention
    scores and mixing over ``seq_len``."""
    dense = 2 * (4 + 2 * mlp_ratio) * width * width
    attention = 4 * seq_len * width
    return tokens * layers * (dense + attention)


def clip_tower_shapes(model_name: str) -> dict:
    """Widths, depths and image token count of an open_clip architecture."""
    import open_clip
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise ValueError(f'unknown open_clip architecture {model_name!r}.')
    vision, text = cfg['vision_cfg'], cfg['text_cfg']
    size = vision['image_size']
    size = size[0] if isinstance(size, (list, tuple)) else size
    return dict(image_width=vision['width'], image_layers=vision['layers'],
                image_tokens=(size // vision['patch_size'])**2 + 1,
                image_mlp=vision.get('mlp_ratio', 4.0),
                text_width=text['width'], text_layers=text['layers'],
                text_mlp=text.get('mlp_ratio', 4.0))


def train_step_flops(model_name: str, batch: int, caption_tokens: int,
                     prompt_tokens: Optional[Sequence[int]] = None,
                     world: int = 1) -> Dict[str, float]:
    """Model FLOPs of one train step (3 x forward), by part: image tower,
    captions, and the cd prompts (``prompt_tokens[i]`` tokens each, split
    over ``world`` ranks; none for FLYP)."""
    s = clip_tower_shapes(model_name)
    image = transformer_flops(batch * s['image_tokens'], s['image_width'],
                              s['image_layers'], s['image_tokens'],
                              s['image_mlp'])
    captions = transformer_flops(batch * caption_tokens, s['text_width'],
                                 s['text_layers'], caption_tokens,
                                 s['text_mlp'])
    prompts = sum(
        transformer_flops(n, s['text_width'], s['text_layers'], n,
                          s['text_mlp']) for n in (prompt_tokens or [])) / world
    parts = dict(image=3 * image, captions=3 * captions, prompts=3 * prompts)
    parts['total'] = sum(parts.values())
    return parts


def projected_step_ratio(model_name: str, batch: int,
                         prompt_tokens: Sequence[int], caption_tokens: int,
                         world: int = 1) -> float:
    """FLOP model of (DRM step) / (FLYP step) with a training text tower:
    both run image + caption forward/backward; DRM adds the cd prompts
    (each ``prompt_tokens[i]`` long, split over ``world`` ranks)."""
    parts = train_step_flops(model_name, batch, caption_tokens,
                             prompt_tokens, world)
    return parts['total'] / (parts['image'] + parts['captions'])
