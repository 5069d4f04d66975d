"""Report card: serving speed, utilization and user satisfaction per model version and device,
plotted over time from `GET /v1/report`."""
import altair as alt
import pandas as pd
import streamlit as st

from app.core.names import reveal_hidden
from app.ui.session import api, call

CHARTS = [
    ("Requests per second", ["req_per_s"]),
    ("Output tokens per second", ["tokens_per_s"]),
    ("Time to first token (ms)", ["ttft_ms_p50", "ttft_ms_p99"]),
    ("Time per output token (ms)", ["tpot_ms_p50", "tpot_ms_p99"]),
    ("Model FLOPs / bandwidth utilization", ["mfu", "mbu"]),
    ("Thumbs-up rate", ["thumbs_up_rate"]),
    ("Feedback volume", ["feedback_count"]),
]

SUMMARY_COLUMNS = ["model_version", "device", "requests", "tokens_per_s", "ttft_ms_p50", "ttft_ms_p99",
                   "tpot_ms_p50", "tpot_ms_p99", "mfu", "mbu", "thumbs_up_rate", "feedback_count"]


def _shown(value: object) -> object:
    """Version and device names with their invisible and bidi characters made visible."""
    return reveal_hidden(value) if isinstance(value, str) else value


def frame(report: dict) -> pd.DataFrame:
    rows = [{"series": reveal_hidden(f"{s['model_version']} @ {s['device']}"), **point}
            for s in report.get("series", []) for point in s.get("points", [])]
    table = pd.DataFrame(rows)
    if not table.empty:
        table["t"] = pd.to_datetime(table["t"])
    return table


def chart(table: pd.DataFrame, title: str, metrics: list[str]) -> None:
    long = table.melt(id_vars=["t", "series"], value_vars=metrics, var_name="metric").dropna(subset=["value"])
    if long.empty:
        st.caption(f"{title}: no data.")
        return
    color = "series:N" if len(metrics) == 1 else alt.Color("series:N")
    base = alt.Chart(long, title=title).mark_line(point=True).encode(
        x=alt.X("t:T", title=None), y=alt.Y("value:Q", title=None), color=color,
        tooltip=["series", "metric", "t:T", alt.Tooltip("value:Q", format=".4g")])
    if len(metrics) > 1:
        base = base.encode(strokeDash="metric:N", shape="metric:N")
    st.altair_chart(base, width="stretch")


st.title("Report card")
days = st.sidebar.slider("Days", 1, 90, 30)
report = call(api().report, days)
if report is None:
    st.stop()
left, middle, right = st.columns(3)
left.metric(f"Flywheel iterations, last {days} days", report.get("iterations", 0))
middle.metric("Requests", report.get("totals", {}).get("requests", 0))
right.metric("Feedback items", report.get("totals", {}).get("feedback", 0))
if summary := report.get("summary"):
    st.subheader("Per model version and device")
    st.dataframe([{k: _shown(row.get(k)) for k in SUMMARY_COLUMNS} for row in summary], hide_index=True)
table = frame(report)
if table.empty:
    st.info("No traffic in this period yet. Chat with a model and the report fills in.")
    st.stop()
for (title, metrics), column in zip(CHARTS, st.columns(2) * 4):
    with column:
        chart(table, title, metrics)
