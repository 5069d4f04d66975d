"""Request and response shapes of `/v1/eval-sets` (operator-registered regression suites)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ITEM_DOC = ('One eval item: {"messages": [{"role": "system"|"user"|"assistant", "content": str}, '
            '...], "expected": str} with the last message from the user, or {"prompt": str, '
            '"expected": str}. An answer is correct when it contains `expected`.')


class EvalSetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="1-64 letters, digits, '.', '_' or '-', starting with a "
                      "letter or digit.")
    description: str = ""
    replace: bool = Field(default=False, description="Overwrite a set of the same name (else 409).")
    # Validated by `app.flywheel.eval_set_items.parse_items`: the rules of the CLI's JSONL lines.
    items: list[dict[str, Any]] = Field(description=f"1 to 10,000 items. {ITEM_DOC}")


class EvalSetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    object: Literal["eval_set"] = "eval_set"
    name: str
    description: str
    item_count: int
    content_sha256: str = Field(description="sha256 of the set's canonical JSONL (keys sorted, "
                                "one item per line, the prompt shorthand expanded).")
    created_by: str | None = Field(description="Username; null when added with the CLI.")
    created_at: datetime


class EvalSetCreated(EvalSetPublic):
    replaced: bool = Field(description="An earlier set of this name was overwritten.")


class EvalItemPublic(BaseModel):
    messages: list[dict[str, str]]
    expected: str


class EvalSetDetail(EvalSetPublic):
    items: list[EvalItemPublic]


class EvalSetList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EvalSetPublic]


class EvalSetDeleted(BaseModel):
    object: Literal["eval_set.deleted"] = "eval_set.deleted"
    name: str
    deleted: bool = True
