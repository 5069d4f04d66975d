"""Scheduling policy on a fake pool: dynamic insertion, chunking, caps, preemption, aging."""
from framework.engine.sequence import SequenceStatus
from tests.utils.engine import complete_step, create_requests, create_scheduler


def test_new_requests_join_running_decodes_in_the_same_step():
    scheduler = create_scheduler()
    first, second = create_requests(2, prompt_len=10)
    scheduler.add(first)
    complete_step(scheduler, scheduler.schedule())
    scheduler.add(second)
    out = scheduler.schedule()
    assert out.seqs == [first, second] and out.num_new_tokens == [1, 10]


def test_long_prompt_is_chunked_under_the_token_budget():
    scheduler = create_scheduler(max_num_batched_tokens=8)
    (seq,) = create_requests(1, prompt_len=20)
    scheduler.add(seq)
    chunks = []
    while seq.num_computed_tokens < seq.num_prompt_tokens:
        out = scheduler.schedule()
        chunks.append(out.num_new_tokens[0])
        complete_step(scheduler, out)
    assert chunks == [8, 8, 4]


def test_without_chunking_a_prompt_waits_for_budget():
    scheduler = create_scheduler(max_num_batched_tokens=8, enable_chunked_prefill=False)
    (seq,) = create_requests(1, prompt_len=20)
    scheduler.add(seq)
    assert scheduler.schedule().seqs == []


def test_max_num_seqs_caps_the_batch():
    scheduler = create_scheduler(max_num_seqs=3)
    for seq in create_requests(5, prompt_len=4):
        scheduler.add(seq)
    assert len(scheduler.schedule().seqs) == 3 and len(scheduler.waiting) == 2


def test_preempts_most_recently_admitted_and_recomputes_later():
    scheduler = create_scheduler(num_blocks=6, block_size=4)  # 24 token slots
    seqs = create_requests(3, prompt_len=8)
    for seq in seqs:
        scheduler.add(seq)
    complete_step(scheduler, scheduler.schedule())  # all admitted (in order), 2 blocks each
    assert all(s.status == SequenceStatus.RUNNING for s in seqs)
    out = scheduler.schedule()  # each needs a 3rd block for token 9: none free
    assert out.preempted and out.preempted[0] is seqs[2]
    assert seqs[2].status == SequenceStatus.WAITING and seqs[2].block_table == []
    assert seqs[2].num_tokens == 9  # its sampled token is kept and will be recomputed
    assert scheduler.num_preemptions == 1 and out.seqs == seqs[:2]
    # Nothing lost, nothing duplicated.
    assert sorted(s.seq_id for s in scheduler.running + scheduler.waiting) == sorted(s.seq_id for s in seqs)


def test_priority_orders_waiting_and_aging_prevents_starvation():
    scheduler = create_scheduler(max_num_seqs=1, priority_aging_steps=2)
    (low,) = create_requests(1, prompt_len=2, priority=5)
    scheduler.add(low)
    served = []
    for step in range(12):
        (high,) = create_requests(1, prompt_len=2, priority=0, seed=step)
        scheduler.add(high)
        out = scheduler.schedule()
        served.extend(out.seqs)
        for seq in out.seqs:  # finish it at once so the next one can run
            scheduler.finish(seq)
    assert served[0] is not low  # higher priority first...
    assert low in served  # ...but waiting long enough promotes the low one
