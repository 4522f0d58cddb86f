"""The quant files of a Hub repo (split parts grouped), each with its predicted fit on this machine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from desktop_app.core.gguf.model_info import model_info_from_headers
from desktop_app.core.gguf.quant_names import STANDARD_QUANTS, quant_from_filename
from desktop_app.core.gguf.split import group_parts
from desktop_app.core.hub.errors import HubError, endpoint, translate_errors
from desktop_app.core.kinds import Verdict
from desktop_app.core.memory import Machine, Predictor, RunSettings, model_shape
from desktop_app.core.memory.explain import QuantOption, quant_options
from desktop_app.core.memory.predictor import Prediction


@dataclass
class RepoFile:
    filename: str  # first part
    parts: list[str]
    quant: str
    size_bytes: int
    sha256: list[str]  # LFS sha256 of each part
    mmproj: bool = False
    bits_per_weight: float | None = None
    header_bytes_fetched: int = 0
    prediction: Prediction | None = None
    shape: object | None = None  # ModelShape, kept so the fit can be recomputed for new settings
    error: str = ""

    @property
    def shards(self) -> int:
        return len(self.parts)


@dataclass
class RepoQuants:
    repo_id: str
    files: list[RepoFile]
    gated: bool = False
    license: str | None = None
    card_markdown: str = ""
    safetensors_only: bool = False
    notes: list[str] = field(default_factory=list)

    def recommended(self) -> tuple[RepoFile | None, str]:
        """Largest quant that fits fully on the GPU, else largest that fits in RAM with headroom."""
        ok = [(f, f.prediction) for f in self.files if f.prediction is not None and not f.mmproj]
        full = [f for f, p in ok if p.verdict == Verdict.FULL_GPU]
        if full:
            best = max(full, key=lambda f: f.size_bytes)
            return best, f"{best.quant} is the largest quant that fits entirely on your GPU."
        ram = [f for f, p in ok if p.verdict in (Verdict.CPU_ONLY, Verdict.PARTIAL_GPU)]
        if ram:
            best = max(ram, key=lambda f: f.size_bytes)
            return best, f"{best.quant} is the largest quant that fits in your memory with room to spare."
        return None, "None of these quants fits this computer at this context; try a shorter context."


def quant_name(filename: str) -> str:
    """The quant a file's name says, or "?" (then the header decides)."""
    return quant_from_filename(filename) or "?"


def group_files(siblings: list[tuple[str, int, str]]) -> list[RepoFile]:
    """(name, size, sha256) of every .gguf → one RepoFile per model (split parts together)."""
    ggufs = [s for s in siblings if s[0].lower().endswith(".gguf")]
    files = []
    for parts in group_parts(ggufs, lambda s: s[0]):
        names = [p[0] for p in parts]
        files.append(RepoFile(names[0], names, quant_name(names[0]), sum(p[1] for p in parts), [p[2] for p in parts],
                              mmproj=len(parts) == 1 and "mmproj" in names[0].lower()))  # fmt: skip
    return sorted(files, key=lambda f: (f.mmproj, f.size_bytes))


def repo_quants(
    repo_id: str,
    machine: Machine,
    settings: RunSettings,
    *,
    revision: str = "main",
    token: str | None = None,
    with_card: bool = True,
    workers: int = 8,
) -> RepoQuants:
    """List the repo's GGUF quants and predict each one's fit from its remote header.

    Raises:
        HubRepoNotFoundError, HubGatedError, HubUnreachableError, HubError.
    """
    from huggingface_hub import HfApi

    from desktop_app.core.hub.remote_header import fetch_model_headers
    from desktop_app.core.secrets import get_hf_token

    tok = token or get_hf_token()
    api = HfApi(endpoint=endpoint(), token=tok)
    info = translate_errors(repo_id, lambda: api.model_info(repo_id, revision=revision, files_metadata=True))
    siblings = [(s.rfilename, int(s.size or 0), (s.lfs.sha256 if s.lfs else "") or "") for s in info.siblings or []]
    card_data = getattr(info, "card_data", None) or getattr(info, "cardData", None)
    license_ = None
    if card_data is not None:
        license_ = getattr(card_data, "license", None) or (
            card_data.get("license") if isinstance(card_data, dict) else None
        )
    files = group_files(siblings)
    result = RepoQuants(repo_id, files, gated=bool(getattr(info, "gated", False)), license=license_)
    if not files:
        names = {n for n, _s, _h in siblings}
        result.safetensors_only = any(n.endswith(".safetensors") for n in names)
        if not result.safetensors_only:
            raise HubError(f"{repo_id} has no GGUF files and no safetensors weights to convert.")
    if result.safetensors_only:
        _plan_conversion(result, api, repo_id, revision, machine, settings)
    if with_card and any(n == "README.md" for n, _s, _h in siblings):
        result.card_markdown = _read_card(repo_id, revision, tok)

    def fit(f: RepoFile) -> None:
        if f.mmproj or not f.parts:  # projectors, and quants that only conversion would make
            return
        try:
            remote = fetch_model_headers(repo_id, f.filename, revision=revision, token=tok)
            shape = model_shape(remote.headers)
            f.header_bytes_fetched = remote.bytes_fetched
            n = sum(t.n_bytes for t in shape.tensors)
            params = shape.n_params
            f.bits_per_weight = n * 8 / params if params else None
            f.shape = shape
            if f.quant == "?":  # the file name does not say: the header does
                f.quant = model_info_from_headers(remote.headers, file_name=f.filename).quant
            f.prediction = Predictor(shape, machine).predict(settings)
        except Exception as exc:  # one bad file must not hide the others
            f.error = str(exc)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fit, files))
    return result


def _plan_conversion(result: RepoQuants, api, repo_id: str, revision: str, machine: Machine, settings) -> None:
    """For safetensors-only repos: the quants conversion would produce, sized and fitted from config.json."""
    import json

    from huggingface_hub import hf_hub_download

    from desktop_app.core.memory.hf_config import shape_from_hf_config
    from desktop_app.core.paths import hf_hub_cache_dir

    def read(name: str) -> dict | None:
        try:
            path = hf_hub_download(repo_id, name, revision=revision, token=api.token, endpoint=endpoint(),
                                   cache_dir=hf_hub_cache_dir())  # fmt: skip
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except Exception:
            return None

    config = read("config.json")
    if config is None:
        result.notes.append("This repo has safetensors weights but no readable config.json to predict from.")
        return
    index = read("model.safetensors.index.json")
    try:
        f16, header = shape_from_hf_config(config, (index or {}).get("weight_map") if index else None)
    except (ValueError, KeyError, TypeError) as exc:
        result.notes.append(str(exc))
        return
    f16_option = QuantOption("F16", f16.file_bytes, f16, Predictor(f16, machine))
    for option in [*quant_options(f16, machine, tuple(reversed(STANDARD_QUANTS))), f16_option]:
        rf = RepoFile(f"(convert) {option.quant}", [], option.quant, option.file_bytes, [], shape=option.shape)
        rf.prediction = option.predictor.predict(settings)
        n = sum(t.n_bytes for t in option.shape.tensors)
        rf.bits_per_weight = n * 8 / option.shape.n_params if option.shape.n_params else None
        result.files.append(rf)
    result.notes.append("No GGUF files here: sizes are predicted for the quants that conversion would produce.")


def _read_card(repo_id: str, revision: str, token: str | None) -> str:
    from huggingface_hub import hf_hub_download

    try:
        from desktop_app.core.paths import hf_hub_cache_dir

        path = hf_hub_download(
            repo_id, "README.md", revision=revision, token=token, endpoint=endpoint(), cache_dir=hf_hub_cache_dir()
        )
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except Exception:
        return ""
    if text.startswith("---"):  # drop the YAML front matter
        end = text.find("\n---", 3)
        if end != -1:
            text = text[end + 4 :]
    return text.strip()
