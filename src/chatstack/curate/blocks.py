"""The few pipeline blocks datatrove lacks, written against datatrove's own interfaces.

- `Py3LangidLID` + `OfflineLanguageFilter`: language identification whose model ships inside
  the py3langid wheel (datatrove's LanguageFilter downloads a fastText model at run time).
- `HtmlFolderReader`: a folder of .html / .html.gz files (datatrove reads WARC, not loose HTML).
- `TolerantJsonlReader`, `TolerantWarcReader`, `CountingParquetReader`: datatrove's readers,
  plus counted drops (empty text, malformed or non-UTF-8 lines, truncated archives) instead of
  silent skips or a crash mid-run; `strict=True` turns each into an error naming file and line.
- `OfflineURLFilter`: datatrove's URLFilter with the public-suffix list bundled in tldextract
  (no fetch at run time) and an explicit policy for documents that have no URL.
- `PIIFormatter` with phone numbers and replacement counts (datatrove's does emails and IPs).
- `WordCounter` and `flat_output_adapter`: the final word count and a fixed output schema.

Every class is module-level so datatrove's executors can pickle it (Slurm, Ray, multiprocess).
"""
from __future__ import annotations

import ast
import gzip
import json
import re
import warnings
from collections.abc import Iterable
from functools import partial

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.filters.url_filter import URLFilter
from datatrove.pipeline.formatters.pii import PIIFormatter, PIIReplacer
from datatrove.pipeline.readers import HuggingFaceDatasetReader, JsonlReader, ParquetReader, WarcReader
from datatrove.pipeline.readers.base import BaseDiskReader
from datatrove.utils.lid import LID
from datatrove.utils.logging import logger

# datatrove's URLFilter reads tldextract's `registered_domain`, deprecated (same value) in tldextract 5.3
warnings.filterwarnings("ignore", message="The 'registered_domain' property is deprecated", category=DeprecationWarning)


class CurateInputError(ValueError):
    """Raised inside a task when `strict: true` and the input is malformed (file and line named)."""


# --------------------------------------------------------------------------- language id
class Py3LangidLID(LID):
    """datatrove's LID interface over py3langid (model bundled in the wheel: no download).

    Scores are py3langid's normalised probabilities (`norm_probs=True`)."""

    def __init__(self, languages: list[str] | None = None, restrict_to: list[str] | None = None):
        super().__init__(languages)
        self.restrict_to = restrict_to
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            self._model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            if self.restrict_to:
                self._model.set_languages(self.restrict_to)
        return self._model

    def predict(self, doc: Document) -> tuple[tuple[str, float], dict[str, float]]:
        ranked = self.model.rank(doc.text.replace("\n", " "))
        scores = {lang: float(score) for lang, score in ranked}
        best = ranked[0] if ranked else ("und", 0.0)
        best = (best[0], float(best[1]))
        if self.languages:
            return best, {lang: scores.get(lang, 0.0) for lang in self.languages}
        return best, scores

    def __getstate__(self):  # the model is rebuilt in each worker, never pickled
        state = self.__dict__.copy()
        state["_model"] = None
        return state


class OfflineLanguageFilter(BaseFilter):
    """datatrove's LanguageFilter logic (same metadata, same keep rule) over any `LID`."""

    name = "🌍 Language ID"

    def __init__(self, lid: LID, languages: list[str] | None = None, language_threshold: float = 0.65,
                 label_only: bool = False, keep_top_pairs_threshold: float = -1, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.lid = lid
        self.languages = [languages] if isinstance(languages, str) else languages
        self.language_threshold = language_threshold
        self.label_only = label_only
        self.keep_top_pairs_threshold = keep_top_pairs_threshold

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        (lang, score), pairs = self.lid.predict(doc)
        doc.metadata["language"] = lang
        doc.metadata["language_score"] = score
        if self.keep_top_pairs_threshold != -1:
            for key, value in pairs.items():
                if value > self.keep_top_pairs_threshold:
                    doc.metadata[f"top_language_{key}_score"] = value
        if self.label_only:
            return True
        if self.languages:
            if any(s > self.language_threshold for s in pairs.values()):
                return True
            return False, "other_language" if lang not in self.languages else "low_confidence"
        return score > self.language_threshold or (False, "low_confidence")


# --------------------------------------------------------------------------- readers
_URL_RE = re.compile(r"^https?://", re.I)


def _parse_metadata(value):
    """Metadata as a dict: JSON strings and Python-repr strings (Dolma files) are parsed."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(value)
            except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
                continue
            if isinstance(parsed, dict):
                return parsed
        return {"metadata": value}
    return {} if value is None else {"metadata": value}


def web_adapter(self, data: dict, path: str, id_in_file: int | str) -> dict:
    """datatrove's default adapter, plus: string metadata parsed, and `url` found where web dumps
    keep it (top level, metadata.url / warc_url, or an id that is a URL), for the URL filter."""
    metadata = _parse_metadata(data.pop("metadata", None))
    text = data.pop(self.text_key, "")
    doc_id = data.pop(self.id_key, None)
    merged = {**metadata, **data}
    if not merged.get("url"):
        for key in ("warc_url", "WARC-Target-URI", "source_url"):
            if isinstance(merged.get(key), str) and merged[key]:
                merged["url"] = merged[key]
                break
        else:
            if isinstance(doc_id, str) and _URL_RE.match(doc_id):
                merged["url"] = doc_id
    if isinstance(merged.get("url"), str) and merged["url"] and not _URL_RE.match(merged["url"]):
        merged["url"] = "http://" + merged["url"]  # Dolma CC keeps urls without a scheme
    return {"text": text if isinstance(text, str) else ("" if text is None else str(text)),
            "id": str(doc_id) if doc_id is not None else f"{path}/{id_in_file}",
            "media": data.pop("media", []) if "media" in data else [],
            "metadata": merged}


class _CountEmptyMixin:
    """Count documents that the reader skips for having no text (datatrove only warns once)."""

    strict: bool = False

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file: int | str):
        doc = super().get_document_from_dict(data, source_file, id_in_file)
        if doc is None:
            self.stat_update("dropped_empty_text")
            if self.strict:
                raise CurateInputError(f"{source_file}:{id_in_file}: document has no text "
                                       f"(text_key='{self.text_key}', keys: {sorted(data)})")
        elif not isinstance(doc.text, str):
            doc.text = str(doc.text)
        return doc


class TolerantJsonlReader(_CountEmptyMixin, JsonlReader):
    """JsonlReader that counts (or, strict, raises on) malformed / non-UTF-8 / non-object lines.

    datatrove's JsonlReader logs a warning for a bad line, and on a non-UTF-8 byte it drops the
    whole rest of the file with one warning; here each line is decoded on its own."""

    def __init__(self, *args, strict: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.strict = strict

    def read_file(self, filepath: str):
        import orjson

        with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
            lineno = 0
            while True:
                try:
                    raw = f.readline()
                except (EOFError, OSError, gzip.BadGzipFile) as e:  # truncated / corrupt compressed file
                    self.stat_update("dropped_truncated_file")
                    msg = f"{filepath}: unreadable after line {lineno} ({type(e).__name__}: {e})"
                    if self.strict:
                        raise CurateInputError(msg) from e
                    logger.warning(msg + "; kept the lines before it")
                    return
                if not raw:
                    return
                lineno += 1
                if not raw.strip():
                    continue
                with self.track_time():
                    try:
                        row = orjson.loads(raw)
                        if not isinstance(row, dict):
                            raise ValueError(f"expected a JSON object, got {type(row).__name__}")
                    except (orjson.JSONDecodeError, ValueError) as e:
                        reason = "non_utf8" if _is_bad_utf8(raw) else "malformed_json"
                        self.stat_update(f"dropped_{reason}_line")
                        msg = f"{filepath}:{lineno}: {reason.replace('_', ' ')} line ({e}): {raw[:80]!r}"
                        if self.strict:
                            raise CurateInputError(msg) from None
                        logger.warning(msg)
                        continue
                    document = self.get_document_from_dict(row, filepath, lineno - 1)
                if document:
                    yield document


def _is_bad_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


class CountingParquetReader(_CountEmptyMixin, ParquetReader):
    def __init__(self, *args, strict: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.strict = strict


class CountingHFDatasetReader(_CountEmptyMixin, HuggingFaceDatasetReader):
    def __init__(self, *args, strict: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.strict = strict


class TolerantWarcReader(_CountEmptyMixin, WarcReader):
    """WarcReader that keeps the records before a truncation and counts what it skipped."""

    def __init__(self, *args, strict: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.strict = strict

    def read_file(self, filepath: str):
        from datatrove.pipeline.readers.warc import process_record
        from warcio.archiveiterator import ArchiveIterator

        with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
            iterator = iter(ArchiveIterator(f))
            ri = -1
            while True:
                try:
                    record = next(iterator)
                except StopIteration:
                    return
                except Exception as e:  # warcio raises ArchiveLoadFailed / EOFError / zlib errors
                    self.stat_update("dropped_truncated_file")
                    msg = f"{filepath}: WARC unreadable at record {ri + 1} ({type(e).__name__}: {e})"
                    if self.strict:
                        raise CurateInputError(msg) from e
                    logger.warning(msg + "; kept the records before it")
                    return
                ri += 1
                with self.track_time():
                    try:
                        extracted = process_record(record)
                    except Exception as e:  # a record cut in the middle of its payload
                        self.stat_update("dropped_truncated_file")
                        msg = f"{filepath}: WARC unreadable at record {ri} ({type(e).__name__}: {e})"
                        if self.strict:
                            raise CurateInputError(msg) from e
                        logger.warning(msg + "; kept the records before it")
                        return
                    if not extracted:
                        self.stat_update("skipped_non_html_records")
                        continue
                    document = self.get_document_from_dict(extracted, filepath, ri)
                if document:
                    yield document


_CANONICAL_RES = [
    re.compile(rb"<link[^>]+rel=[\"']canonical[\"'][^>]*href=[\"']([^\"'>]+)", re.I),
    re.compile(rb"<link[^>]+href=[\"']([^\"'>]+)[\"'][^>]*rel=[\"']canonical", re.I),
    re.compile(rb"<meta[^>]+property=[\"']og:url[\"'][^>]*content=[\"']([^\"'>]+)", re.I),
    re.compile(rb"<meta[^>]+content=[\"']([^\"'>]+)[\"'][^>]*property=[\"']og:url", re.I),
]
_CHARSET_RE = re.compile(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_-]+)", re.I)


class HtmlFolderReader(_CountEmptyMixin, BaseDiskReader):
    """One document per HTML file (`.html`, `.htm`, optionally gzip/zstd compressed).

    id = file name without extensions; url = the page's canonical / og:url link when it has one.
    Bytes are decoded as UTF-8, else the declared `<meta charset>`, else cchardet's guess;
    an undecodable file is a counted drop (`dropped_undecodable`)."""

    name = "📄 HTML files"
    _requires_dependencies = [("cchardet", "faust-cchardet")]

    def __init__(self, data_folder, paths_file=None, compression="infer", limit: int = -1, skip: int = 0,
                 file_progress: bool = False, doc_progress: bool = False, adapter=None, text_key: str = "text",
                 id_key: str = "id", default_metadata: dict = None, recursive: bool = True,
                 glob_pattern: str | None = None, shuffle_files: bool = False, strict: bool = False):
        super().__init__(data_folder, paths_file, limit, skip, file_progress, doc_progress, adapter, text_key,
                         id_key, default_metadata, recursive, glob_pattern or "**/*.htm*", shuffle_files)
        self.compression = compression
        self.strict = strict

    def read_file(self, filepath: str):
        with self.track_time():
            try:
                with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
                    raw = f.read()
            except (EOFError, OSError, gzip.BadGzipFile) as e:
                self.stat_update("dropped_truncated_file")
                if self.strict:
                    raise CurateInputError(f"{filepath}: unreadable ({type(e).__name__}: {e})") from e
                logger.warning(f"{filepath}: unreadable ({type(e).__name__}: {e}); skipped")
                return
            html = _decode_html(raw)
            if html is None:
                self.stat_update("dropped_undecodable")
                if self.strict:
                    raise CurateInputError(f"{filepath}: not decodable as UTF-8 or its declared charset")
                logger.warning(f"{filepath}: not decodable; skipped")
                return
            name = filepath.rsplit("/", 1)[-1]
            doc_id = name.split(".")[0]
            url = None
            head = raw[:200_000]
            for pattern in _CANONICAL_RES:
                m = pattern.search(head)
                if m:
                    url = m.group(1).decode("utf-8", "replace").strip()
                    break
            data = {self.text_key: html, self.id_key: doc_id}
            if url and _URL_RE.match(url):
                data["url"] = url
            document = self.get_document_from_dict(data, filepath, 0)
        if document:
            yield document


def _decode_html(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    m = _CHARSET_RE.search(raw[:4096])
    candidates = [m.group(1).decode("ascii", "ignore")] if m else []
    try:
        import cchardet

        guess = cchardet.detect(raw).get("encoding")
        if guess:
            candidates.append(guess)
    except ImportError:
        pass
    for enc in candidates:
        try:
            return raw.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
    return None


# --------------------------------------------------------------------------- URL filter
def _read_list(value) -> list[str] | None:
    """A YAML list, or a path to a text file with one entry per line (# comments)."""
    if value is None or isinstance(value, (list, tuple, set)):
        return list(value) if value is not None else None
    from pathlib import Path

    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"list file not found: {value}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


class OfflineURLFilter(URLFilter):
    """datatrove's URLFilter (its bundled block lists + yours), offline, with a `missing_url` policy."""

    def __init__(self, missing_url: str = "keep", extra_domains: Iterable = None, extra_urls: Iterable = None,
                 banned_words: Iterable = None, banned_subwords: Iterable = None,
                 soft_banned_words: Iterable = None, **kwargs):
        super().__init__(extra_domains=_read_list(extra_domains), extra_urls=_read_list(extra_urls),
                         banned_words=_read_list(banned_words), banned_subwords=_read_list(banned_subwords),
                         soft_banned_words=_read_list(soft_banned_words), **kwargs)
        from tldextract import TLDExtract

        # suffix_list_urls=() -> the public suffix snapshot shipped inside tldextract, no HTTP
        self.tldextractor = TLDExtract(suffix_list_urls=(), cache_dir=None)
        if missing_url not in ("keep", "drop"):
            raise ValueError(f"missing_url must be 'keep' or 'drop', got {missing_url!r}")
        self.missing_url = missing_url

    def filter(self, document: Document) -> bool | tuple[bool, str]:
        if not document.metadata.get("url"):
            self.stat_update("no_url")
            return True if self.missing_url == "keep" else (False, "no_url")
        with warnings.catch_warnings():  # see the filterwarnings above (pytest resets those)
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().filter(document)


# --------------------------------------------------------------------------- PII
# Phone numbers: digit groups separated by space, dot, dash (or / after a trunk 0), with an
# optional +country code and (area) code; 7-15 digits in all (ITU E.164), checked by the validator.
# Bare digit runs are left alone (ids, prices), and so are runs inside a list of numbers.
PHONE_REGEX = (
    r"(?<![\w@+./-])(?<!\d )"
    r"(?:"
    r"\+\d{1,3}(?:[ .-]?\(0?\d{0,4}\))?[ .-]?\d{1,5}(?:[ .-]\d{1,8}){1,5}"  # +44 (0)20 7946 0958, +33 1 42 68 53 00
    r"|1[ .-]\d{3}[ .-]\d{3}[ .-]\d{4}"                                      # 1-800-555-0132
    r"|\(\d{2,5}\)[ .-]?\d{3,4}[ .-]\d{3,5}"                                 # (415) 555-0132
    r"|\d{3}[ .-]\d{3}[ .-]\d{4}"                                            # 415-555-0132, 415.555.0132
    r"|0\d{1,4}[ .-]\d{3,4}[ .-]\d{3,4}"                                     # 020 7946 0958
    r"|0\d(?:[ .]\d{2}){4}"                                                   # 01 42 68 53 00
    r"|0\d{2,4}[ /-]\d{5,8}"                                                  # 030 1234567, 030/1234567
    r")"
    r"(?![\w@/-]|\.\d| \d)"
)
# datatrove's IPv4 pattern, bounded so that version numbers (8.0.1.27165) do not match
IPV4_REGEX = r"(?<![\d.])(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)(?![\d]|\.\d)"  # noqa: E501


def _phone_validator(match: str) -> bool:
    digits = sum(ch.isdigit() for ch in match)
    return 7 <= digits <= 15


class PIIWithPhonesFormatter(PIIFormatter):
    """datatrove's PIIFormatter (emails, public IPs) + phone numbers; counts what it replaced.

    The IP pattern is datatrove's with digit boundaries added (its own also matches the first
    four parts of a version number such as 8.0.1.27165)."""

    def __init__(self, remove_emails: bool = True, remove_ips: bool = True, only_remove_public_ips: bool = True,
                 remove_phones: bool = True, email_replacement=("email@example.com", "firstname.lastname@example.org"),
                 ip_replacement=None, phone_replacement=("<PHONE>",)):
        kwargs = {} if ip_replacement is None else {"ip_replacement": ip_replacement}
        super().__init__(remove_emails=remove_emails, remove_ips=remove_ips,
                         only_remove_public_ips=only_remove_public_ips, email_replacement=email_replacement, **kwargs)
        self.remove_phones = remove_phones
        self.ip_replacer.regex = re.compile(IPV4_REGEX)
        self.phone_replacer = PIIReplacer(PHONE_REGEX, phone_replacement, validator=_phone_validator)

    def _replace(self, replacer: PIIReplacer, text: str, label: str) -> tuple[str, int]:
        count = 0

        def repl(match):
            nonlocal count
            found = match.group(0)
            if replacer.validator and not replacer.validator(found):
                return found
            count += 1
            out = replacer.replacements[replacer._replace_i]
            replacer._replace_i = (replacer._replace_i + 1) % len(replacer.replacements)
            return out

        text = replacer.regex.sub(repl, text)
        if count:
            self.stat_update(label, value=count)
        return text, count

    def format(self, text: str) -> str:
        found = 0
        for enabled, replacer, label in ((self.remove_emails, self.emails_replacer, "emails_replaced"),
                                         (self.remove_ips, self.ip_replacer, "ips_replaced"),
                                         (self.remove_phones, self.phone_replacer, "phones_replaced")):
            if enabled:
                text, n = self._replace(replacer, text, label)
                found += n
        if found:
            self.stat_update("docs_with_pii")
        return text


# --------------------------------------------------------------------------- counting / output
_WS = re.compile(r"\S+")


class WordCounter(PipelineStep):
    """Whitespace words per document (`metadata.word_count`), for the summary when no tokenizer is
    configured (GPT-2-style BPE gives about 1.3 tokens per English word)."""

    name = "📊 Words"
    type = "🔢 - COUNTER"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            n = len(_WS.findall(doc.text))
            doc.metadata["word_count"] = n
            self.stat_update("words", value=n)
            self.stat_update("chars", value=len(doc.text))
            yield doc


# column types of the output (the rest are strings); a fixed schema, so parquet never infers
# `null` from a first row without a url, and json readers never meet a drifting type
COLUMN_TYPES = {"language_score": "float", "word_count": "int", "token_count": "int", "duplicate_count": "int",
                "minhash_cluster_size": "int", "minhash_cluster_id": "int"}


def _cast(value, kind: str):
    if value is None:
        return None
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except (TypeError, ValueError):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _output_adapter(columns: tuple[str, ...], writer, document: Document) -> dict:
    row = {"text": document.text, "id": str(document.id)}
    for col in columns:
        row[col] = _cast(document.metadata.get(col), COLUMN_TYPES.get(col, "str"))
    return row


def flat_output_adapter(columns: Iterable[str]):
    """A writer adapter giving every row the same columns (text, id, then `columns`, null if absent),
    each with one type (COLUMN_TYPES, else string)."""
    return partial(_output_adapter, tuple(columns))


def output_schema(columns: Iterable[str]):
    import pyarrow as pa

    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}
    return pa.schema([("text", pa.string()), ("id", pa.string())]
                     + [(c, types[COLUMN_TYPES.get(c, "str")]) for c in columns])


def doc_text(doc: Document) -> str:
    """Content getter of exact dedup (its return annotation picks datatrove's string hash)."""
    return doc.text
