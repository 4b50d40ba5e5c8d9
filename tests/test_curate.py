"""`chatstack curate`: datatrove pipelines from YAML, on the real web samples in ../shared/data
and on synthetic bad input. Offline: any TCP/UDP connection attempt fails the test."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import yaml

pytest.importorskip("datatrove")

from chatstack.config import parse_config  # noqa: E402
from chatstack.curate import CurateConfig, curate  # noqa: E402
from chatstack.curate.config import check_config  # noqa: E402
from chatstack.data import load_data  # noqa: E402
from chatstack.errors import ConfigError, DataError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHATSTACK_SHARED_DATA", REPO.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not (SHARED / "web_text_cc").is_dir(), reason=f"no shared data at {SHARED}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every block must work offline: refuse internet sockets (local IPC sockets still work)."""
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network access attempted in an offline test: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def make_cfg(tmp_path, **overrides) -> CurateConfig:
    base = {"output_dir": str(tmp_path / "out"), "tasks": 1, "workers": 1, "progress": False}
    return parse_config(CurateConfig, None, [], **{**base, **overrides})


def read_output(out_dir: Path) -> list[dict]:
    rows = []
    for f in sorted((out_dir / "output").glob("*.jsonl.gz")):
        with gzip.open(f, "rt") as fh:
            rows += [json.loads(line) for line in fh]
    return rows


def reader_row(summary: dict) -> dict:
    return next(r for r in summary["funnel"] if r["step"].startswith("📖"))


def row(summary: dict, label: str) -> dict:
    return next(r for r in summary["funnel"] if r["label"] == label)


# ----------------------------------------------------------------------------- config
def test_config_errors_name_the_key_and_the_valid_ones(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input_path: x\ninput_fromat: jsonl\n")
    with pytest.raises(ConfigError, match=r"(?s)input_fromat.*did you mean input_format.*Valid keys"):
        parse_config(CurateConfig, bad)

    def check(**kw):
        return check_config(make_cfg(tmp_path, input_path=str(tmp_path), **kw), "test.yaml")

    with pytest.raises(ConfigError, match=r"steps\.gopher_quality \(GopherQualityFilter\): unknown key.*"
                                          r"'min_words'.*min_doc_words"):
        check(steps={"gopher_quality": {"min_words": 10}})
    with pytest.raises(ConfigError, match=r"unknown step 'gopher'.*Valid steps: url_filter"):
        check(steps={"gopher": {}})
    with pytest.raises(ConfigError, match=r"steps\.language\.backend: 'cld3'"):
        check(steps={"language": {"backend": "cld3"}})
    with pytest.raises(ConfigError, match=r"dedup\.minhash: unknown key.*ngrams.*n_grams"):
        check(dedup={"minhash": {"ngrams": 5}})
    with pytest.raises(ConfigError, match=r"input_format warc gives raw HTML: add `extract"):
        check(input_format="warc", steps={"language": {}})
    with pytest.raises(ConfigError, match=r"C4BadWordsFilter downloads"):
        check(steps={"badwords": {"class": "datatrove.pipeline.filters.C4BadWordsFilter"}})
    # any datatrove block by class path, its options checked against its constructor
    steps = check(steps={"sample": {"class": "datatrove.pipeline.filters.SamplerFilter", "rate": 0.5}})
    assert steps == {"sample": {"class": "datatrove.pipeline.filters.SamplerFilter", "rate": 0.5}}


def test_fasttext_language_backend_fails_clearly_offline(tmp_path):
    from chatstack.curate.pipeline import build_stages

    (tmp_path / "in").mkdir()
    cfg = make_cfg(tmp_path, input_path=str(tmp_path / "in"), steps={"language": {"backend": "ft176"}},
                   dedup={"exact": False, "minhash": False})
    with pytest.raises(ConfigError, match=r"backend ft176.*backend: py3langid"):
        build_stages(cfg, "test.yaml")


def test_recipes_validate():
    for recipe in ("tiny-web/curate.yaml", "gpt2-124m/curate.yaml"):
        path = REPO / "recipes" / recipe
        cfg = parse_config(CurateConfig, path)
        steps = check_config(cfg, str(path))
        assert "language" in steps and "pii" in steps, recipe


def test_slurm_executor_options_are_datatrove_s(tmp_path):
    from chatstack.curate.pipeline import build_stages, make_executors

    (tmp_path / "in").mkdir()
    cfg = make_cfg(tmp_path, input_path=str(tmp_path / "in"), steps={"pii": {}}, executor="slurm",
                   tasks=8, executor_options={"partition": "cpu", "time": "01:00:00", "cpus_per_task": 2})
    stages, _ = build_stages(cfg, "t.yaml")
    executors = make_executors(cfg, stages, "t.yaml")
    assert [type(e).__name__ for e in executors] == ["SlurmPipelineExecutor"] * 7
    assert executors[-1].depends is executors[-2]  # each stage waits for the one before
    assert executors[4].tasks == 14  # one MinHash bucket task per bucket
    if not shutil.which("sbatch"):
        with pytest.raises(ConfigError, match=r"no `sbatch` on this machine"):
            curate(cfg, "t.yaml")
    cfg.executor_options = {"partition": "cpu", "time": "1:00:00", "queue": "x"}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['queue'\] for SlurmPipelineExecutor.*Valid keys"):
        make_executors(cfg, stages, "t.yaml")


# ----------------------------------------------------------------------------- blocks
def test_py3langid_filter_offline():
    from datatrove.data import Document

    from chatstack.curate.blocks import OfflineLanguageFilter, Py3LangidLID

    flt = OfflineLanguageFilter(Py3LangidLID(languages=["en"]), languages=["en"], language_threshold=0.65)
    texts = {
        "en": "The city council approved the new budget on Tuesday after a long debate about schools and roads.",
        "fr": "Le conseil municipal a approuvé mardi le nouveau budget après un long débat sur les écoles.",
        "de": "Der Stadtrat hat am Dienstag nach einer langen Debatte über Schulen den neuen Haushalt gebilligt.",
    }
    results = {lang: flt.filter(Document(text=t, id=lang)) for lang, t in texts.items()}
    assert results["en"] is True
    assert results["fr"] == (False, "other_language") and results["de"] == (False, "other_language")
    doc = Document(text=texts["fr"], id="x")
    OfflineLanguageFilter(Py3LangidLID(), languages=None, label_only=True).filter(doc)
    assert doc.metadata["language"] == "fr" and doc.metadata["language_score"] > 0.9


def test_pii_emails_ips_phones():
    from chatstack.curate.blocks import PIIWithPhonesFormatter

    pii = PIIWithPhonesFormatter()
    secrets = ["jane.doe@example-mail.com", "8.8.4.4", "93.184.216.34", "(415) 555-0132", "415-555-0199",
               "+44 20 7946 0958", "+1 212 555 0147", "020 7946 0123"]
    text = ("Write to jane.doe@example-mail.com or ping 8.8.4.4 and 93.184.216.34. Call (415) 555-0132, "
            "415-555-0199, +44 20 7946 0958, +1 212 555 0147 or 020 7946 0123.")
    out = pii.format(text)
    for s in secrets:
        assert s not in out, s
    assert pii.stats["phones_replaced"].total == 5 and pii.stats["emails_replaced"].total == 1
    # numbers that are not PII stay: dates, years, prices, versions, private IPs, scores
    keep = ("On 2019-07-17 the 1990-2000 series cost $1,299.99 (v3.10.2); the router is 192.168.1.1; "
            "it won 3-2; ISBN 978-3-16-148410-0; call 911; population 8,336,817.")
    assert pii.format(keep) == keep


@needs_data
def test_truncated_warc_keeps_what_it_read(tmp_path):
    from chatstack.curate.blocks import CurateInputError, TolerantWarcReader

    src = SHARED / "web_html" / "warc" / "dolma_sample-0000.warc.gz"
    data = src.read_bytes()
    (tmp_path / "cut.warc.gz").write_bytes(data[: len(data) * 6 // 10])
    reader = TolerantWarcReader(str(tmp_path))
    docs = list(reader())
    full = list(TolerantWarcReader(str(src.parent), glob_pattern=src.name)())
    assert 0 < len(docs) < len(full)
    assert reader.stats["dropped_truncated_file"].total == 1
    assert all(d.metadata["url"].startswith("http") for d in docs)
    with pytest.raises(CurateInputError, match=r"cut\.warc\.gz: WARC unreadable at record \d+ \("):
        list(TolerantWarcReader(str(tmp_path), strict=True)())


# ----------------------------------------------------------------------------- runs
def _bad_jsonl(folder: Path) -> None:
    folder.mkdir()
    good = [{"text": f"Document number {i} is about the weather in Paris.", "url": f"http://example.com/{i}",
             "id": f"d{i}"} for i in range(3)]
    lines = [json.dumps(good[0]).encode(),
             b'{"text": "a line cut in the middle',                 # malformed JSON
             b'{"text": "caf\xe9 cr\xe8me", "id": "latin1"}',        # not UTF-8
             b"[1, 2, 3]",                                            # not an object
             json.dumps({"text": "", "id": "empty"}).encode(),        # empty document
             json.dumps({"body": "no text key", "id": "nokey"}).encode(),
             json.dumps(good[1]).encode(), b"", json.dumps(good[2]).encode()]
    (folder / "bad.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def test_bad_jsonl_lines_are_counted_drops(tmp_path):
    _bad_jsonl(tmp_path / "in")
    cfg = make_cfg(tmp_path, input_path=str(tmp_path / "in"), steps={"pii": {}},
                   dedup={"exact": False, "minhash": False})
    summary = curate(cfg, "test")
    reader = reader_row(summary)
    assert reader["out"] == 3
    assert reader["reasons"] == {"malformed_json_line": 2, "non_utf8_line": 1, "empty_text": 2}
    assert [r["id"] for r in read_output(tmp_path / "out")] == ["d0", "d1", "d2"]
    saved = json.loads((tmp_path / "out" / "curate_stats.json").read_text())
    assert saved["documents_out"] == 3 and saved["funnel"][0]["reasons"]["non_utf8_line"] == 1


def test_strict_mode_names_file_and_line_and_writes_nothing(tmp_path):
    _bad_jsonl(tmp_path / "in")
    cfg = make_cfg(tmp_path, input_path=str(tmp_path / "in"), steps={}, strict=True,
                   dedup={"exact": False, "minhash": False})
    with pytest.raises(DataError, match=r"stage 'filter' failed.*bad\.jsonl:2: malformed json line"):
        curate(cfg, "test")
    assert not (tmp_path / "out" / "output").exists()  # finished tasks wait in .output.partial for a resume


def test_no_documents_is_an_error(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text(json.dumps({"content": "x"}) + "\n")
    cfg = make_cfg(tmp_path, input_path=str(tmp_path / "in"), steps={}, dedup={"exact": False, "minhash": False})
    with pytest.raises(DataError, match=r"no documents read.*text_key 'text'"):
        curate(cfg, "test")


@needs_data
def test_html_folder_extraction_and_broken_pages(tmp_path):
    bench = SHARED / "web_html" / "article_extraction_benchmark"
    truth = json.loads(gzip.decompress((bench / "ground-truth.json.gz").read_bytes()))
    folder = tmp_path / "pages"
    folder.mkdir()
    english = ["0dd1357045727799a447563fd8851f4ebe79f042073ea16991a9b67aa595f81a",
               "04a6711caa7c687592777718866e781e976e0fe684faebe8b3cedcef8cd0ea34"]
    for key in english:
        shutil.copy(bench / "html" / f"{key}.html.gz", folder / f"{key}.html.gz")
    (folder / "broken.html").write_text("<html><body><div><p>Unclosed <b>tags</i> and </div> mis-nesting <p")
    (folder / "script-only.html").write_text("<html><head><script>var x = '<p>no text</p>';")
    (folder / "empty.html").write_bytes(b"")
    para = ("Le conseil municipal a vot\u00e9 le budget apr\u00e8s un d\u00e9bat anim\u00e9 sur les \u00e9coles, "
            "les routes et les parcs de la ville. ") * 8
    (folder / "latin1.html").write_bytes(
        f'<html><head><meta charset="iso-8859-1"><title>Budget</title></head><body><article><h1>Budget</h1>'
        f"<p>{para}</p><p>{para}</p></article></body></html>".encode("latin-1"))
    cfg = make_cfg(tmp_path, input_path=str(folder), input_format="html",
                   steps={"extract": {}, "language": {"backend": "py3langid", "label_only": True}},
                   dedup={"exact": False, "minhash": False})
    summary = curate(cfg, "test")
    assert reader_row(summary)["reasons"] == {"empty_text": 1}
    assert row(summary, "Trafilatura")["dropped"] == 1  # the script-only page: nothing to extract
    rows = {r["id"]: r for r in read_output(tmp_path / "out")}
    assert set(rows) == {*english, "latin1", "broken"}
    assert "Unclosed tags" in rows["broken"]["text"]  # what a browser would show
    assert "vot\u00e9 le budget" in rows["latin1"]["text"] and rows["latin1"]["language"] == "fr"
    from chatstack.curate.metrics import shingle_prf

    for key in english:
        p, r, f1 = shingle_prf(truth[key]["articleBody"], rows[key]["text"])
        assert f1 > 0.8, (key, p, r)
        assert rows[key]["url"] and rows[key]["url"].startswith("http")


@needs_data
def test_tiny_web_recipe_end_to_end_with_injected_duplicates(tmp_path):
    """The tiny-web recipe on real C4 docs plus exact and near copies: copies go, originals stay,
    the funnel is written, and the shards load through chatstack's data loading."""
    src = tmp_path / "in"
    src.mkdir()
    docs = []
    for name in ("olmo_c4-sample.01.jsonl.gz", "olmo_c4-sample.02.jsonl.gz", "olmo_c4-sample.03.jsonl.gz"):
        shutil.copy(SHARED / "web_text_cc" / name, src / name)
        with gzip.open(SHARED / "web_text_cc" / name, "rt") as f:
            docs += [json.loads(line) for line in f]
    longest = sorted(docs, key=lambda d: len(d["text"]), reverse=True)[:3]
    injected = []
    for i, d in enumerate(longest):
        injected.append({**d, "id": f"exact-copy-{i}"})
        words = d["text"].split(" ")
        words[len(words) // 2] = "remarkably"
        injected.append({**d, "id": f"near-copy-{i}", "text": " ".join(words) + " Read more."})
    with gzip.open(src / "zz_injected.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(d) + "\n" for d in injected)

    recipe = yaml.safe_load((REPO / "recipes" / "tiny-web" / "curate.yaml").read_text())
    steps = recipe["steps"]
    steps["url_filter"] = {"use_integrated_lists": False, "banned_words": ["casino"]}  # the 5M-domain list takes 15s
    cfg = parse_config(CurateConfig, REPO / "recipes" / "tiny-web" / "curate.yaml",
                       ["--input_path", str(src), "--output_dir", str(tmp_path / "out"), "--tasks", "2",
                        "--workers", "1", "--progress", "false"], steps=steps)
    summary = curate(cfg, "tiny-web")

    rows = read_output(tmp_path / "out")
    texts = [r["text"] for r in rows]
    assert row(summary, "exact dedup")["dropped"] == 3
    assert row(summary, "MinHash dedup")["dropped"] == 3
    assert len(set(texts)) == len(texts)
    # each (original, exact copy, near copy) group keeps exactly one document: no distinct doc lost
    for i, original in enumerate(longest):
        group = {original["text"], injected[2 * i + 1]["text"]}
        assert sum(t in group for t in texts) == 1, f"group {i}"
    assert summary["documents_in"] == 36 and summary["documents_out"] == len(rows)
    assert summary["words_out"] == sum(r["word_count"] for r in rows)
    assert all(r["language"] == "en" and r["language_score"] > 0.65 for r in rows)
    names = [r["label"] for r in summary["funnel"]]
    assert names.index("Language ID") < names.index("Gopher Quality") < names.index("MinHash dedup")
    assert json.loads((tmp_path / "out" / "curate_stats.json").read_text())["funnel"]

    # the shards feed the next stage the way datasets_cfg/web_tiny.yaml does
    spec = yaml.safe_load((REPO / "datasets_cfg" / "web_tiny.yaml").read_text())
    spec["data_files"] = str(tmp_path / "out" / "output" / "*.jsonl.gz")
    (tmp_path / "web.yaml").write_text(yaml.safe_dump(spec))
    assert len(load_data(str(tmp_path / "web.yaml"))) == len(rows)
    try:
        from chatstack.tokenizer import TokenizerConfig, train_tokenizer
    except ImportError:
        return
    tok_cfg = parse_config(TokenizerConfig, REPO / "recipes" / "tiny-web" / "tokenizer.yaml",
                           ["--dataset", str(tmp_path / "web.yaml"), "--output_dir", str(tmp_path / "tok"),
                            "--vocab_size", "400"])
    assert train_tokenizer(tok_cfg)["bytes_per_token"] > 1.5


def test_cli_reports_config_errors(tmp_path, capsys):
    from chatstack.cli import main

    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump({"input_path": str(tmp_path), "steps": {"fineweb_quality": {"line_punct": 1}}}))
    assert main(["curate", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "steps.fineweb_quality (FineWebQualityFilter): unknown key(s) 'line_punct'" in err
    assert "line_punct_thr" in err


def test_parquet_hf_dataset_tokens_and_resume(tmp_path):
    """Parquet in and out, a `datasets` builder as input (the path FineWeb takes by dataset id),
    token counts with a local tokenizer.json, and a resumed run that keeps the finished output."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    texts = [f"Report {i}: the river rose by {i} centimetres near the old mill, officials said." for i in range(12)]
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"text": texts + [""], "id": [f"p{i}" for i in range(13)],
                             "url": [None] + [f"https://news.example.org/{i}" for i in range(1, 13)]}),
                   tmp_path / "pq" / "part.parquet")
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=200, special_tokens=["[UNK]"]))
    tok.save(str(tmp_path / "tokenizer.json"))

    cfg = make_cfg(tmp_path, input_path=str(tmp_path / "pq"), input_format="parquet", output_format="parquet",
                   steps={"pii": {}}, tokenizer=str(tmp_path / "tokenizer.json"),
                   dedup={"exact": {}, "minhash": False})
    summary = curate(cfg, "test")
    assert reader_row(summary)["reasons"] == {"empty_text": 1}
    assert summary["documents_out"] == 12 and summary["tokens_out"] > summary["words_out"] > 0
    table = pq.read_table(sorted((tmp_path / "out" / "output").glob("*.parquet"))[0])
    assert table.column_names[:3] == ["text", "id", "url"] and table.num_rows == 12
    assert str(table.schema.field("url").type) == "string"  # not inferred as null from the first row
    assert all(n > 0 for n in table.column("token_count").to_pylist())

    cfg.resume = True  # everything completed: nothing reruns, the output stays
    again = curate(cfg, "test")
    assert again["documents_out"] == 12
    assert len(list((tmp_path / "out" / "output").glob("*.parquet"))) == 1

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"text": t, "id": f"j{i}"}) + "\n" for i, t in enumerate(texts)))
    cfg = make_cfg(tmp_path / "hf", input_path="json", input_format="hf_dataset", steps={},
                   reader_options={"dataset_options": {"data_files": str(data), "split": "train"}},
                   dedup={"exact": False, "minhash": False})
    assert curate(cfg, "test")["documents_out"] == 12


@needs_data
def test_common_crawl_warc_to_text(tmp_path):
    cfg = make_cfg(tmp_path, input_path=str(SHARED / "web_html" / "warc"), input_format="warc",
                   input_glob="commoncrawl_whirlwind.warc.gz",
                   steps={"extract": {}, "language": {"label_only": True}}, dedup={"exact": False, "minhash": False})
    summary = curate(cfg, "test")
    assert reader_row(summary)["counts"]["skipped_non_html_records"] == 3  # warcinfo, request, metadata
    (doc,) = read_output(tmp_path / "out")
    assert doc["url"] == "https://an.wikipedia.org/wiki/Escopete" and "<" not in doc["text"]
    assert doc["language"] in ("an", "es")  # an Aragonese Wikipedia page


@needs_data
def test_quality_filters_prefer_what_humans_labelled_good():
    """FineWeb's heuristics on DCLM documents with human labels: good ones are kept far more often."""
    from datatrove.data import Document

    from chatstack.curate.config import CurateConfig as C
    from chatstack.curate.pipeline import Layout, make_step

    recipe = REPO / "recipes" / "tiny-web" / "curate.yaml"
    cfg = parse_config(C, recipe)
    steps = check_config(cfg, str(recipe))
    with gzip.open(SHARED / "web_quality_labels" / "dclm_agreement_data.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    rows = [r for r in rows if r["label"] == 1][:40] + [r for r in rows if r["label"] == 0][:40]
    stream = [Document(text=r["text"], id=str(i)) for i, r in enumerate(rows)]
    for name in ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"):
        stream = list(make_step(name, steps[name], cfg, Layout("/unused"), "t").run(iter(stream)))
    kept = {int(d.id) for d in stream}
    good = [i for i, r in enumerate(rows) if r["label"] == 1]
    bad = [i for i, r in enumerate(rows) if r["label"] == 0]
    keep_good = sum(i in kept for i in good) / len(good)
    keep_bad = sum(i in kept for i in bad) / len(bad)
    assert keep_good > 0.7 and keep_bad < 0.5, (keep_good, keep_bad)


@needs_data
def test_pii_rarely_touches_business_text():
    """llm-foundry's enterprise passages labelled not sensitive: the formatter leaves almost all alone."""
    from chatstack.curate.blocks import PIIWithPhonesFormatter

    pii = PIIWithPhonesFormatter()
    with gzip.open(SHARED / "pii" / "enterprise_pii_classification.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    passages = [r["query"].split("Passage: '''", 1)[-1].rsplit("'''", 1)[0] for r in rows
                if r["choices"][r["gold"]] == "no"][:500]
    changed = sum(pii.format(p) != p for p in passages)
    assert changed <= 0.02 * len(passages), changed
