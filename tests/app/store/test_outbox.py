"""The durable outbox on its own: what `append` returned survives a reopen and a kill -9, records
come back field for field, concurrent appends share commits, acknowledged entries are gone, the
bound is reported, and one outbox file has one server."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timezone

import pytest

from app.store.crud_chat import ConversationDeletion, ExchangeRecord, FeedbackRecord, MessageRecord
from app.store.outbox import Outbox, outbox_path


def exchange(i: int, conversation: str = "conv_a") -> ExchangeRecord:
    return ExchangeRecord(
        conversation_id=conversation, user_id="u1", create_conversation=i == 0, title="t",
        model="m1", created_at=datetime(2026, 1, 1, 12, 0, i % 60, tzinfo=timezone.utc),
        messages=[MessageRecord(id=f"q{i}", role="user", content=f"question {i} \u00e9\u4e2d",
                                parent_id=f"a{i - 1}" if i else None),
                  MessageRecord(id=f"a{i}", role="assistant", content=f"answer {i}",
                                parent_id=f"q{i}", model_version="m1",
                                sampling_params={"temperature": 0.5, "stop": ["x"]},
                                engine_settings={"block_size": 16}, finish_reason="stop",
                                prompt_tokens=3, completion_tokens=4, ttft_ms=1.5,
                                latency_ms=9.0)])


def test_appended_records_survive_a_reopen_field_for_field(tmp_path):
    feedback = FeedbackRecord(id="fb1", message_id="a0", user_id="u1", thumbs="down", rating=2,
                              tags=["wrong"], comment=None, correction="better",
                              created_at=datetime(2026, 1, 2, tzinfo=timezone.utc))
    records = [exchange(0), feedback, ConversationDeletion("conv_a")]
    outbox = Outbox(tmp_path / "o.db", max_records=10)
    seqs = [outbox.append(r).seq for r in records]
    outbox.close()
    reopened = Outbox(tmp_path / "o.db", max_records=10)
    assert reopened.num_replayed == 3
    assert [(e.seq, e.record) for e in reopened.peek(10)] == list(zip(seqs, records))
    reopened.close()


def test_acknowledged_entries_are_gone_after_a_reopen(tmp_path):
    outbox = Outbox(tmp_path / "o.db", max_records=10)
    entries = [outbox.append(exchange(i)) for i in range(3)]
    outbox.ack(entries[:2])
    assert [e.seq for e in outbox.peek(10)] == [entries[2].seq] and outbox.depth == 1
    outbox.close()
    reopened = Outbox(tmp_path / "o.db", max_records=10)
    assert [e.record for e in reopened.peek(10)] == [entries[2].record]
    reopened.close()


def test_concurrent_appends_share_commits_and_keep_every_record(tmp_path):
    outbox = Outbox(tmp_path / "o.db", max_records=10_000)
    num_threads, per_thread = 16, 20
    barrier = threading.Barrier(num_threads)

    def worker(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            outbox.append(exchange(i, conversation=f"c{t}"))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(num_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outbox.depth == num_threads * per_thread
    assert outbox.num_commits < num_threads * per_thread  # grouped
    for t in range(num_threads):  # each conversation's entries in the order they were appended
        mine = [e.record.messages[0].id for e in outbox.peek(10_000)
                if e.record.conversation_id == f"c{t}"]
        assert mine == [f"q{i}" for i in range(per_thread)]
    outbox.close()


def test_the_bound_is_an_admission_check_not_a_refusal(tmp_path):
    outbox = Outbox(tmp_path / "o.db", max_records=2)
    first = outbox.append(exchange(0))
    assert outbox.has_room()
    outbox.append(exchange(1))
    assert not outbox.has_room() and outbox.depth == outbox.capacity == 2
    outbox.append(exchange(2))  # admitted earlier: still kept
    assert outbox.depth == 3
    outbox.ack([first])
    assert not outbox.has_room()
    outbox.ack(outbox.peek(1))
    assert outbox.has_room()
    outbox.close()


def test_one_outbox_file_serves_one_server(tmp_path):
    outbox = Outbox(tmp_path / "o.db", max_records=2)
    with pytest.raises(RuntimeError, match="another server"):
        Outbox(tmp_path / "o.db", max_records=2)
    outbox.close()
    Outbox(tmp_path / "o.db", max_records=2).close()  # free again once closed


def test_each_store_gets_its_own_outbox(tmp_path):
    sqlite = outbox_path(tmp_path, "sqlite:///x.db", None)
    assert sqlite != outbox_path(tmp_path, "postgresql+psycopg://h/db", None)
    assert outbox_path(tmp_path, "postgresql+psycopg://h/db", "s1") != outbox_path(
        tmp_path, "postgresql+psycopg://h/db", "s2")
    assert sqlite.parent == tmp_path / "outbox"


_APPENDER = textwrap.dedent("""
    import sys
    from tests.app.store.test_outbox import exchange
    from app.store.outbox import Outbox
    outbox = Outbox(__import__("pathlib").Path(sys.argv[1]), max_records=100_000)
    i = 0
    while True:
        entry = outbox.append(exchange(i, conversation="killed"))
        print(entry.seq, flush=True)  # only printed once append() returned: the promise
        i += 1
""")


def test_every_append_that_returned_survives_kill_9(tmp_path):
    path = tmp_path / "o.db"
    process = subprocess.Popen([sys.executable, "-c", _APPENDER, str(path)],
                               stdout=subprocess.PIPE, text=True)
    promised = []
    for line in process.stdout:
        promised.append(int(line))
        if len(promised) == 200:
            break
    process.kill()  # SIGKILL, mid-append
    process.wait()
    promised += [int(line) for line in process.stdout.read().split()]
    outbox = Outbox(path, max_records=100_000)
    stored = {e.seq for e in outbox.peek(100_000)}
    assert set(promised) <= stored and len(promised) >= 200
    outbox.close()
