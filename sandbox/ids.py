"""Clever-like record ids that encode where a record comes from.

An id is 24 lowercase hex characters, like a Mongo ObjectId:

    PPPPPPPP GG CC IIIIIIIIIIII
    district generation collection index

`generation` is 00 for generated records and 01 for records created later through the change
API, so created records sort after every generated one, as fresh ObjectIds would. Within one
collection ids therefore sort in generation order, and an id maps back to its index in O(1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from sandbox.hashing import stream_key

BASE_GENERATION = 0
CREATED_GENERATION = 1
_INDEX_DIGITS = 12
MAX_INDEX = (1 << (4 * _INDEX_DIGITS)) - 1


class Code(IntEnum):
    """Collection code stored in an id."""

    DISTRICT = 0x01
    SCHOOL = 0x02
    STUDENT = 0x10
    TEACHER = 0x11
    STAFF = 0x12
    DISTRICT_ADMIN = 0x13
    CONTACT = 0x14
    SECTION = 0x20
    TERM = 0x21
    COURSE = 0x22
    EVENT = 0x30
    # Ids that sections reference but that are never served: students and teachers the
    # district did not share with the application.
    UNSHARED_STUDENT = 0x40
    UNSHARED_TEACHER = 0x41
    TOKEN = 0x50


USER_CODES: tuple[Code, ...] = (
    Code.STUDENT,
    Code.TEACHER,
    Code.STAFF,
    Code.DISTRICT_ADMIN,
    Code.CONTACT,
)
ROLE_OF_CODE: dict[Code, str] = {
    Code.STUDENT: "student",
    Code.TEACHER: "teacher",
    Code.STAFF: "staff",
    Code.DISTRICT_ADMIN: "district_admin",
    Code.CONTACT: "contact",
}
CODE_OF_ROLE: dict[str, Code] = {role: code for code, role in ROLE_OF_CODE.items()}
COLLECTION_OF_CODE: dict[Code, str] = {
    Code.DISTRICT: "districts",
    Code.SCHOOL: "schools",
    **{code: "users" for code in USER_CODES},
    Code.SECTION: "sections",
    Code.TERM: "terms",
    Code.COURSE: "courses",
    Code.EVENT: "events",
}


@dataclass(frozen=True, slots=True)
class DecodedId:
    """The parts of an id issued by a district's `IdCodec`."""

    generation: int
    code: int
    index: int


class IdCodec:
    """Encodes and decodes the ids of one district (its 8-hex-digit prefix is seed-derived)."""

    def __init__(self, seed: int) -> None:
        # Keep the first digit in 5..6 so ids look like ObjectIds minted in recent years.
        self.prefix = f"{0x58000000 + stream_key(seed, 'district-prefix') % 0x10000000:08x}"
        self._heads: dict[tuple[int, int], str] = {
            (generation, code): f"{self.prefix}{generation:02x}{code:02x}"
            for generation in (BASE_GENERATION, CREATED_GENERATION)
            for code in Code
        }

    def head(self, code: int, generation: int = BASE_GENERATION) -> str:
        """Return the 12-character id prefix shared by one collection and generation."""
        return self._heads[(generation, code)]

    def encode(self, code: int, index: int, generation: int = BASE_GENERATION) -> str:
        """Return the id of record `index` of collection `code`."""
        return f"{self._heads[(generation, code)]}{index:012x}"

    def decode(self, record_id: str) -> DecodedId | None:
        """Return the parts of an id of this district, or None for anything else."""
        if len(record_id) != 24 or not record_id.startswith(self.prefix):
            return None
        try:
            generation = int(record_id[8:10], 16)
            code = int(record_id[10:12], 16)
            index = int(record_id[12:], 16)
        except ValueError:
            return None
        if (generation, code) not in self._heads or self.encode(
            code, index, generation
        ) != record_id:
            return None
        return DecodedId(generation, code, index)
