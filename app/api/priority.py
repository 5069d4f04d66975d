"""A request's engine priority, from its `priority` field and its API key's priority class.

The engine admits waiting requests lowest `priority` first (vLLM's convention: lower value =
served first, default 0), and ages them: every `EngineConfig.priority_aging_steps` engine steps
spent waiting is worth one level, so a batch job is delayed, never starved.

Each API key has a priority class (`flywheel keys create --priority batch|interactive`), whose
number is the default for the key's requests and also the best (lowest) it may ask for: a request
may always ask to be served later than its class (a larger number), never sooner. So a batch key
cannot jump ahead of people chatting, whatever it sends. Login sessions, and every request when
auth is off, are interactive.
"""
from __future__ import annotations

from app.api.deps import Principal
from app.api.errors import APIError
from app.store.crud_users import PriorityClass

# The engine priority of each class; BATCH waits behind INTERACTIVE until it has aged
# BATCH - INTERACTIVE levels (10 x 64 steps with the default aging).
CLASS_PRIORITY = {PriorityClass.INTERACTIVE: 0, PriorityClass.BATCH: 10}
MAX_PRIORITY = 1_000  # larger values would wait ~64k engine steps before aging helps at all


def request_priority(requested: int | None, user: Principal) -> int:
    """The engine priority for a request by `user` that asked for `requested` (None: the
    default of the user's key). APIError 403 naming `priority` when it asks for more than its
    class allows."""
    floor = CLASS_PRIORITY[user.priority_class]
    if requested is None:
        return floor
    if requested < floor:
        raise APIError(403, f"priority {requested} is above what this API key's priority class "
                            f"'{user.priority_class.value}' allows: lower values are served "
                            f"first, and this key may ask for {floor} to {MAX_PRIORITY}",
                       param="priority", code="priority_not_allowed")
    return requested
