"""Model versions as a table and a lineage graph (Graphviz DOT), flywheel runs as rows; no Streamlit."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from app.core.names import reveal_hidden

TABLE_COLUMNS = ("name", "status", "id", "parent_id", "dataset_snapshot_id", "recipe", "metrics", "created_at")


def _quote(text: object) -> str:
    """A DOT string literal: backslashes and quotes escaped, so names never become DOT syntax."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def lineage_dot(versions: list[dict]) -> str:
    """parent -> child edges; each node labelled 'name (status)', hidden characters shown (an
    unclosed right-to-left override in a name would reverse "(retired)")."""
    lines = ["digraph lineage {", "rankdir=LR;", "node [shape=box, style=rounded];"]
    known = {v["id"] for v in versions}
    for v in versions:
        label = reveal_hidden(f"{v.get('name') or v['id']} ({v.get('status', '?')})")
        lines.append(f"{_quote(v['id'])} [label={_quote(label)}];")
        if v.get("parent_id") in known:
            lines.append(f"{_quote(v['parent_id'])} -> {_quote(v['id'])};")
    return "\n".join(lines + ["}"])


def version_label(version: dict) -> str:
    """'name (status)' as plain text for a picker, hidden characters shown."""
    return reveal_hidden(f"{version.get('name') or version['id']} ({version.get('status')})")


def version_rows(versions: list[dict]) -> list[dict]:
    """Flat rows for st.dataframe: nested recipe/metrics become compact JSON text; invisible and
    bidi control characters in any text are shown as [U+XXXX]."""
    def cell(value: object) -> object:
        value = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
        return reveal_hidden(value) if isinstance(value, str) else value
    return [{column: cell(v.get(column)) for column in TABLE_COLUMNS} for v in versions]


def _gate_report(version: dict) -> dict:
    report = (version.get("metrics") or {}).get("eval")
    return report if isinstance(report, dict) else {}


def gate_reasons(version: dict) -> list[str]:
    """Every reason the promotion gate gave for this version (empty for versions it never saw)."""
    return [str(r) for r in _gate_report(version).get("reasons") or []]


def gate_comparison(version: dict) -> list[dict]:
    """Base vs candidate pass rates (percent) the gate compared: the taught skill first, then each
    regression suite. Rows {measure, model: "before"|"after", percent} for a grouped bar chart."""
    report = _gate_report(version)
    outcomes = []
    skill = report.get("skill") or {}
    for key, label in (("corrections", "taught: corrections"), ("preferences", "taught: preferences")):
        if skill.get(key):
            outcomes.append((label, skill[key]))
    outcomes += [(f"kept: {name}", o) for name, o in (report.get("regression") or {}).items()]
    return [{"measure": label, "model": model, "percent": round(100 * o[f"{side}_rate"], 1)}
            for label, o in outcomes for model, side in (("before", "base"), ("after", "candidate"))]


def run_rows(runs: list[dict]) -> list[dict]:
    """Flywheel run records as rows: times from epoch seconds to ISO text, steps as their statuses."""
    def when(epoch_s: object) -> str | None:
        if not isinstance(epoch_s, (int, float)):
            return None
        return datetime.fromtimestamp(epoch_s, tz=timezone.utc).isoformat(timespec="seconds")
    return [{"id": r.get("id"), "status": r.get("status"), "started": when(r.get("created_at")),
             "updated": when(r.get("updated_at")), "steps": ", ".join(sorted(r.get("steps") or {})),
             "error": r.get("error")} for r in runs]
