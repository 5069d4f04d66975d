"""Two engines stepping at the same time in different threads (the old and the new model during a
hot swap) each see only their own step's attention metadata."""
import threading

from tests.utils.engine import create_engine, create_model, greedy_batch

PROMPTS_A = [list(range(3, 40)), [7, 8, 9], list(range(100, 117))]
PROMPTS_B = [[11] * 5, list(range(50, 90)), [200, 201]]


def test_engines_in_two_threads_match_each_engine_alone():
    model_a, model_b = create_model(seed=1), create_model(seed=2)
    alone_a = greedy_batch(create_engine(model_a), PROMPTS_A, 24)
    alone_b = greedy_batch(create_engine(model_b), PROMPTS_B, 24)
    results, errors = {}, []
    start = threading.Barrier(2)

    def serve(name, model, prompts):
        try:
            engine = create_engine(model)
            start.wait()
            results[name] = [greedy_batch(engine, prompts, 24) for _ in range(3)]
        except Exception as e:  # reported below: a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=serve, args=("a", model_a, PROMPTS_A)),
               threading.Thread(target=serve, args=("b", model_b, PROMPTS_B))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results["a"] == [alone_a] * 3
    assert results["b"] == [alone_b] * 3
