"""The JSON shapes Postgres builds list exactly the fields of the documented response models.

A key in a shape but not in its model would reach clients undocumented (and be dropped by
generated clients); a model field missing from the shape would fail every response.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

import orjson
import pytest
from pydantic import BaseModel

from app.api import schemas
from app.api.pagination import page_response
from app.mirror.queries import shapes

SHAPES: list[tuple[str, Mapping[str, Any], type[BaseModel]]] = [
    ("district", shapes.district_fields(), schemas.District),
    ("school", shapes.school_fields(), schemas.School),
    ("term", shapes.term_fields(), schemas.Term),
    ("course", shapes.course_fields(), schemas.Course),
    ("group", shapes.group_fields(), schemas.Group),
    ("person", shapes.person_fields(), schemas.Person),
    ("section", shapes.section_fields(), schemas.Section),
    ("section in context", shapes.section_in_context_fields(), schemas.SectionInContext),
    ("user section", shapes.user_section_fields("m.role"), schemas.UserSection),
    (
        "term bucket",
        shapes.term_bucket_fields(term="null", current="true", sections="'[]'::json"),
        schemas.TermBucket,
    ),
    (
        "section detail",
        shapes.section_detail_fields(teachers="'[]'::json", students="'[]'::json"),
        schemas.SectionDetail,
    ),
    *(
        shape
        for sensitive in (False, True)
        for shape in (
            ("user", shapes.user_fields(sensitive=sensitive), schemas.User),
            (
                "linked user",
                shapes.linked_user_fields(sensitive=sensitive, section_ids="l.ids"),
                schemas.LinkedUser,
            ),
            ("contact", shapes.contact_fields(sensitive=sensitive), schemas.Contact),
            (
                "section teacher",
                shapes.section_teacher_fields(sensitive=sensitive),
                schemas.SectionTeacher,
            ),
            (
                "school user",
                shapes.school_user_fields(sensitive=sensitive, school="$1"),
                schemas.SchoolUser,
            ),
        )
    ),
]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (`Model` or `Model | None`), if any."""
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        models = [m for m in map(_model_of, get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _differences(fields: Mapping[str, Any], model: type[BaseModel], where: str) -> list[str]:
    found = []
    extra = sorted(set(fields) - set(model.model_fields))
    # A field the model does not require may be left out (`sensitive` without the scope).
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    missing = sorted(required - set(fields))
    if extra:
        found.append(f"{where}: the shape has {extra}, {model.__name__} does not")
    if missing:
        found.append(f"{where}: {model.__name__} has {missing}, the shape does not")
    for name, value in fields.items():
        if isinstance(value, Mapping) and name in model.model_fields:
            nested = _model_of(model.model_fields[name].annotation)
            if nested is None:
                found.append(f"{where}.{name}: an object in the shape, not in the model")
            else:
                found += _differences(value, nested, f"{where}.{name}")
    return found


@pytest.mark.parametrize(
    ("name", "fields", "model"), SHAPES, ids=[f"{name}-{i}" for i, (name, *_) in enumerate(SHAPES)]
)
def test_a_shape_has_the_fields_of_its_model(
    name: str, fields: Mapping[str, Any], model: type[BaseModel]
) -> None:
    assert _differences(fields, model, name) == []


def test_nested_objects_are_built_as_nested_json() -> None:
    sql = shapes.json_object(shapes.school_fields("sc"))
    assert "'principal', json_build_object('name', sc.principal_name" in sql
    assert "'address', json_build_object('address', sc.address" in sql


def test_raw_clever_json_never_leaves_the_database() -> None:
    for name, fields, _ in SHAPES:
        assert ".raw" not in shapes.json_object(fields), name


def test_sensitive_fields_are_selected_only_when_asked_for() -> None:
    assert shapes.user_fields("u", sensitive=True)["sensitive"] == "u.sensitive"
    assert "sensitive" not in shapes.json_object(shapes.user_fields("u", sensitive=False))


def test_the_page_envelope_is_the_page_model() -> None:
    response = page_response([("a", '{"id": "a"}'), ("b", '{"id": "b"}')], 1)
    body = orjson.loads(response.body)
    assert set(body) == set(schemas.Page[Any].model_fields)
    assert body["data"] == [{"id": "a"}] and body["next_cursor"]
