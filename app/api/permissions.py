"""Who may act on what, beyond the role checks in `deps` (annotator, admin): ownership rules
shared by routes, written once so each route's check is one call.

Feedback on a message: its conversation's owner and admins always; annotators only inside review
scope, i.e. a message somebody has already given feedback on (what the review queue shows). An
annotator therefore cannot seed feedback on another user's private answers. Refusals are answered
like a missing message (404), so ids of other users' messages cannot be probed.
"""
from __future__ import annotations

from app.api.deps import Principal


def may_give_feedback(user: Principal, *, owner_id: str, in_review_scope: bool) -> bool:
    """`owner_id`: the user whose conversation holds the message; `in_review_scope`: whether the
    message already has feedback (so it is in the review queue)."""
    if user.id == owner_id or user.is_admin:
        return True
    return user.is_annotator and in_review_scope
