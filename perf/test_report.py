"""Tests of perf/report.py. Run from the repository root:

    python3 -m unittest perf/test_report.py
"""

import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
LAT = {"50": 1.2, "75": 1.5, "90": 2.0, "99": 4.1, "99.9": 9.0}


def run(suite, path, conns, rate, **kw):
    r = {"suite": suite, "path": path, "conns": conns, "rate": rate,
         "rate_unit": kw.pop("rate_unit", "conn/s"), "errors": kw.pop("errors", 0)}
    r.update(kw)
    return r


def sample():
    runs = []
    for conns, (s, n, h) in {1: (1000, 800, 900), 16: (3000, 2500, 2000), 128: (3400, 3000, 3100)}.items():
        runs.append(run("l7-new", "shoal-splice-frequent", conns, s, latency_ms=dict(LAT),
                        cpu_per_1k_s=0.07, cpu_what="dataplane busy time", size_bytes=6, servers=3))
        runs.append(run("l7-new", "nginx", conns, n, latency_ms={"50": 2.0, "90": 3.0, "99": 6.0, "99.9": 12.0},
                        cpu_per_1k_s=0.2, cpu_what="process CPU", size_bytes=6, servers=3,
                        errors=7 if conns == 128 else 0))
        runs.append(run("l7-new", "haproxy", conns, h, latency_ms={"50": 1.8, "99": 5.0},
                        cpu_per_1k_s=0.14, size_bytes=6, servers=3))
    runs.append(run("l7-keepalive", "shoal-splice-frequent", 128, 20000.0, rate_unit="req/s", latency_ms=dict(LAT)))
    runs.append(run("l7-keepalive", "nginx", 128, 25000.0, rate_unit="req/s", latency_ms=None, mbit_s=None))
    for size in (1 << 20, 8 << 20):
        runs.append(run("l7-large", "shoal-splice-frequent", 16, 100.0 * (1 << 20) / size, rate_unit="req/s",
                        size_bytes=size, mbit_s=900.0))
    for servers in (1, 2, 3):
        runs.append(run("scaling", "shoal-l4", 128, 10000.0 * servers * (1 if servers == 1 else 0.85),
                        servers=servers))
    runs.append(run("l4-new", "shoal-l4", 128, 50000.0, note="one <note> & more"))
    return {
        "schema": 1,
        "meta": {"date": "2026-12-04T20:00:00Z", "commit": "f821793", "cpu": "AMD EPYC 7B13", "cpus": 2,
                 "kernel": "6.1.0", "shared_with": "nothing else", "duration_s": 5, "notes": ["a free line"]},
        "noise": {"rel": 0.1, "how": "three runs"},
        "runs": runs,
        "tables": [{"id": "table1", "title": "Seed 001 Table 1 beside the lab",
                    "columns": ["experiment", "seed GETs/s", "lab GETs/s"],
                    "rows": [["Baseline 1-Host", 104, 5000], ["a|b", None, 1.5], ["nested", {"k": [1, 2]}, True]], "note": "seed figures from 2009"}],
    }


def call(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = report.main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


class Render(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.path = os.path.join(d, "results.json")
        with open(cls.path, "w") as f:
            json.dump(sample(), f)
        cls.out = os.path.join(d, "out")
        cls.code, cls.stdout, cls.stderr = call(["render", cls.path, cls.out])
        with open(os.path.join(cls.out, "results.md"), encoding="utf-8") as f:
            cls.md = f.read()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_exit_and_stdout(self):
        self.assertEqual(self.code, 0, self.stderr)
        self.assertEqual(self.stdout.strip(), self.md.strip())

    def test_header(self):
        for s in ("2026-12-04T20:00:00Z", "f821793", "AMD EPYC 7B13", "2 cpus", "6.1.0", "nothing else",
                  "5 s", "±10.0 %", "three runs", "a free line"):
            self.assertIn(s, self.md)

    def test_cells(self):
        self.assertIn("| path | 1 conn | 16 conns | 128 conns |", self.md)
        self.assertIn("| shoal-splice-frequent | 1,000 (4.1) | 3,000 (4.1) | 3,400 (4.1) |", self.md)
        self.assertIn("3,000 (6) ⚠", self.md)  # nginx at 128 had errors
        self.assertIn("| 1 MiB | 8 MiB |", self.md)
        self.assertIn("| 1 server | 2 servers | 3 servers |", self.md)
        # CPU table and what was measured
        self.assertIn("CPU seconds per 1000 connections", self.md)
        self.assertIn("| shoal-splice-frequent | 0.07 | 0.07 | 0.07 |", self.md)
        self.assertIn("dataplane busy time", self.md)
        self.assertIn("Throughput, Mbit/s", self.md)

    def test_ratio_lines(self):
        self.assertIn("Shoal ÷ best proxy", self.md)
        self.assertIn("- 1 conn: rate shoal-splice-frequent ÷ haproxy = 1.11×; "
                      "CPU/1k conns shoal-splice-frequent ÷ haproxy = 0.50×", self.md)
        self.assertIn("- 16 conns: rate shoal-splice-frequent ÷ nginx = 1.20×", self.md)
        self.assertIn("- 128 conns: rate shoal-splice-frequent ÷ haproxy = 1.10×", self.md)
        self.assertIn("l7-keepalive", self.md)
        self.assertIn("rate shoal-splice-frequent ÷ nginx = 0.80×", self.md)

    def test_errors_never_hidden(self):
        self.assertIn("⚠ **errors in 1 of 9 runs** (7 in total): nginx at 128 conns: 7", self.md)
        self.assertIn("⚠ **1 of", self.md)  # header line
        self.assertIn("Errors: none in", self.md)  # other suites say so

    def test_tables_and_notes(self):
        self.assertIn("## Seed 001 Table 1 beside the lab", self.md)
        self.assertIn("| experiment | seed GETs/s | lab GETs/s |", self.md)
        self.assertIn("| Baseline 1-Host | 104 | 5000 |", self.md)
        self.assertIn("| a\\|b | — | 1.5 |", self.md)
        self.assertIn('| nested | {"k":[1,2]} | True |', self.md)
        self.assertIn("seed figures from 2009", self.md)
        self.assertIn("one <note> & more", self.md)

    def _svg(self, name):
        p = os.path.join(self.out, name)
        self.assertIn(f"]({name})", self.md)
        root = ET.parse(p).getroot()
        self.assertEqual(root.tag, SVG + "svg")
        self.assertEqual((root.get("width"), root.get("height")), ("640", "400"))
        return root

    def _legend(self, root):
        return [t.text for t in root.iter(SVG + "text") if t.get("class") == "legend"]

    def test_rate_svg(self):
        root = self._svg("rate-l7-new.svg")
        self.assertEqual(len(list(root.iter(SVG + "polyline"))), 3)
        self.assertEqual(self._legend(root), ["shoal-splice-frequent", "haproxy", "nginx"])
        texts = [t.text for t in root.iter(SVG + "text")]
        self.assertIn("concurrent connections (log scale)", texts)
        self.assertIn("128", texts)
        self.assertIn("l7-new: rate vs connections", texts)

    def test_latency_svg(self):
        root = self._svg("latency-l7-new.svg")
        self.assertEqual(len(list(root.iter(SVG + "polyline"))), 3)
        self.assertEqual(self._legend(root), ["shoal-splice-frequent", "haproxy", "nginx"])
        texts = [t.text for t in root.iter(SVG + "text")]
        self.assertIn("99.9", texts)
        # keepalive: nginx has no latency, one line
        root = self._svg("latency-l7-keepalive.svg")
        self.assertEqual(len(list(root.iter(SVG + "polyline"))), 1)

    def test_scaling_svg(self):
        root = self._svg("rate-scaling.svg")
        self.assertEqual(len(list(root.iter(SVG + "polyline"))), 1)
        self.assertEqual(len([p for p in root.iter(SVG + "path") if p.get("class") == "ideal"]), 1)
        self.assertEqual(self._legend(root), ["shoal-l4", "ideal: N × rate(1)"])

    def test_skipped_plots(self):
        # l7-keepalive and l4-new have one x value: no rate plot
        for name in ("rate-l7-keepalive.svg", "rate-l4-new.svg"):
            self.assertFalse(os.path.exists(os.path.join(self.out, name)))
        self.assertTrue(os.path.exists(os.path.join(self.out, "rate-l7-large.svg")))

    def test_xml_escaping(self):
        d = sample()
        d["runs"] = [run("l7-new", "a<b&c", c, 10.0 * c) for c in (1, 2)]
        with tempfile.TemporaryDirectory() as t:
            p = os.path.join(t, "r.json")
            with open(p, "w") as f:
                json.dump(d, f)
            code, _, err = call(["render", p, t])
            self.assertEqual(code, 0, err)
            root = ET.parse(os.path.join(t, "rate-l7-new.svg")).getroot()
            self.assertEqual(self._legend(root), ["a<b&c"])


class Compare(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, data):
        p = os.path.join(self.tmp.name, name)
        with open(p, "w") as f:
            if isinstance(data, str):
                f.write(data)
            else:
                json.dump(data, f)
        return p

    def pair(self, factor):
        a = sample()
        b = copy.deepcopy(a)
        for r in b["runs"]:
            if r["suite"] == "l7-new" and r["path"] == "shoal-splice-frequent" and r["conns"] == 128:
                r["rate"] *= factor
        return self.write("a.json", a), self.write("b.json", b)

    def test_regression(self):
        code, out, err = call(["compare", *self.pair(0.8)])
        self.assertEqual(code, 1, err)
        self.assertIn("| l7-new / shoal-splice-frequent / 128 conns / 6 B / 3 servers | rate (conn/s) | 3,400 | 2,720 "
                      "| -20.0 % | **regression** |", out)
        self.assertIn("1 regressions, 0 improvements; threshold ±10.0 %", out)

    def test_small_drop_is_same(self):
        code, out, err = call(["compare", *self.pair(0.97)])
        self.assertEqual(code, 0, err)
        self.assertIn("| -3.0 % | same |", out)
        self.assertIn("0 regressions, 0 improvements", out)

    def test_improvement_and_added_removed(self):
        a = sample()
        b = copy.deepcopy(a)
        b["noise"]["rel"] = 0.02
        a["noise"]["rel"] = 0.01
        b["runs"][0]["rate"] *= 1.5
        removed = b["runs"].pop()  # l4-new
        b["runs"].append(run("l4-large", "shoal-l4", 8, 10.0, size_bytes=1 << 20))
        code, out, err = call(["compare", self.write("a.json", a), self.write("b.json", b)])
        self.assertEqual(code, 0, err)
        self.assertIn("improvement", out)
        self.assertIn("threshold ±5.0 %", out)  # the floor
        self.assertIn("Removed (only in A, 1):", out)
        self.assertIn(f"- {removed['suite']} / shoal-l4 / 128 conns", out)
        self.assertIn("Added (only in B, 1):", out)
        self.assertIn("- l4-large / shoal-l4 / 8 conns / 1 MiB", out)

    def test_latency_and_errors_regress(self):
        a = sample()
        b = copy.deepcopy(a)
        b["runs"][0]["latency_ms"]["99"] = 8.0
        b["runs"][2]["errors"] = 1
        code, out, _ = call(["compare", self.write("a.json", a), self.write("b.json", b)])
        self.assertEqual(code, 1)
        self.assertIn("| p99 ms | 4.1 | 8 | +95.1 % | **regression** |", out)
        self.assertIn("| errors ⚠ | 0 | 1 | n/a | **regression** |", out)

    def test_invalid_json(self):
        p = self.write("bad.json", "{not json")
        code, out, err = call(["compare", p, p])
        self.assertEqual(code, 2)
        self.assertIn("bad.json: invalid JSON", err)
        self.assertNotIn("Traceback", err)

    def test_missing_file(self):
        code, _, err = call(["render", os.path.join(self.tmp.name, "nope.json"), self.tmp.name])
        self.assertEqual(code, 2)
        self.assertIn("nope.json: cannot read", err)

    def test_missing_field(self):
        d = sample()
        del d["runs"][4]["rate"]
        p = self.write("a.json", d)
        code, _, err = call(["compare", p, self.write("b.json", sample())])
        self.assertEqual(code, 2)
        self.assertIn("a.json: runs[4]: missing required field 'rate'", err)

    def test_wrong_types_and_schema(self):
        for mutate, msg in (
            (lambda d: d.update(schema=2), "'schema' must be 1"),
            (lambda d: d["runs"][0].update(conns="many"), "runs[0]: field 'conns' must be an integer"),
            (lambda d: d["runs"][1].update(latency_ms={"p99": 3}), "runs[1]: latency_ms key 'p99'"),
            (lambda d: d["runs"].append(copy.deepcopy(d["runs"][0])), "same key"),
            (lambda d: d["tables"][0]["rows"].append([1]), "tables[0]: rows[3]"),
            (lambda d: d.update(runs=None), "'runs' must be a list"),
        ):
            d = sample()
            mutate(d)
            code, _, err = call(["render", self.write("x.json", d), self.tmp.name])
            self.assertEqual(code, 2, msg)
            self.assertIn(msg, err)
            self.assertNotIn("Traceback", err)

    def test_subprocess_exit_codes(self):
        # The real command line, as CI and people call it.
        import subprocess
        a, b = self.pair(0.8)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.py")
        r = subprocess.run([sys.executable, script, "compare", a, b], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        r = subprocess.run([sys.executable, script, "compare", a, self.write("c.json", "[]")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("c.json: top level must be an object", r.stderr)
        self.assertNotIn("Traceback", r.stderr)


if __name__ == "__main__":
    unittest.main()
