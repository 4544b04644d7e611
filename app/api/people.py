"""People: a district's teacher, staff and district-admin records of one human, linked by
their shared email after every sync, and corrected by hand when the email misleads."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.api.auth import AUTH_RESPONSES
from app.api.deps import ID_PATTERN, Reader, ReaderDep, WriterDep, not_found
from app.api.pagination import JSONText, object_response
from app.api.problems import ProblemError, not_found_responses
from app.api.schemas import Person
from app.local import people
from app.mirror.queries import shapes

router = APIRouter(prefix="/v1", tags=["people"], responses=AUTH_RESPONSES)
NOT_FOUND = not_found_responses("person")

PersonOrUserId = Annotated[
    str,
    Path(
        pattern=ID_PATTERN,
        description="A person's id, or the id of any user record linked to it.",
    ),
]
RecordId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
_PERSON = shapes.json_object(shapes.person_fields("p"))


class PersonSplit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: RecordId = Field(description="The record that leaves the person, for good.")


class PersonMerge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[RecordId] = Field(
        min_length=2, max_length=100, description="Records that are one person, for good."
    )


async def _person(reader: Reader, person_id: uuid.UUID) -> JSONText:
    body: str = await reader.connection.fetchval(
        f"SELECT {_PERSON} FROM people p WHERE p.id = $1", person_id
    )
    return object_response(body)


async def _find(reader: Reader, record_id: str) -> tuple[uuid.UUID, str]:
    found = await people.person_of(reader.connection, record_id, reader.principal.district_ids)
    if found is None:
        raise not_found("person", record_id)
    return found["id"], found["district_id"]


@router.get(
    "/people/{person_id}",
    name="people-get",
    summary="Get a person",
    response_model=Person,
    responses=NOT_FOUND,
)
async def read_person(person_id: PersonOrUserId, reader: ReaderDep) -> JSONText:
    """A person by their id or by any linked user id, with every linked record and role."""
    found, _ = await _find(reader, person_id)
    return await _person(reader, found)


@router.post(
    "/people/{person_id}/split",
    name="people-split",
    summary="Split a record off a person",
    response_model=Person,
    responses=NOT_FOUND,
)
async def split_person(
    person_id: PersonOrUserId, writer: WriterDep, body: Annotated[PersonSplit, Body()]
) -> JSONText:
    """Take a record out of the person (it gets a person of its own and stays out on later
    syncs). Answers with the person it left."""
    async with writer.connection.transaction():
        found, district_id = await _find(writer, person_id)
        try:
            await people.split(writer.connection, found, district_id, body.user_id)
        except people.PeopleError as error:
            raise ProblemError(422, str(error)) from None
    return await _person(writer, found)


@router.post(
    "/people/merge",
    name="people-merge",
    summary="Merge records into one person",
    response_model=Person,
    responses=not_found_responses("user"),
)
async def merge_people(writer: WriterDep, body: Annotated[PersonMerge, Body()]) -> JSONText:
    """Make records one person (the first record's), and keep them so on later syncs."""
    user_ids = list(dict.fromkeys(body.user_ids))
    async with writer.connection.transaction():
        try:
            merged = await people.merge(writer.connection, writer.principal.district_ids, user_ids)
        except people.PeopleError as error:
            raise ProblemError(422, str(error)) from None
        except people.UnknownUser as error:
            raise not_found("user", str(error)) from None
    return await _person(writer, merged)
