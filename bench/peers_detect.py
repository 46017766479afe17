#!/usr/bin/env python3
"""`cargo xtask bench detect`, peer side: Microsoft Presidio and Yelp detect-secrets over the same
corpus as apisense (bench/detect_corpus.py), single process, best of N passes.

Writes {"tools": [{"tool", "kinds", "bytes", "seconds", "seconds_best", "mb_per_s", "docs": [{"id",
"hits": [{"kind", "value", "count"}]}]}]}: every hit carries the value the tool reported.

Presidio configurations (its default AnalyzerEngine needs the spaCy model en_core_web_lg, which is
downloaded from GitHub, out of reach here; see BENCHMARKS.md):
- "presidio (pattern recognizers)": CreditCardRecognizer and IbanRecognizer called directly
  (`analyze(text, entities, nlp_artifacts=None)`): exactly the regex + checksum code that decides
  CREDIT_CARD and IBAN_CODE in the default engine, without any NLP cost;
- "presidio (AnalyzerEngine, blank spaCy)": the full AnalyzerEngine with every default recognizer,
  its NLP engine fed a blank spaCy English pipeline (tokenizer only, no trained model).
detect-secrets: `scan_line` on every line of every document, with its default plugins and filters.
"""

import argparse
import json
import os
import sys
import tempfile
import time


def load(path):
    docs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                docs.append((d["id"], d["text"]))
    return docs


def timed(docs, fn, reps):
    """fn(text) -> list of (kind, value); detections come from the first pass."""
    results, times = None, []
    for rep in range(reps):
        out = []
        start = time.perf_counter()
        for doc_id, text in docs:
            hits = fn(text)
            if rep == 0 and hits:
                out.append((doc_id, hits))
        times.append(time.perf_counter() - start)
        if rep == 0:
            results = out
    return results, times


def entry(tool, kinds, docs, results, times, note):
    size = sum(len(t.encode("utf-8")) for _, t in docs)
    best = min(times)
    return {
        "tool": tool,
        "kinds": kinds,
        "note": note,
        "bytes": size,
        "reps": len(times),
        "seconds": times,
        "seconds_best": best,
        "mb_per_s": size / 1e6 / best,
        "value_matching": True,
        "docs": [{"id": i, "hits": [{"kind": k, "value": v, "count": 1} for k, v in hits]} for i, hits in results],
    }


PRESIDIO_KINDS = {"CREDIT_CARD": "card", "IBAN_CODE": "iban"}


def presidio_patterns(docs, reps):
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, IbanRecognizer

    recognizers = [CreditCardRecognizer(), IbanRecognizer()]

    def fn(text):
        out = []
        for r in recognizers:
            for res in r.analyze(text, entities=r.supported_entities, nlp_artifacts=None):
                out.append((PRESIDIO_KINDS.get(res.entity_type, "other:" + res.entity_type), text[res.start:res.end]))
        return out

    results, times = timed(docs, fn, reps)
    return entry("presidio (pattern recognizers)", ["card", "iban"], docs, results, times,
                 "CreditCardRecognizer + IbanRecognizer, analyze(text, entities, nlp_artifacts=None)")


def presidio_engine(docs, reps):
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    blank = os.path.join(tempfile.mkdtemp(prefix="apisense-bench-spacy-"), "blank_en")
    spacy.blank("en").to_disk(blank)
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": blank}]})
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])

    def fn(text):
        return [(PRESIDIO_KINDS.get(r.entity_type, "other:" + r.entity_type), text[r.start:r.end])
                for r in engine.analyze(text, language="en")]

    results, times = timed(docs, fn, reps)
    return entry("presidio (AnalyzerEngine, blank spaCy)", ["card", "iban"], docs, results, times,
                 "AnalyzerEngine, all default recognizers and entities, spacy.blank('en') as NLP model")


def detect_secrets(docs, reps):
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    def kind(secret):
        if secret.type == "AWS Access Key":
            v = secret.secret_value or ""
            return "aws_access_key_id" if v[:4] in ("AKIA", "ASIA") else "aws_secret_access_key"
        if secret.type == "JSON Web Token":
            return "jwt"
        return "other:" + secret.type

    def fn(text):
        out = []
        for line in text.splitlines():
            for s in scan_line(line):
                out.append((kind(s), s.secret_value))
        return out

    with default_settings():
        results, times = timed(docs, fn, reps)
    return entry("detect-secrets", ["aws_access_key_id", "aws_secret_access_key", "jwt"], docs, results, times,
                 "scan_line per line, default plugins and filters")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--slow-reps", type=int, default=1,
                    help="passes of the slow tools (AnalyzerEngine, detect-secrets: about a minute each)")
    args = ap.parse_args()
    docs = load(args.corpus)
    tools = []
    for name, fn, reps in [("presidio patterns", presidio_patterns, args.reps),
                           ("presidio engine", presidio_engine, args.slow_reps),
                           ("detect-secrets", detect_secrets, args.slow_reps)]:
        t = fn(docs, reps)
        print(f"{t['tool']}: {t['mb_per_s']:.2f} MB/s (best of {t['reps']})", file=sys.stderr)
        tools.append(t)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"tools": tools}, f)


if __name__ == "__main__":
    main()
