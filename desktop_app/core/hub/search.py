"""Search the Hub (text, sort, GGUF and parameter-size filters, author), through huggingface_hub."""

from __future__ import annotations

from dataclasses import dataclass

from desktop_app.core.hub.errors import endpoint, translate_errors

SORTS = {
    "downloads": "downloads",
    "likes": "likes",
    "trending": "trending_score",
    "updated": "last_modified",
}


@dataclass
class SearchResult:
    repo_id: str
    downloads: int
    likes: int
    last_modified: str | None
    gguf: bool
    params: int | None  # total parameters, from the Hub's GGUF or safetensors metadata
    pipeline_tag: str | None = None
    gated: bool = False

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def search_models(
    query: str = "",
    *,
    sort: str = "downloads",
    gguf_only: bool = True,
    text_generation: bool = False,
    author: str | None = None,
    min_params: int | None = None,
    max_params: int | None = None,
    limit: int = 30,
    token: str | None = None,
) -> list[SearchResult]:
    """Models on the Hub, most relevant first.

    Raises:
        HubUnreachableError, HubError.
    """
    from huggingface_hub import HfApi

    from desktop_app.core.secrets import get_hf_token

    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    api = HfApi(endpoint=endpoint(), token=token or get_hf_token())

    def call():
        return list(
            api.list_models(
                search=query or None,
                sort=SORTS[sort],
                filter="gguf" if gguf_only else None,
                pipeline_tag="text-generation" if text_generation else None,
                author=author or None,
                limit=limit,
                expand=["downloads", "likes", "lastModified", "gguf", "safetensors", "pipeline_tag", "gated", "tags"],
            )
        )

    models = translate_errors(f"Searching for {query!r}" if query else "Searching the Hub", call)
    out = []
    for m in models:
        gguf = getattr(m, "gguf", None) or {}
        st = getattr(m, "safetensors", None)
        params = (gguf.get("total") if isinstance(gguf, dict) else None) or (getattr(st, "total", None) if st else None)
        tags = getattr(m, "tags", None) or []
        r = SearchResult(
            repo_id=m.id,
            downloads=int(getattr(m, "downloads", 0) or 0),
            likes=int(getattr(m, "likes", 0) or 0),
            last_modified=m.last_modified.isoformat() if getattr(m, "last_modified", None) else None,
            gguf=bool(gguf) or "gguf" in tags,
            params=int(params) if params else None,
            pipeline_tag=getattr(m, "pipeline_tag", None),
            gated=bool(getattr(m, "gated", False)),
        )
        if min_params and (r.params is None or r.params < min_params):
            continue
        if max_params and (r.params is None or r.params > max_params):
            continue
        out.append(r)
    return out
