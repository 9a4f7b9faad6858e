#!/usr/bin/env python3
"""metrics_lint.py - checks Prometheus text-format metrics as
`promtool check metrics` does, without installing Prometheus: the text
parser's errors (a bad line, a bad name, label or value, a family whose
HELP or TYPE comes twice or after its samples, a series given twice) and
promtool's lint rules (client_golang's promlint): a HELP for every family,
counters ending in _total, _total only on counters, _count/_sum/_bucket and
the le/quantile labels only where histograms and summaries put them, no
type in the name, no colons (kept for recording rules), snake_case names
and labels, base units (seconds, bytes) and no unit abbreviations.
When python3-prometheus-client is installed, its parser reads the text too.

Usage: metrics_lint.py [FILE]   (default: standard input)
Prints one line per problem, as promtool does, and exits 1 if there is any.
"""

import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?\s*$")
PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
# promlint's unit rules
NON_BASE = {"milliseconds": "seconds", "microseconds": "seconds", "nanoseconds": "seconds",
            "minutes": "seconds", "hours": "seconds", "days": "seconds", "weeks": "seconds",
            "kilobytes": "bytes", "megabytes": "bytes", "gigabytes": "bytes",
            "terabytes": "bytes", "petabytes": "bytes", "kibibytes": "bytes",
            "mebibytes": "bytes", "gibibytes": "bytes", "tebibytes": "bytes",
            "percent": "ratios", "celsius": "celsius", "fahrenheit": "celsius"}
ABBREV = ("sec", "secs", "msec", "msecs", "usec", "nsec", "min", "mins", "hr", "hrs",
          "kb", "mb", "gb", "tb", "pb", "kib", "mib", "gib", "pct", "perc")
CAMEL = re.compile(r"[a-z][A-Z]")


def family_of(name, types):
    """The family a sample belongs to (histogram and summary suffixes)."""
    for suf in ("_bucket", "_count", "_sum"):
        base = name[: -len(suf)]
        if name.endswith(suf) and types.get(base) in ("histogram", "summary"):
            return base
    return name


def parse(text):
    """Problems the text-format parser reports; and the families seen."""
    errs, helps, types, seen_samples, series = [], {}, {}, set(), set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                if len(parts) < 3 or not NAME.match(parts[2]):
                    errs.append("line %d: invalid metric name in %s line" % (n, parts[1]))
                    continue
                name, rest = parts[2], parts[3] if len(parts) > 3 else ""
                if parts[1] == "HELP":
                    if name in helps:
                        errs.append("line %d: second HELP line for metric name %r" % (n, name))
                    helps[name] = rest
                else:
                    if name in types:
                        errs.append("line %d: second TYPE line for metric name %r" % (n, name))
                    if rest not in TYPES:
                        errs.append("line %d: unknown metric type %r" % (n, rest))
                    types[name] = rest
                if name in seen_samples:
                    errs.append("line %d: %s line for %r after its samples" % (n, parts[1], name))
            continue
        m = SAMPLE.match(line)
        if not m:
            errs.append("line %d: not a sample line: %r" % (n, line))
            continue
        name, labels, value = m.group(1), m.group(3), m.group(4)
        fam = family_of(name, types)
        seen_samples.add(fam)
        pairs, rest = [], labels or ""
        while rest.strip():
            p = PAIR.match(rest)
            if not p:
                errs.append("line %d: bad label set {%s}" % (n, labels))
                break
            if re.search(r'\\[^\\n"]', p.group(2)):
                errs.append("line %d: invalid escape in label value %r" % (n, p.group(2)))
            pairs.append((p.group(1), p.group(2)))
            rest = rest[p.end():]
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            errs.append("line %d: a label given twice in {%s}" % (n, labels))
        if any(k.startswith("__") for k in names):
            errs.append("line %d: label names beginning with __ are reserved" % n)
        try:
            v = float(value)
            if math.isnan(v) and value not in ("NaN",):
                raise ValueError
        except ValueError:
            errs.append("line %d: invalid value %r" % (n, value))
        key = (name, tuple(sorted(pairs)))
        if key in series:
            errs.append("line %d: series %s{%s} given twice" % (n, name, labels or ""))
        series.add(key)
        for k in names:
            if CAMEL.search(k):
                errs.append("%s: label names should be written in 'snake_case' not "
                            "'camelCase'" % name)
        if "le" in names and types.get(fam) != "histogram":
            errs.append("%s: non-histogram metrics should not have \"le\" label" % name)
        if "quantile" in names and types.get(fam) != "summary":
            errs.append("%s: non-summary metrics should not have \"quantile\" label" % name)
    return errs, helps, types, seen_samples


def lint(helps, types, families):
    """promlint's rules, one problem per line as promtool prints them."""
    out = []
    for fam in sorted(families | set(types) | set(helps)):
        t = types.get(fam, "untyped")
        if fam not in helps or not helps[fam].strip():
            out.append("%s no help text" % fam)
        if t == "counter" and not fam.endswith("_total"):
            out.append("%s counter metrics should have \"_total\" suffix" % fam)
        if t != "counter" and fam.endswith("_total"):
            out.append("%s non-counter metrics should not have \"_total\" suffix" % fam)
        if t not in ("histogram", "summary"):
            for suf in ("_count", "_sum", "_bucket"):
                if fam.endswith(suf):
                    out.append("%s non-histogram and non-summary metrics should not have "
                               "\"%s\" suffix" % (fam, suf))
        words = fam.split("_")
        for typ in ("counter", "gauge", "histogram", "summary", "untyped"):
            if typ in words:
                out.append("%s metric name should not include type '%s'" % (fam, typ))
        for w in words:
            if w in NON_BASE and NON_BASE[w] != w:
                out.append("%s use base unit \"%s\" instead of \"%s\"" % (fam, NON_BASE[w], w))
            if w in ABBREV:
                out.append("%s metric names should not contain abbreviated units" % fam)
        if ":" in fam:
            out.append("%s metric names should not contain ':'" % fam)
        if CAMEL.search(fam):
            out.append("%s metric names should be written in 'snake_case' not 'camelCase'" % fam)
    return out


def client_parse(text):
    """python3-prometheus-client's parser, where it is installed."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return []
    try:
        for _ in text_string_to_metric_families(text):
            pass
    except Exception as e:  # noqa: BLE001 - any parse failure is a finding
        return ["prometheus_client parser: %s" % e]
    return []


def main():
    f = open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin
    text = f.read()
    errs, helps, types, families = parse(text)
    problems = errs + client_parse(text) + lint(helps, types, families)
    for p in problems:
        print(p)
    if not text.strip():
        print("no metrics at all")
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
