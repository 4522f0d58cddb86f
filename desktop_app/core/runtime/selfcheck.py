"""The runtime check: the first time a llama.cpp build meets a machine, find a configuration that runs.

A child process loads a small model and decodes with llama.cpp's defaults. If it crashes (some
CPUs advertise AMX but fault on it; llama.cpp then dies with SIGILL or SIGSEGV on the first prompt
of more than a few tokens), the next safer configuration is tried (see :func:`config.ladder`),
until one works or the ladder ends. The outcome is remembered under a key made of the llama.cpp
build and the CPU, so later starts cost nothing, and checked again when either changes or the user
asks ("Detect again"). Every process that runs llama.cpp gets the chosen configuration through
:func:`runtime_for_children`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from desktop_app.core.child import child_command, child_env, describe_exit
from desktop_app.core.paths import write_text_atomic
from desktop_app.core.runtime.config import DEFAULT, RUNTIME_ENV, RuntimeConfig, ladder
from desktop_app.core.runtime.threads import default_threads

log = logging.getLogger(__name__)

CHECK_VERSION = 2  # bump when the check or the ladder changes: remembered results are then checked again
ATTEMPT_TIMEOUT_S = 60
CHECK_PROMPT_TOKENS = 64
CHECK_GEN_TOKENS = 32
MAX_VARIANTS = 16
STORE_NAME = "llama-runtime.json"
REBUILD_HINT = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" {python} -m pip install --force-reinstall --no-cache-dir '
    "--no-deps llama-cpp-python=={version}"
)


@dataclass
class Attempt:
    """One configuration tried by the check."""

    configuration: str
    ok: bool
    outcome: str  # "worked", or what went wrong in words
    exitcode: int | None = None
    gen_tokens_per_s: float | None = None
    prompt_tokens_per_s: float | None = None
    weight_buffers: list[str] = field(default_factory=list)  # e.g. CPU_Mapped, CPU_REPACK, AMX
    seconds: float = 0.0

    @property
    def crashed(self) -> bool:
        return not self.ok and self.exitcode is not None and (self.exitcode < 0 or self.exitcode >= 0xC0000000)


BUSY_NOTE_PERCENT = 25.0  # other programs' share of the CPU above which the check's speeds are too low


@dataclass
class RuntimeChoice:
    """What the check chose, why, and how fast it ran. ``to_dict`` is ``llama_cpp.runtime`` in the
    `quantdesk hardware` JSON."""

    configuration: str  # default | no_repack | cpu_<variant>
    reason: str
    works: bool  # False: no configuration ran; the safest is used and will likely fail too
    repack: bool
    cpu_variant: str
    threads: int  # what llama.cpp runs with (the setting, or llama.cpp's default here)
    threads_basis: str  # "physical cores", "performance cores", "set in Settings"
    checked_tokens_per_s: float | None  # generation speed of the chosen configuration in the check
    checked_prompt_tokens_per_s: float | None
    check_model: str
    check_s: float
    checked_at: float
    attempts: list[Attempt] = field(default_factory=list)
    key: str = ""
    remembered: bool = False  # from an earlier check of this build on this CPU
    default_threads: int = 0
    # % of the CPU other programs used just before the check: its speeds (and the "% slower") are
    # low when this is high (a first start right after a build, say); None: not measured
    busy_percent: float | None = None

    @property
    def config(self) -> RuntimeConfig:
        return RuntimeConfig(name=self.configuration, extra_bufts=self.repack, cpu_variant=self.cpu_variant)

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def busy_note(self) -> str:
        """A warning when other programs kept the CPU busy as the check ran (its figures may be low)."""
        if self.busy_percent is None or self.busy_percent < BUSY_NOTE_PERCENT:
            return ""
        return f"measured while other programs used {self.busy_percent:.0f} % of the CPU, so these figures may be low"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["label"] = self.label
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RuntimeChoice:
        """Rebuild from :meth:`to_dict`.

        Raises:
            ValueError: ``d`` is not such a dict.
        """
        if not isinstance(d, dict):
            raise ValueError("not a runtime choice")
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in known}
        kw["attempts"] = [Attempt(**{k: v for k, v in a.items() if k in Attempt.__dataclass_fields__})
                          for a in d.get("attempts") or [] if isinstance(a, dict)]  # fmt: skip
        try:
            return cls(**kw)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


# -- the key: this build on this CPU ----------------------------------------------------------------
def cpu_signature() -> str:
    """What identifies this CPU for the check: vendor, family/model/stepping, name and feature flags."""
    system = platform.system()
    if system == "Linux":
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                text = f.read(1 << 20)
        except OSError:
            text = ""
        first = text.split("\n\n", 1)[0]
        keep = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags", "Features", "CPU implementer",
                "CPU architecture", "CPU variant", "CPU part")  # fmt: skip
        lines = [ln for ln in first.splitlines() if ln.partition(":")[0].strip() in keep]
        return platform.machine() + "\n" + "\n".join(lines)
    if system == "Darwin":
        from desktop_app.core.sysctl import run_sysctl

        keys = ("machdep.cpu.brand_string", "machdep.cpu.features", "machdep.cpu.leaf7_features", "hw.optional.arm64")
        return platform.machine() + "\n" + "\n".join(f"{k}={run_sysctl(k)}" for k in keys)
    return f"{platform.machine()}\n{platform.processor()}"


def runtime_key(version: str, lib_dir: str) -> str:
    """The build (llama-cpp-python's version and its library files) and the CPU, hashed."""
    from desktop_app.core.runtime.backends import backend_dirs

    h = hashlib.sha256(f"check {CHECK_VERSION}\nllama-cpp-python {version}\n".encode())
    for folder in backend_dirs(lib_dir):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            names = []
        for name in names:
            try:
                size = os.stat(os.path.join(folder, name)).st_size
            except OSError:
                size = -1
            h.update(f"{name} {size}\n".encode())
    h.update(cpu_signature().encode())
    return h.hexdigest()[:32]


# -- running it -----------------------------------------------------------------------------------
def check_models() -> tuple[list[str], str]:
    """The models the check decodes, and the one its speeds are of (the first).

    The starter model, whose tokens/s mean something to the user, then a generated model with
    Q4_0/Q8_0 matrices (the weight types llama.cpp repacks on x86 and ARM).

    Raises:
        OSError: the generated model cannot be written (full disk, read-only cache).
    """
    from desktop_app.core.paths import app_paths
    from desktop_app.core.runtime.check_model import write_check_model
    from desktop_app.core.starter import find_starter_model

    generated = write_check_model(app_paths().cache_dir)
    starter = find_starter_model()
    if starter.path:
        return [starter.path, generated], "SmolLM2-135M-Instruct Q4_1 (the starter model)"
    return [generated], "a generated test model (the starter model is not installed)"


def _attempt(config: RuntimeConfig, models: list[str], timeout_s: float) -> tuple[Attempt, list[tuple[str, int]]]:
    env = child_env()
    env[RUNTIME_ENV] = config.with_threads(default_threads()[0]).to_json()
    cmd = child_command("desktop_app.core.runtime._check_child", str(CHECK_PROMPT_TOKENS), str(CHECK_GEN_TOKENS),
                        *models)  # fmt: skip
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        return Attempt(config.name, False, f"did not finish in {timeout_s:.0f} s"), []
    except OSError as exc:
        return Attempt(config.name, False, f"could not start: {exc}"), []
    seconds = time.perf_counter() - t0
    events: dict[str, object] = {}
    step = "loading a model"
    for line in proc.stdout.splitlines():
        try:
            kind, payload = json.loads(line)
        except (ValueError, TypeError):
            continue
        step = {"loaded": "generating", "gen": f"reading a {CHECK_PROMPT_TOKENS}-token prompt",
                "prompt": "finishing", "variants": step}.get(kind, step)  # fmt: skip
        if kind in ("gen", "prompt", "loaded") and not (isinstance(payload, dict) and payload.get("model") == 0):
            if kind == "loaded":
                step = "loading the second model"
            continue  # speeds and buffers are the measured model's
        events[kind] = payload
    gen, prompt, loaded, error = ((v if isinstance(v := events.get(k), dict) else {})
                                  for k in ("gen", "prompt", "loaded", "error"))  # fmt: skip
    ok = proc.returncode == 0 and "ok" in events
    if ok:
        outcome = "worked"
    elif error:
        outcome = str(error.get("message", "failed"))
    else:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
        outcome = f"llama.cpp {describe_exit(proc.returncode)} while {step}"
        if proc.returncode is not None and proc.returncode > 0 and tail[0]:
            outcome += f": {tail[0][:300]}"
    found = events.get("variants")
    variants = [(str(v), int(s)) for v, s in (found if isinstance(found, list) else []) if isinstance(s, int)]
    variants = variants[:MAX_VARIANTS]
    return Attempt(
        configuration=config.name,
        ok=ok,
        outcome=outcome,
        exitcode=proc.returncode,
        gen_tokens_per_s=gen.get("tokens_per_s"),
        prompt_tokens_per_s=prompt.get("tokens_per_s"),
        weight_buffers=[str(b) for b in loaded.get("weight_buffers", [])],
        seconds=seconds,
    ), variants


def run_check(models: list[str], *, timeout_s: float = ATTEMPT_TIMEOUT_S) -> tuple[RuntimeConfig | None, list[Attempt],
                                                                                 float]:  # fmt: skip
    """Try the ladder in order until a configuration works. Returns it (None if none did), every
    attempt, and the seconds it all took. Each attempt is a child process: a crash costs nothing."""
    t0 = time.perf_counter()
    configs = ladder([])
    attempts: list[Attempt] = []
    i = 0
    while i < len(configs):
        attempt, variants = _attempt(configs[i], models, timeout_s)
        attempts.append(attempt)
        if i == 0 and variants:
            configs = ladder([v for v, score in variants if score > 0])
        log.info("runtime check: %s %s (%.2f s)", attempt.configuration, attempt.outcome, attempt.seconds)
        if attempt.ok:
            return configs[i], attempts, time.perf_counter() - t0
        i += 1
    return None, attempts, time.perf_counter() - t0


def _pct_slower(fast: float | None, slow: float | None) -> int | None:
    if not fast or not slow:
        return None
    return round((1 - slow / fast) * 100)


def explain(chosen: RuntimeConfig | None, attempts: list[Attempt], *, cpu_features=(), version: str = "?") -> str:
    """Why this configuration, in one or two sentences for the Hardware page."""
    if chosen is not None and chosen.name == DEFAULT:
        return "llama.cpp's default configuration passed the check on this CPU."
    failed = attempts[0] if attempts else None
    if chosen is None:
        tried = "; ".join(f"{a.configuration}: {a.outcome}" for a in attempts) or "nothing could be tried"
        import sys

        return (
            f"llama.cpp failed on this CPU in every configuration QuantDesk tried ({tried}). Models cannot run "
            "with this build. Reinstall llama-cpp-python built for a generic CPU, then press Detect again: "
            + REBUILD_HINT.format(python=sys.executable, version=version)
        )
    what = f"with llama.cpp's defaults, {failed.outcome}" if failed else "llama.cpp's defaults failed"
    if failed is not None and failed.crashed and "AMX_INT8" in set(cpu_features):
        head = f"This CPU advertises AMX but faults on it: {what}."
    else:
        head = f"On this CPU, {what}."
    cost = ""
    pct = _pct_slower(failed.gen_tokens_per_s if failed else None, attempts[-1].gen_tokens_per_s)
    if pct is not None:
        cost = f", about {pct} % slower at generating" if pct >= 1 else ", at about the same speed"
    return f"{head} QuantDesk runs {chosen.label}{cost}."


# -- remembering it -------------------------------------------------------------------------------
_lock = threading.Lock()
_memo: dict[str, RuntimeChoice] = {}
_threads_override = 0


def set_threads_override(n: int) -> None:
    """The user's thread count (0: llama.cpp's default). Applies to children started from now on."""
    global _threads_override
    _threads_override = max(0, min(int(n or 0), 4096))


def _store_path() -> Path:
    from desktop_app.core.paths import app_paths

    return app_paths().cache_dir / STORE_NAME


def _with_threads(choice: RuntimeChoice) -> RuntimeChoice:
    """A copy with the threads llama.cpp will use now (the setting, or its default here)."""
    n, basis = default_threads()
    if _threads_override:
        return replace(choice, default_threads=n, threads=_threads_override, threads_basis="set in Settings")
    return replace(choice, default_threads=n, threads=n, threads_basis=basis)


def _load_remembered(path: Path, key: str) -> RuntimeChoice | None:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 20)
        choice = RuntimeChoice.from_dict(json.loads(text))
    except (OSError, ValueError):
        return None
    if choice.key != key:
        return None
    choice.remembered = True
    return choice


def _remember(path: Path, choice: RuntimeChoice) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(choice.to_dict(), indent=2))
    except OSError as exc:  # a full disk or a read-only cache: the check just runs again next time
        log.warning("could not remember the runtime check in %s: %s", path, exc)


def ensure_runtime(*, recheck: bool = False, cpu_features: list[str] | tuple[str, ...] | None = None,
                   lib_dir: str | None = None) -> RuntimeChoice | None:  # fmt: skip
    """The runtime for this build on this CPU: remembered, or checked now (a few seconds, once).

    None when llama-cpp-python is not installed. Never raises; thread-safe (one check at a time).
    """
    from desktop_app.core.runtime.backends import llama_cpp_lib_dir, llama_cpp_version

    version = llama_cpp_version()
    if version is None:
        return None
    lib_dir = lib_dir or llama_cpp_lib_dir()
    if lib_dir is None:
        return None
    path = _store_path()
    with _lock:
        key = runtime_key(version, lib_dir)
        memo = _memo.get(str(path))
        if memo is not None and memo.key == key and not recheck:
            return _with_threads(memo)
        choice = None if recheck else _load_remembered(path, key)
        if choice is None:
            if cpu_features is None:  # only the explanation uses them: does the CPU advertise AMX?
                cpu_features = ["AMX_INT8"] if "amx_int8" in cpu_signature().lower() else []
            choice = _check(key, version, list(cpu_features))
            _remember(path, choice)
        _memo[str(path)] = choice
        return _with_threads(choice)


def _check(key: str, version: str, cpu_features: list[str]) -> RuntimeChoice:
    try:
        models, model_label = check_models()
    except OSError as exc:
        return RuntimeChoice(
            configuration=DEFAULT, reason=f"The runtime check could not run ({exc}); llama.cpp's defaults are used.",
            works=True, repack=True, cpu_variant="", threads=0, threads_basis="", checked_tokens_per_s=None,
            checked_prompt_tokens_per_s=None, check_model="", check_s=0.0, checked_at=time.time(), key=key,
        )  # fmt: skip
    busy = cpu_busy_percent()
    chosen, attempts, seconds = run_check(models)
    final = chosen or ladder([])[-1]
    ok = attempts[-1] if chosen is not None else None
    return RuntimeChoice(
        configuration=final.name,
        reason=explain(chosen, attempts, cpu_features=cpu_features, version=version),
        works=chosen is not None,
        repack=final.extra_bufts,
        cpu_variant=final.cpu_variant,
        threads=0,
        threads_basis="",
        checked_tokens_per_s=ok.gen_tokens_per_s if ok else None,
        checked_prompt_tokens_per_s=ok.prompt_tokens_per_s if ok else None,
        check_model=model_label,
        check_s=seconds,
        checked_at=time.time(),
        attempts=attempts,
        key=key,
        busy_percent=busy,
    )


def cpu_busy_percent(window_s: float = 0.1) -> float | None:
    """How much of the CPU (all cores, %) is in use over a short window: before the check, that is
    other programs. None where psutil cannot tell."""
    try:
        import psutil

        return float(psutil.cpu_percent(interval=window_s))
    except Exception:  # noqa: BLE001 (a sandbox without /proc/stat: the figure is only a hint)
        return None


def llama_child_env(**extra: str) -> dict[str, str]:
    """:func:`~desktop_app.core.child.child_env` plus the llama.cpp configuration the runtime check
    chose: every child that runs llama.cpp (engine, compare, measure, quantize) starts with it."""
    return child_env(**{RUNTIME_ENV: runtime_for_children().to_json(), **extra})


def runtime_for_children() -> RuntimeConfig:
    """The configuration (with threads) every llama.cpp child process runs with."""
    choice = ensure_runtime()
    if choice is None:
        n, _ = default_threads()
        return RuntimeConfig().with_threads(_threads_override or n)
    return choice.config.with_threads(choice.threads)
