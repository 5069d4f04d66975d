"""Who may act on what, beyond the role checks in `deps` (annotator, admin): ownership rules
shared by routes, written once so each route's check is one call.

Feedback on a message: its conversation's owner and admins always; annotators only inside review
scope, i.e. a message somebody has already given feedback on (what the review queue shows). An
annotator therefore cannot seed feedback on another user's private answers. Refusals are answered
like a missing message (404), so ids of other users' messages cannot be probed.
"""
from __future__ import annotations

from app.api.deps import AppState, Principal
from app.api.history import MessageRef
from app.store import crud_chat


def may_give_feedback(user: Principal, *, owner_id: str, in_review_scope: bool) -> bool:
    """`owner_id`: the user whose conversation holds the message; `in_review_scope`: whether the
    message already has feedback (so it is in the review queue)."""
    if user.id == owner_id or user.is_admin:
        return True
    return user.is_annotator and in_review_scope


def feedback_allowed(state: AppState, message: MessageRef, user: Principal) -> bool:
    """`may_give_feedback` for a message found by `history.find_message`; reads the store only
    when an annotator asks about someone else's message. Call it in a worker thread."""
    if may_give_feedback(user, owner_id=message.owner_id, in_review_scope=False):
        return True
    return user.is_annotator and _has_feedback(state, message.id)


def _has_feedback(state: AppState, message_id: str) -> bool:
    if state.outbox.index.feedback_of(message_id):  # given a moment ago, not written yet
        return True
    with state.store.session_factory() as session:
        row = crud_chat.get_message(session, message_id=message_id)
        return row is not None and bool(row.feedback)
