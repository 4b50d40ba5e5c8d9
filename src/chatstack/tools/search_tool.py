"""The `search` tool: BM25 (bm25s) over a document store, by default the synthetic world's
encyclopedia, one article per person, including the people never seen in pretraining.

A store is any `SearchBackend` (a class with `search(query, k) -> list[dict]`); `BM25Store`
indexes documents from a `datasets.Dataset`, a jsonl/json/parquet file, a Hub dataset or a
datasets_cfg spec. A real web-search API fits behind the same interface.

    from chatstack.tools import search
    search("Where was Asha Quayle born?")   # '[1] Asha Quayle: Asha Quayle was born in ...'

    make_search_tool("docs.jsonl", text_column="body", k=3)     # the same tool over another store
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import datasets

from chatstack.errors import DataError

DEFAULT_STORE = "world:tiny"
DEFAULT_K = 2
SNIPPET_CHARS = 400


@runtime_checkable
class SearchBackend(Protocol):
    """Anything that answers a query with ranked documents: dicts with at least `text`, and
    optionally `title`, `id`, `score`. A web-search API client fits here."""

    def search(self, query: str, k: int) -> list[dict]: ...


class BM25Store:
    """BM25 over documents (bm25s; English stopwords, lower-cased word tokens). The title, when
    there is one, is indexed with the text."""

    def __init__(self, docs: datasets.Dataset | list[dict], text_column: str = "text",
                 title_column: str | None = "title", id_column: str | None = "id", where: str = "documents"):
        import bm25s

        if isinstance(docs, list):
            docs = datasets.Dataset.from_list(docs) if docs else None
        if docs is None or len(docs) == 0:
            raise DataError(f"search store {where}: no documents")
        columns = docs.column_names
        if text_column not in columns:
            raise DataError(f"search store {where}: no text column '{text_column}' (columns: {', '.join(columns)}); "
                            "name it with text_column=")
        self.where = where
        self.texts = [str(t or "") for t in docs[text_column]]
        self.titles = [str(t or "") for t in docs[title_column]] if title_column in columns else [""] * len(docs)
        self.ids = [str(i) for i in docs[id_column]] if id_column in columns else [str(i) for i in range(len(docs))]
        corpus = [f"{title}. {text}" if title else text for title, text in zip(self.titles, self.texts)]
        self._bm25s = bm25s
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)

    def __len__(self) -> int:
        return len(self.texts)

    def search(self, query: str, k: int = DEFAULT_K) -> list[dict]:
        tokens = self._bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)
        if not tokens or not tokens[0]:
            return []
        k = max(1, min(int(k), len(self.texts)))
        docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return [{"id": self.ids[i], "title": self.titles[i], "text": self.texts[i], "score": float(s)}
                for i, s in zip(docs[0].tolist(), scores[0].tolist()) if s > 0]


def load_store(store: Any = DEFAULT_STORE, text_column: str = "text", title_column: str | None = "title",
               id_column: str | None = "id") -> SearchBackend:
    """A backend from: a SearchBackend; a datasets.Dataset; "world:<preset>" or
    "world:<preset>:<seed>" (the world's encyclopedia); a path to a .jsonl/.json/.parquet/.csv
    file; a datasets_cfg name or spec mapping ({hub: ...}, {files: ...}, {builder: ...})."""
    if isinstance(store, datasets.Dataset):  # first: a Dataset has a .search method of its own (faiss)
        return BM25Store(store, text_column, title_column, id_column, where="(dataset)")
    if isinstance(store, SearchBackend):
        return store
    if isinstance(store, str) and store.startswith("world:"):
        from chatstack.world.datasets import world_seed_override

        preset, _, seed = store.split(":", 1)[1].partition(":")
        if seed and not seed.lstrip("-").isdigit():
            raise DataError(f"search store {store}: expected world:<preset> or world:<preset>:<seed>")
        return _world_store(preset or "tiny", int(seed) if seed else world_seed_override())
    if isinstance(store, (str, Path)) and Path(store).suffix in (".jsonl", ".json", ".parquet", ".csv", ".gz"):
        if not Path(store).is_file():
            raise DataError(f"search store {store}: file not found")
        if Path(store).stat().st_size == 0:
            raise DataError(f"search store {store}: the file is empty (expected one document per line)")
        return BM25Store(_load({"files": [str(store)]}, str(store)), text_column, title_column, id_column, where=str(store))
    if isinstance(store, (str, dict)):
        where = store if isinstance(store, str) else str(store)
        return BM25Store(_load(store, where), text_column, title_column, id_column, where=where)
    raise DataError(f"search store: cannot use a {type(store).__name__}; give a SearchBackend, a Dataset, "
                    "'world:<preset>', a .jsonl/.parquet path or a datasets_cfg spec")


def _load(spec, where: str) -> datasets.Dataset:
    from chatstack.data.loading import load_data

    try:
        ds = load_data(spec)
    except DataError as e:
        raise DataError(f"search store {where}: {e}") from None
    except Exception as e:  # noqa: BLE001 - name the store whatever went wrong below
        raise DataError(f"search store {where}: cannot load it: {type(e).__name__}: {e}") from e
    if not isinstance(ds, datasets.Dataset):
        raise DataError(f"search store {where}: expected one map-style split (no streaming, no test_size)")
    return ds


@lru_cache(maxsize=4)
def _world_store(preset: str, seed: int | None = None) -> BM25Store:
    """Keyed on the world seed too: a speedrun with --world_seed searches its own world."""
    from chatstack.world.datasets import encyclopedia, get_world

    return BM25Store(encyclopedia(get_world(preset, seed)), where=f"world:{preset}")


def format_results(hits: list[dict], snippet_chars: int = SNIPPET_CHARS) -> str:
    """What the model reads: numbered results, `[i] title: text` (text cut at a word boundary)."""
    if not hits:
        return "No results."
    lines = []
    for i, hit in enumerate(hits, 1):
        text = " ".join(str(hit.get("text", "")).split())
        if len(text) > snippet_chars:
            text = text[:snippet_chars].rsplit(" ", 1)[0] + " ..."
        title = hit.get("title")
        lines.append(f"[{i}] {title}: {text}" if title else f"[{i}] {text}")
    return "\n".join(lines)


def search(query: str) -> str:
    """Search the encyclopedia.

    Args:
        query: A person's full name, or other words to look for.

    Raises:
        Nothing: returns the best matching articles as numbered text, or "No results.".
    """
    return format_results(load_store(DEFAULT_STORE).search(query, DEFAULT_K))  # the world's store is cached


def make_search_tool(store: Any = DEFAULT_STORE, k: int = DEFAULT_K, snippet_chars: int = SNIPPET_CHARS, **columns):
    """A `search` tool over another store (same name, docstring and JSON schema)."""
    backend = load_store(store, **columns)

    def search(query: str) -> str:  # noqa: F811 - the tool's name is __name__
        return format_results(backend.search(query, k), snippet_chars)

    search.__doc__ = globals()["search"].__doc__
    search.backend = backend
    return search
