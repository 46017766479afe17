#!/usr/bin/env python3
"""Scores the detections of every tool against the corpus of `cargo xtask bench detect` and writes
the Markdown tables (and a JSON summary).

Matching, per document and kind:
- tools that report values (the peers): a reported value is a true positive when it equals a still
  unmatched expected value of that kind (IBANs and cards compared on letters and digits only, so
  printed and electronic forms are the same; a JWT reported without its signature part counts when
  its header and payload match); every other reported value is a false positive;
- apisense never outputs raw values, only masked samples with a count: TP = min(expected, reported),
  the rest FP or FN; and where the sample shows enough of the value (cards, IBANs, AWS key ids) it
  must be the mask of one of the expected values, or the hit counts as one FP plus one FN.
Each tool is scored only on the kinds it supports.
"""

import argparse
import collections
import json
import re

KINDS = ["card", "iban", "aws_access_key_id", "aws_secret_access_key", "jwt"]


def norm(kind, value):
    if kind in ("card", "iban"):
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    return value


def matches(kind, got, want):
    if kind == "jwt":
        got = got.rstrip(".")
        return got.count(".") >= 1 and want.startswith(got)
    return norm(kind, got) == norm(kind, want)


def star_middle(raw, head, tail):
    n = len(raw)
    tail = min(tail, n)
    return "".join(c if (i < head or i >= n - tail) else "*" for i, c in enumerate(raw))


def keep_ends(raw, head, tail):
    n = len(raw)
    if head + tail > n // 2:
        head, tail = min(head, n // 4), min(tail, n // 4)
    return star_middle(raw, head, tail)


def mask(kind, value):
    """apisense's masked sample of a value (sensor-agent/src/detect/sensitive/mask.rs), or None."""
    v = norm(kind, value)
    if kind == "card":
        return keep_ends(v, 6, 4) if len(v) < 12 else star_middle(v, 6, 4)
    if kind == "iban":
        return keep_ends(v, 4, 4) if len(v) < 14 else star_middle(v, 4, 4)
    if kind == "aws_access_key_id":
        return keep_ends(v, 4, 4)
    return None


def score(corpus, tool):
    kinds = tool.get("kinds") or KINDS
    per = {k: collections.Counter() for k in kinds}
    by_group = collections.defaultdict(collections.Counter)
    found = {d["id"]: d["hits"] for d in tool["docs"]}
    noisy_filler = 0
    for doc in corpus:
        hits = found.get(doc["id"], [])
        if doc["group"].startswith("filler") and hits:
            noisy_filler += 1
        for kind in kinds:
            want = [e["value"] for e in doc["expected"] if e["kind"] == kind]
            got = [h for h in hits if h["kind"] == kind]
            if tool.get("value_matching"):
                left = list(want)
                tp = fp = 0
                for h in got:
                    i = next((i for i, w in enumerate(left) if matches(kind, h["value"], w)), None)
                    if i is None:
                        fp += 1
                    else:
                        tp += 1
                        left.pop(i)
                fn = len(left)
            else:
                count = sum(h["count"] for h in got)
                tp = min(count, len(want))
                fp, fn = count - tp, len(want) - tp
                masks = {mask(kind, w) for w in want}
                for h in got:
                    if want and None not in masks and h.get("sample") not in masks and tp > 0:
                        tp, fp, fn = tp - 1, fp + 1, fn + 1
            per[kind].update(tp=tp, fp=fp, fn=fn)
            group = doc["group"]
            if fp:
                by_group[(kind, "FP")][group] += fp
            if fn:
                by_group[(kind, "FN")][group] += fn
    return per, by_group, noisy_filler


def ratio(a, b):
    return a / b if b else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--results", nargs="+", required=True)
    ap.add_argument("--out-md", required=True)
    ap.add_argument("--out-json", required=True)
    args = ap.parse_args()
    with open(args.corpus, encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f if line.strip()]
    tools = []
    for path in args.results:
        with open(path, encoding="utf-8") as f:
            tools += json.load(f)["tools"]

    filler = sum(1 for d in corpus if d["group"].startswith("filler"))
    expected = collections.Counter(e["kind"] for d in corpus for e in d["expected"])
    size = sum(len(d["text"].encode("utf-8")) for d in corpus)
    md = []
    md.append(f"Corpus: {len(corpus)} documents, {size / 1e6:.2f} MB; {filler} filler documents "
              f"with nothing sensitive ({sum(len(d['text']) for d in corpus if d['group'].startswith('filler')) / 1e6:.2f} MB); "
              "expected values: " + ", ".join(f"{k} {expected[k]}" for k in KINDS) + ".")
    md.append("")
    md.append("| tool | kind | TP | FP | FN | precision | recall |")
    md.append("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    summary = {"tools": []}
    errors = []
    for t in tools:
        per, by_group, noisy = score(corpus, t)
        entry = {"tool": t["tool"], "mb_per_s": t["mb_per_s"], "noisy_filler_docs": noisy, "kinds": {}}
        for kind in KINDS:
            if kind not in per:
                continue
            c = per[kind]
            p = ratio(c["tp"], c["tp"] + c["fp"])
            r = ratio(c["tp"], c["tp"] + c["fn"])
            entry["kinds"][kind] = {"tp": c["tp"], "fp": c["fp"], "fn": c["fn"], "precision": p, "recall": r}
            md.append(f"| {t['tool']} | {kind} | {c['tp']} | {c['fp']} | {c['fn']} | {p:.3f} | {r:.3f} |")
        for (kind, what), groups in sorted(by_group.items()):
            errors.append(f"- {t['tool']}, {kind}, {what}: " + ", ".join(f"{g} {n}" for g, n in groups.most_common()))
        summary["tools"].append(entry)

    def speed(name):
        return next((t["mb_per_s"] for t in tools if t["tool"] == name), float("nan"))

    patterns = speed("presidio (pattern recognizers)")
    engine = speed("presidio (AnalyzerEngine, blank spaCy)")
    md.append("")
    md.append("| tool | MB/s (one core) | filler only MB/s | passes (best taken) | x Presidio pattern recognizers "
              "| x Presidio AnalyzerEngine | filler documents with any finding (any detector) |")
    md.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for t, e in zip(tools, summary["tools"]):
        e["ratio_to_presidio_patterns"] = ratio(t["mb_per_s"], patterns)
        e["ratio_to_presidio_engine"] = ratio(t["mb_per_s"], engine)
        filler_speed = f"{t['filler_mb_per_s']:.2f}" if "filler_mb_per_s" in t else "-"
        md.append(f"| {t['tool']} | {t['mb_per_s']:.2f} | {filler_speed} | {t['reps']} | {e['ratio_to_presidio_patterns']:.1f}x "
                  f"| {e['ratio_to_presidio_engine']:.0f}x | {e['noisy_filler_docs']} of {filler} |")

    # The aims, on apisense as deployed (inspect).
    main_tool = next((e for e in summary["tools"] if e["tool"] == "apisense (inspect)"), None)
    if main_tool:
        md.append("")
        md.append("Aims (apisense `inspect`, validated types card, iban, aws_access_key_id, jwt; "
                  "aws_secret_access_key is a shape-only detector and is listed apart):")
        md.append("")
        validated = ["card", "iban", "aws_access_key_id", "jwt"]
        for kind in validated + ["aws_secret_access_key"]:
            k = main_tool["kinds"][kind]
            ok = k["precision"] >= 0.99 and k["recall"] >= 0.99
            md.append(f"- {kind}: precision {k['precision']:.3f}, recall {k['recall']:.3f}: "
                      f"{'met' if ok else 'NOT met'} (>= 0.99 both)")
        for label, key in [("Presidio's bare pattern recognizers (its fastest possible configuration)",
                            "ratio_to_presidio_patterns"),
                           ("Presidio's AnalyzerEngine (blank spaCy)", "ratio_to_presidio_engine")]:
            r = main_tool.get(key, float("nan"))
            md.append(f"- throughput vs {label}: {main_tool['mb_per_s']:.1f} MB/s = {r:.1f}x: "
                      f"{'met' if r >= 20 else 'NOT met'} (>= 20x)")
    md.append("")
    md.append("Where the errors are (kind, FP/FN: document group and count):")
    md.append("")
    md += errors or ["- none"]
    with open(args.out_md, "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    with open(args.out_json, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
