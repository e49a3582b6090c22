"""Renders every results table of the docs and the README from its committed results file.

    python benchmarks/render.py            # rewrite every block in place
    python benchmarks/render.py --check    # exit 1 if a block differs from its results files

A block is written in the Markdown as

    <!-- render: KIND ARGS -->

    (generated text)
    <!-- /render -->

and KIND is one of
    log-table FILE [K]        the K-th (default 0) Markdown table the benchmark printed in its run
                              (the results file's "log"), then a line naming the run
    w2bench FILE... [--merge] monge.experiments.maps.w2bench.render
    w2bench-ablation FILE...  monge.experiments.maps.w2bench.render_ablation (one row per file)
    w2bench-paired FILE...    monge.experiments.maps.w2bench.render_paired (Monge gap - baselines)
    w2bench-entropic-eps FILE monge.experiments.maps.w2bench.render_entropic_tuning
    estimator-bias FILE       monge.experiments.maps.estimator_bias.render
    known-maps FILE           monge.experiments.maps.known_maps.render
    routing FILE              monge.experiments.routing.run.render
    spectr FILE               monge.experiments.spectr.run.render
    speech FILE               monge.experiments.speech_ctc_ot.run.render
    orma FILE...              monge.experiments.orma.run.render (one run split over processes)
    sinkhorn-suite FILE...    benchmarks/sinkhorn_suite.py's tables
    sinkhorn-suite-engines OLD NEW   the defaults of one half under two engines: what moved
FILE paths are relative to the repository root.  tests/test_render.py runs --check.
"""
import argparse
import glob
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BLOCK = re.compile(r"<!-- render: (?P<spec>[^\n]*?) -->\n(?P<body>.*?)<!-- /render -->", re.S)
OPEN = re.compile(r"<!-- render:")


def _abs(path):
    return os.path.join(ROOT, path)


def log_tables(path):
    """The Markdown tables printed during a benchmark run (its results file's "log")."""
    with open(_abs(path)) as fh:
        log = json.load(fh).get("log") or []
    tables, cur = [], []
    log = log + [""]
    for i, line in enumerate(log[:-1]):
        header = line.startswith("|") and log[i + 1].startswith("|-")
        if cur and (header or not line.startswith("|")):
            tables.append(cur)              # a table ends at a non-table line or a new header
            cur = []
        if line.startswith("|"):
            cur.append(line)
    if cur:
        tables.append(cur)
    return tables


def run_line(path):
    with open(_abs(path)) as fh:
        r = json.load(fh)
    m = r.get("machine", {})
    load = m.get("load_at_start")
    load = f", load {load[0]:.2f} at the start" if load else ""
    return (f"Source: `{path}` — `{r['command']}`, {r['date']}, commit {r['commit'][:10]}, "
            f"{m.get('cpu', '?')} ({m.get('nproc', '?')} cores{load}).")


def render_spec(spec):
    kind, *args = spec.split()
    if kind == "log-table":
        if not 1 <= len(args) <= 2:
            raise ValueError(f"log-table: expected FILE [K], got {spec!r}")
        k = int(args[1]) if len(args) == 2 else 0
        tables = log_tables(args[0])
        if k >= len(tables):
            raise ValueError(f"{args[0]}: its log has {len(tables)} tables, asked for number {k}")
        return "\n".join(tables[k]) + "\n\n" + run_line(args[0]) + "\n"
    if kind == "w2bench-paired":
        from monge.experiments.maps import w2bench

        return w2bench.render_paired([_abs(f) for f in args])
    if kind == "w2bench-tuning-pair":
        from monge.experiments.maps import w2bench

        if len(args) != 2:
            raise ValueError(f"w2bench-tuning-pair: expected BASE VARIANT, got {spec!r}")
        return w2bench.render_tuning_pair(*[_abs(f) for f in args])
    if kind == "w2bench-entropic-eps":
        from monge.experiments.maps import w2bench

        return w2bench.render_entropic_tuning(_abs(args[0]))
    if kind == "w2bench-sample-size":
        from monge.experiments.maps import w2bench

        return w2bench.render_sample_size([_abs(f) for f in args])
    if kind == "w2bench-ablation":
        from monge.experiments.maps import w2bench

        return w2bench.render_ablation([_abs(f) for f in args])
    if kind == "w2bench":
        from monge.experiments.maps import w2bench

        files = [a for a in args if a != "--merge"]
        return w2bench.render([_abs(f) for f in files], merge="--merge" in args)
    if kind == "spectr":
        from monge.experiments.spectr import run

        return run.render(_abs(args[0]))
    if kind == "speech":
        from monge.experiments.speech_ctc_ot import run

        return run.render(_abs(args[0]))
    if kind == "orma":
        from monge.experiments.orma import run

        return run.render(*[_abs(f) for f in args])
    if kind == "routing":
        from monge.experiments.routing import run

        return run.render(_abs(args[0]))
    if kind == "known-maps":
        from monge.experiments.maps import known_maps

        return known_maps.render(_abs(args[0]))
    if kind == "estimator-bias":
        from monge.experiments.maps import estimator_bias

        return estimator_bias.render(_abs(args[0]))
    if kind == "method-auto":
        sys.path.insert(0, HERE)
        import method_auto

        return (method_auto.render([_abs(f) for f in args]) + "\n"
                + "\n".join(run_line(f) for f in args) + "\n")
    if kind == "sinkhorn-suite":
        sys.path.insert(0, HERE)
        import sinkhorn_suite

        return sinkhorn_suite.render(args)
    if kind == "sinkhorn-suite-engines":
        if len(args) != 2:
            raise ValueError(f"sinkhorn-suite-engines: expected OLD NEW, got {spec!r}")
        sys.path.insert(0, HERE)
        import sinkhorn_suite

        return sinkhorn_suite.compare_engines(*args)
    raise ValueError(f"unknown render kind {kind!r} in {spec!r}")


def documents():
    return [os.path.join(ROOT, "README.md")] + sorted(
        glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))


def process(path, write):
    """(number of blocks, list of specs whose text differs); rewrites the file when write."""
    with open(path) as fh:
        text = fh.read()
    blocks = list(BLOCK.finditer(text))
    if len(blocks) != len(OPEN.findall(text)):
        raise ValueError(f"{os.path.relpath(path, ROOT)}: a '<!-- render:' block is not closed by "
                         "'<!-- /render -->'")
    stale, out, last = [], [], 0
    for b in blocks:
        want = "\n" + render_spec(b["spec"])
        if b["body"] != want:
            stale.append(b["spec"])
        out += [text[last:b.start("body")], want]
        last = b.end("body")
    out.append(text[last:])
    if write and stale:
        with open(path, "w") as fh:
            fh.write("".join(out))
    return len(blocks), stale


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="report stale blocks, change nothing")
    args = ap.parse_args(argv)
    total, bad = 0, []
    for path in documents():
        n, stale = process(path, write=not args.check)
        total += n
        bad += [(os.path.relpath(path, ROOT), s) for s in stale]
    verb = "differ from their results files" if args.check else "rewritten"
    print(f"{total} blocks; {len(bad)} {verb}")
    for path, spec in bad:
        print(f"  {path}: {spec}")
    return 1 if (args.check and bad) else 0


if __name__ == "__main__":
    sys.exit(main())
