"""Eval sets the operator registers: the flywheel's promotion gate runs each as a regression suite.

Reading needs the annotator role, changing needs admin. A set is created from a JSON body whose
`items` follow the JSONL format of `flywheel eval-set add` (one item per list element); errors name
the item (`param: "items.3"`).
"""
from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import AdminUser, AnnotatorUser, SessionDep
from app.api.errors import APIError
from app.api.schemas.eval_sets import (EvalItemPublic, EvalSetCreate, EvalSetCreated,
                                       EvalSetDeleted, EvalSetDetail, EvalSetList, EvalSetPublic)
from app.flywheel.eval_set_items import (EvalSetInputError, parse_items, validate_description,
                                         validate_name)
from app.store import crud_eval_sets

router = APIRouter(prefix="/v1/eval-sets", tags=["eval-sets"])


def _param(error: EvalSetInputError) -> str:
    if error.index is not None:
        return f"items.{error.index}"
    return error.where or "items"


@router.get("", response_model=EvalSetList)
def read_eval_sets(session: SessionDep, _user: AnnotatorUser) -> EvalSetList:
    return EvalSetList(data=[EvalSetPublic.model_validate(s)
                             for s in crud_eval_sets.list_eval_sets(session)])


@router.post("", response_model=EvalSetCreated)
def create_eval_set(body: EvalSetCreate, session: SessionDep, user: AdminUser) -> EvalSetCreated:
    try:
        name, description = validate_name(body.name), validate_description(body.description)
        items = parse_items(body.items)
    except EvalSetInputError as e:
        raise APIError(400, str(e), param=_param(e), code="invalid_eval_set") from e
    try:
        info = crud_eval_sets.add_eval_set(session, name=name, description=description, items=items,
                                           created_by=user.id, replace=body.replace)
    except crud_eval_sets.EvalSetExists as e:
        raise APIError(409, f'{e}; send "replace": true to overwrite it', param="name",
                       code="eval_set_exists") from e
    return EvalSetCreated.model_validate(info)


@router.get("/{name}", response_model=EvalSetDetail)
def read_eval_set(name: str, session: SessionDep, _user: AnnotatorUser) -> EvalSetDetail:
    info = crud_eval_sets.get_eval_set(session, name=name)
    items = crud_eval_sets.eval_set_items(session, name=name)
    if info is None or items is None:
        raise APIError(404, f"No eval set named '{name}'.", param="name", code="eval_set_not_found")
    return EvalSetDetail(**EvalSetPublic.model_validate(info).model_dump(),
                         items=[EvalItemPublic(**item.to_dict()) for item in items])


@router.delete("/{name}", response_model=EvalSetDeleted)
def delete_eval_set(name: str, session: SessionDep, _user: AdminUser) -> EvalSetDeleted:
    if not crud_eval_sets.remove_eval_set(session, name=name):
        raise APIError(404, f"No eval set named '{name}'.", param="name", code="eval_set_not_found")
    return EvalSetDeleted(name=name)
