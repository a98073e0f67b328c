#!/usr/bin/env python3
"""Checks the Grafana dashboards (and, live, the recording rules).

    check_dashboards.py DASHBOARD.json...                      structure only
    check_dashboards.py --prometheus URL --since UNIX_TIME \\
        [--rules-dir DIR] [--require-up JOB,...] DASHBOARD.json... structure, then live

Structure: valid JSON; uid, title, panels; every panel (rows aside) has a
title, a gridPos inside the 24 columns, the Prometheus datasource (uid
`prometheus`) and targets, each with a refId and an expr whose variables are
all known (Grafana's built-ins or the dashboard's own template variables).

Live: every expression of every panel is evaluated as a range query (from
--since to now, 5 s steps) through Prometheus's HTTP API after substituting
Grafana's variables ($__rate_interval -> 1m, ...; a template variable once
per value it can take, and once with its "All" value), and must return at
least one sample that is not NaN. Expressions over metrics that only exist
under Docker (cAdvisor's container_*) must evaluate without error but may be
empty: they are listed as "static only". Then every recording rule Prometheus
loaded must be healthy and its recorded series must have data, and the rule
files loaded must be exactly those of --rules-dir.

Exit status 0 when everything passed, 1 otherwise. Python 3 standard library only.
"""

import argparse
import itertools
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DATASOURCE_UID = "prometheus"
PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "text", "row"}

# Grafana's built-in variables, as the live check substitutes them.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}

# Metrics that only exist where cAdvisor runs (Docker Compose): expressions
# over them are checked to evaluate without error but may return nothing.
STATIC_ONLY = {
    re.compile(r"\bcontainer_[a-zA-Z0-9_]+"): "cAdvisor container metrics: only under Docker",
}

VAR_RE = re.compile(r"\$\{(\w+)(?:[:.][^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]")


def variables_in(expr):
    names = []
    for m in VAR_RE.finditer(expr):
        name = m.group(1) or m.group(2) or m.group(3)
        if not name.isdigit():  # $1 in label_replace is not a variable
            names.append(name)
    return names


def substitute(expr, values):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, m.group(0))

    return VAR_RE.sub(repl, expr)


def template_values(var):
    """Every value a template variable can take, plus its All value."""
    values = []
    if var.get("type") == "custom":
        values = [v.strip() for v in str(var.get("query", "")).split(",") if v.strip()]
    elif var.get("type") in ("constant", "textbox"):
        values = [str(var.get("query", ""))]
    else:
        values = [o["value"] for o in var.get("options", []) if o.get("value") not in (None, "$__all")]
    if var.get("includeAll"):
        values.append(var.get("allValue") or "|".join(values))
    return values


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


class Checker:
    def __init__(self):
        self.failures = []

    def fail(self, where, msg):
        self.failures.append(f"{where}: {msg}")
        print(f"FAIL  {where}: {msg}")

    # ------------------------------------------------------------ structure
    def structure(self, path):
        """Returns [(where, expr, {var: [values]})] of the dashboard, or None."""
        name = os.path.basename(path)
        try:
            with open(path, encoding="utf-8") as f:
                dash = json.load(f)
        except (OSError, ValueError) as e:
            self.fail(name, f"not valid JSON: {e}")
            return None
        if not isinstance(dash, dict):
            self.fail(name, "not a JSON object")
            return None
        for key in ("uid", "title"):
            if not isinstance(dash.get(key), str) or not dash[key]:
                self.fail(name, f"missing {key}")
        if not isinstance(dash.get("panels"), list) or not dash["panels"]:
            self.fail(name, "no panels")
            return None
        templating = {}
        for var in dash.get("templating", {}).get("list", []):
            values = template_values(var)
            if not values:
                self.fail(name, f"template variable {var.get('name')} has no values")
            templating[var.get("name")] = values
        exprs = []
        ids = set()
        for panel in walk_panels(dash["panels"]):
            title = panel.get("title") or "(untitled)"
            where = f"{name} / {title}"
            if panel.get("id") in ids:
                self.fail(where, f"duplicate panel id {panel.get('id')}")
            ids.add(panel.get("id"))
            ptype = panel.get("type")
            if ptype not in PANEL_TYPES:
                self.fail(where, f"unknown panel type {ptype!r}")
            grid = panel.get("gridPos", {})
            if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")):
                self.fail(where, "gridPos needs integer h, w, x, y")
            elif grid["x"] + grid["w"] > 24:
                self.fail(where, "gridPos wider than 24 columns")
            if ptype in ("row", "text"):
                continue
            if not panel.get("title"):
                self.fail(where, "panel without a title")
            if (panel.get("datasource") or {}).get("uid") != DATASOURCE_UID:
                self.fail(where, f"panel datasource is not uid {DATASOURCE_UID!r}")
            targets = panel.get("targets")
            if not isinstance(targets, list) or not targets:
                self.fail(where, "panel without targets")
                continue
            refs = set()
            for t in targets:
                ref = t.get("refId")
                twhere = f"{where} [{ref}]"
                if not ref or ref in refs:
                    self.fail(twhere, "missing or duplicate refId")
                refs.add(ref)
                if (t.get("datasource") or {}).get("uid") != DATASOURCE_UID:
                    self.fail(twhere, f"target datasource is not uid {DATASOURCE_UID!r}")
                expr = t.get("expr")
                if not isinstance(expr, str) or not expr.strip():
                    self.fail(twhere, "target without an expr")
                    continue
                used = {}
                for var in variables_in(expr):
                    if var in BUILTINS:
                        used[var] = [BUILTINS[var]]
                    elif var in templating:
                        used[var] = templating[var]
                    else:
                        self.fail(twhere, f"unknown variable ${var} in {expr}")
                exprs.append((twhere, expr, used))
        return exprs


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, **params):
        query = urllib.parse.urlencode(params)
        req = urllib.request.Request(f"{self.url}{path}?{query}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            try:
                return json.load(e)
            except ValueError:
                return {"status": "error", "error": f"HTTP {e.code}"}
        except (urllib.error.URLError, OSError, ValueError) as e:
            return {"status": "error", "error": str(e)}

    def range(self, expr, since):
        now = time.time()
        return self.get("/api/v1/query_range", query=expr, start=f"{since:.3f}", end=f"{now:.3f}", step="5")


def samples_with_data(result):
    """Series of a matrix answer that have at least one sample that is not NaN."""
    n = 0
    for series in result.get("data", {}).get("result", []):
        if any(not math.isnan(float(v)) for _, v in series.get("values", [])):
            n += 1
    return n


def static_only_reason(expr):
    for pattern, reason in STATIC_ONLY.items():
        if pattern.search(expr):
            return reason
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dashboards", nargs="+")
    ap.add_argument("--prometheus", help="base URL of the Prometheus to query (live check)")
    ap.add_argument("--since", type=float, help="start of the range queries (unix time)")
    ap.add_argument("--rules-dir", help="the rule files Prometheus must have loaded")
    ap.add_argument("--require-up", default="", help="jobs whose every target must be up")
    args = ap.parse_args()

    c = Checker()
    all_exprs = []
    uids = {}
    for path in args.dashboards:
        exprs = c.structure(path)
        if exprs is not None:
            all_exprs.extend(exprs)
            with open(path, encoding="utf-8") as f:
                uid = json.load(f).get("uid")
            if uid in uids:
                c.fail(os.path.basename(path), f"uid {uid!r} also used by {uids[uid]}")
            uids[uid] = os.path.basename(path)
    print(f"structure: {len(args.dashboards)} dashboards, {len(all_exprs)} expressions, "
          f"{len(c.failures)} problems")
    if not args.prometheus:
        return 1 if c.failures else 0
    if args.since is None:
        ap.error("--since is required with --prometheus")

    prom = Prometheus(args.prometheus)

    # Targets that must be up (otherwise an empty panel could be a scrape problem).
    required = [j for j in args.require_up.split(",") if j]
    if required:
        targets = prom.get("/api/v1/targets", state="active")
        active = targets.get("data", {}).get("activeTargets", [])
        for job in required:
            mine = [t for t in active if t.get("labels", {}).get("job") == job]
            down = [t["scrapeUrl"] + " (" + t.get("lastError", "") + ")" for t in mine if t.get("health") != "up"]
            if not mine:
                c.fail(f"target job {job}", "no targets")
            elif down:
                c.fail(f"target job {job}", "down: " + ", ".join(down))
            else:
                print(f"ok    target job {job}: {len(mine)} up")

    with_data = static = 0
    static_list = []
    queries = 0
    for where, expr, used in all_exprs:
        names = sorted(used)
        reason = static_only_reason(expr)
        ok = True
        for combo in itertools.product(*(used[n] for n in names)):
            values = dict(zip(names, combo))
            q = substitute(expr, values)
            queries += 1
            label = f"{where}" + (f" {values}" if values else "")
            answer = prom.range(q, args.since)
            if answer.get("status") != "success":
                c.fail(label, f"{answer.get('error')} in {q}")
                ok = False
                continue
            n = samples_with_data(answer)
            if reason:
                continue
            if n == 0:
                c.fail(label, f"no data for {q}")
                ok = False
        if ok and reason:
            static += 1
            static_list.append(f"{where}: {expr}  ({reason})")
            print(f"static {where}")
        elif ok:
            with_data += 1
            print(f"ok    {where}")

    # Recording rules: loaded from the right files, healthy, with data.
    rules_total = rules_ok = 0
    answer = prom.get("/api/v1/rules", type="record")
    if answer.get("status") != "success":
        c.fail("rules", f"cannot list them: {answer.get('error')}")
    else:
        groups = answer["data"]["groups"]
        loaded = sorted({os.path.basename(g["file"]) for g in groups})
        if args.rules_dir:
            expected = sorted(f for f in os.listdir(args.rules_dir) if f.endswith((".yml", ".yaml")))
            if loaded != expected:
                c.fail("rules", f"Prometheus loaded {loaded}, the rules directory has {expected}")
        for g in groups:
            for rule in g["rules"]:
                rules_total += 1
                where = f"rule {rule['name']} ({os.path.basename(g['file'])})"
                if rule.get("health") != "ok":
                    c.fail(where, f"health {rule.get('health')}: {rule.get('lastError')}")
                    continue
                rec = prom.range(rule["name"], args.since)
                if rec.get("status") != "success" or samples_with_data(rec) == 0:
                    c.fail(where, f"no data recorded ({rec.get('error', 'empty')})")
                    continue
                rules_ok += 1
                print(f"ok    {where}")
        if rules_total == 0:
            c.fail("rules", "Prometheus has loaded no recording rules")

    print()
    print(f"dashboards: {len(all_exprs)} expressions ({queries} queries after variable expansion): "
          f"{with_data} with data, {static} static only, "
          f"{len(all_exprs) - with_data - static} failed")
    print(f"recording rules: {rules_total} evaluated, {rules_ok} with data")
    if static_list:
        print("static only (evaluated without error; data only under Docker):")
        for s in static_list:
            print(f"  - {s}")
    if c.failures:
        print(f"{len(c.failures)} failures")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
