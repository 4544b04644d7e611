"""One sandbox district: generated records plus an overlay of changes, and its events.

The overlay never copies the generated district. It holds only what changed: the current
state of records that were updated or created, a deletion bitmap per collection, and the
term/course renames of roll-overs, which apply to every generated section as it is rendered.
"""

from __future__ import annotations

import copy
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sandbox.config import DistrictConfig
from sandbox.events import EventBatch, EventLog
from sandbox.generator import NO_COURSE, NO_TERM, Generator, Record, strip_v31
from sandbox.hashing import fib32, fraction_threshold32, stream_key
from sandbox.ids import (
    BASE_GENERATION,
    CODE_OF_ROLE,
    COLLECTION_OF_CODE,
    CREATED_GENERATION,
    USER_CODES,
    Code,
    IdCodec,
)
from sandbox.paging import ids_before, ids_through, page

COLLECTIONS: tuple[str, ...] = ("districts", "schools", "users", "sections", "terms", "courses")
CODES_OF_COLLECTION: dict[str, tuple[Code, ...]] = {
    "districts": (Code.DISTRICT,),
    "schools": (Code.SCHOOL,),
    "users": USER_CODES,
    "sections": (Code.SECTION,),
    "terms": (Code.TERM,),
    "courses": (Code.COURSE,),
}
MUTABLE_COLLECTIONS = frozenset({"schools", "users", "sections", "terms", "courses"})


class ChangeError(ValueError):
    """A change that cannot be applied (unknown record, bad collection, ...)."""


def deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> Record:
    """A new dict: `base` with `changes` merged in recursively (nested dicts merge)."""
    merged = dict(base)
    for key, value in changes.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _changed_attributes(old: Mapping[str, Any], new: Mapping[str, Any]) -> Record:
    """Top-level attributes that differ, with their old values (Clever's previous_attributes)."""
    keys = (set(old) | set(new)) - {"last_modified"}
    return {key: old.get(key) for key in sorted(keys) if old.get(key) != new.get(key)}


class _Generated:
    """The generated records of one collection code, in index order."""

    def __init__(self, district: SandboxDistrict, code: Code) -> None:
        self._district = district
        self._code = code
        self._size = district.generator.counts[code]
        self._head = district.codec.head(code)

    def __len__(self) -> int:
        return self._size

    def id_at(self, position: int) -> str:
        return f"{self._head}{position:012x}"

    def _index_of(self, cursor: str) -> int | None:
        decoded = self._district.codec.decode(cursor)
        if decoded and decoded.generation == BASE_GENERATION and decoded.code == self._code:
            return min(decoded.index, self._size)
        return None

    def count_through(self, cursor: str) -> int:
        index = self._index_of(cursor)
        return min(index + 1, self._size) if index is not None else ids_through(self, cursor)

    def count_before(self, cursor: str) -> int:
        index = self._index_of(cursor)
        return index if index is not None else ids_before(self, cursor)

    def live(self, position: int) -> bool:
        return not self._district.is_deleted(self._code, position)

    def record(self, position: int, v31: bool) -> Record:
        return self._district.current_generated(self._code, position, v31)


class _Created:
    """Records of one collection code created through the change API, in id order: those
    it minted (in creation order, which is id order) or those served under foreign ids."""

    def __init__(self, district: SandboxDistrict, ids: list[str]) -> None:
        self._district = district
        self._ids = ids

    def __len__(self) -> int:
        return len(self._ids)

    def id_at(self, position: int) -> str:
        return self._ids[position]

    def count_through(self, cursor: str) -> int:
        return ids_through(self, cursor)

    def count_before(self, cursor: str) -> int:
        return ids_before(self, cursor)

    def live(self, position: int) -> bool:
        return self._district.is_live(self._ids[position])

    def record(self, position: int, v31: bool) -> Record:
        record = self._district.overlay_record(self._ids[position])
        assert record is not None
        return record if v31 else strip_v31(record)


class _Events:
    """The retained events, optionally only some record types."""

    def __init__(self, district: SandboxDistrict, record_types: frozenset[str]) -> None:
        self._district = district
        self._log = district.events
        self._types = record_types
        self._head = district.codec.head(Code.EVENT)

    def __len__(self) -> int:
        return self._log.total - self._log.floor

    def id_at(self, position: int) -> str:
        return f"{self._head}{self._log.floor + position:012x}"

    def count_through(self, cursor: str) -> int:
        seq = self._district.event_seq(cursor)
        if seq is None:
            return ids_through(self, cursor)
        return max(0, min(seq + 1 - self._log.floor, len(self)))

    def count_before(self, cursor: str) -> int:
        seq = self._district.event_seq(cursor)
        if seq is None:
            return ids_before(self, cursor)
        return max(0, min(seq - self._log.floor, len(self)))

    def live(self, position: int) -> bool:
        return not self._types or self._log.record_type(self._log.floor + position) in self._types

    def record(self, position: int, v31: bool) -> Record:
        seq = self._log.floor + position
        event = self._log.render(seq, self.id_at(position))
        if not v31:
            data = event["data"]
            stripped: Record = {"object": strip_v31(data["object"])}
            if "previous_attributes" in data:
                stripped["previous_attributes"] = strip_v31(data["previous_attributes"])
            event = {**event, "data": stripped}
        return event


class SandboxDistrict:
    """A generated district with its changes, events and `truth`.

    Reads (`page`, `get`) serve records as Clever does; the change methods (`create`,
    `update`, `delete`, `roll_over_terms`, `unshare`, ...) alter the district and record the
    matching events, exactly like a district editing its SIS.
    """

    def __init__(self, config: DistrictConfig) -> None:
        from sandbox.truth import Truth

        self.config = config
        self.codec = IdCodec(config.seed)
        self.generator = Generator(
            config.spec,
            config.effective_rates,
            config.seed,
            self.codec,
            config.name,
            messy=config.messy,
            today=config.today,
        )
        self.layout = self.generator.layout
        self.id = self.generator.district_id
        self.name = self.generator.district_name
        self.token = "".join(f"{stream_key(config.seed, 'token', part):016x}" for part in range(3))[
            :40
        ]
        # False once the district revoked the app: its token is rejected and listed nowhere.
        self.authorized = True
        self.token_created = f"{self.generator.launch_date}T00:00:00.000Z"
        self._rotations = 0
        self.events_enabled = config.events_enabled
        self.events = EventLog()

        self._records: dict[str, Record] = {}
        self._created: dict[Code, list[str]] = {code: [] for code in Code}
        # Ids of other districts served here (`create_with_id`), ascending per code.
        self._foreign: dict[Code, list[str]] = {}
        self._foreign_codes: dict[str, Code] = {}
        self._deleted_bits: dict[Code, bytearray] = {}
        self._deleted_created: set[str] = set()
        self._live_counts: dict[Code, int] = dict(self.generator.counts)
        self._remaps: list[tuple[dict[str, str], dict[str, str]]] = []
        self._composed: dict[int, tuple[dict[str, str], dict[str, str]]] = {0: ({}, {})}
        self._term_year = 0
        self._next_created = 0
        self._unshares = 0
        # Bumped by every change, so cached answers (truth) know when to recompute.
        self.version = 0
        self._add_history_events()
        self.truth = Truth(self)

    # -- reading -----------------------------------------------------------------------------

    def created_ids(self, code: Code) -> list[str]:
        """Ids created through the change API for one collection code (ascending, live or not)."""
        return self._created[code]

    def overlay_ids(self) -> list[str]:
        """Ids of every updated or created record (live or not)."""
        return list(self._records)

    def overlay_record(self, record_id: str) -> Record | None:
        """The stored current state of an updated or created record, if any (v3.1 form)."""
        return self._records.get(record_id)

    def is_deleted(self, code: Code, index: int) -> bool:
        """Whether generated record `index` of `code` was deleted or unshared."""
        bits = self._deleted_bits.get(code)
        return bits is not None and bool(bits[index >> 3] & (1 << (index & 7)))

    def is_live(self, record_id: str) -> bool:
        """Whether `/v3.x/{collection}/{id}` would serve this id."""
        if record_id in self._foreign_codes:
            return record_id not in self._deleted_created
        decoded = self.codec.decode(record_id)
        if decoded is None or decoded.code not in COLLECTION_OF_CODE or decoded.code == Code.EVENT:
            return False
        code = Code(decoded.code)
        if decoded.generation == BASE_GENERATION:
            return decoded.index < self.generator.counts[code] and not self.is_deleted(
                code, decoded.index
            )
        return record_id in self._records and record_id not in self._deleted_created

    def current_generated(self, code: Code, index: int, v31: bool) -> Record:
        """Generated record `index` of `code` as currently served (overlay applied)."""
        record = self._records.get(f"{self.codec.head(code)}{index:012x}")
        if record is not None:
            return record if v31 else strip_v31(record)
        if code == Code.SECTION:
            terms, courses = self._composed[len(self._remaps)]
            return self.generator.section(index, v31, terms, courses)
        return self.generator.render(code, index, v31)

    def section_links(self, index: int) -> tuple[str | None, str | None, str | None]:
        """The `school`, `term_id` and `course` generated section `index` is served with
        (changes and roll-overs applied), without rendering it: what the nested routes scan."""
        stored = self._records.get(f"{self.codec.head(Code.SECTION)}{index:012x}")
        if stored is not None:
            return stored.get("school"), stored.get("term_id"), stored.get("course")
        generator = self.generator
        flags = generator.section_flags(index)
        terms, courses = self._composed[len(self._remaps)]
        term = course = None
        if not flags & NO_TERM:
            term = generator.term_ids[generator.section_term(index)]
            term = terms.get(term, term)
        if not flags & NO_COURSE:
            course = generator.course_ids[generator.section_course(index)]
            course = courses.get(course, course)
        return generator.school_ids[self.layout.school_of_section(index)], term, course

    def section_matcher(self, field: str, value: str) -> Callable[[int], bool]:
        """A test of whether generated section `index` is served with `field` (`school`,
        `term_id` or `course`) equal to `value`: what `section_links` says, computing only
        that field, for scans over every section."""
        generator = self.generator
        head = self.codec.head(Code.SECTION)
        changed = {
            int(record_id[12:], 16) for record_id in self._records if record_id.startswith(head)
        }
        slot = ("school", "term_id", "course").index(field)

        def changed_or(test: Callable[[int], bool]) -> Callable[[int], bool]:
            if not changed:
                return test
            return lambda index: (
                self.section_links(index)[slot] == value if index in changed else test(index)
            )

        if field == "school":
            decoded = self.codec.decode(value)
            school = decoded.index if decoded and decoded.code == Code.SCHOOL else -1
            if decoded is None or decoded.generation != BASE_GENERATION:
                school = -1
            return changed_or(lambda index: self.layout.school_of_section(index) == school)
        terms, courses = self._composed[len(self._remaps)]
        if field == "term_id":
            wanted = {t for t, i in enumerate(generator.term_ids) if terms.get(i, i) == value}
            of, missing = generator.section_term, NO_TERM
        else:
            wanted = {c for c, i in enumerate(generator.course_ids) if courses.get(i, i) == value}
            of, missing = generator.section_course, NO_COURSE
        if not wanted:
            return changed_or(lambda index: False)
        return changed_or(
            lambda index: of(index) in wanted and not generator.section_flags(index) & missing
        )

    def _generated_at(self, code: Code, index: int, remaps: int) -> Record:
        """A generated record as it was after the first `remaps` roll-overs (v3.1 form)."""
        if code == Code.SECTION:
            terms, courses = self._composed[remaps]
            return self.generator.section(index, True, terms, courses)
        return self.generator.render(code, index, True)

    def get(self, record_id: str, v31: bool = True) -> tuple[str, Record] | None:
        """`(collection, record)` for a served id, or None (a 404)."""
        if not self.is_live(record_id):
            return None
        if (foreign_code := self._foreign_codes.get(record_id)) is not None:
            record = self._records[record_id]
            return COLLECTION_OF_CODE[foreign_code], record if v31 else strip_v31(record)
        decoded = self.codec.decode(record_id)
        assert decoded is not None
        code = Code(decoded.code)
        if decoded.generation == BASE_GENERATION:
            return COLLECTION_OF_CODE[code], self.current_generated(code, decoded.index, v31)
        record = self._records[record_id]
        return COLLECTION_OF_CODE[code], record if v31 else strip_v31(record)

    def segments(self, collection: str, role: str | None = None) -> list[Any]:
        """The id segments of a collection (one role of users if `role` is set), in id order."""
        codes = CODES_OF_COLLECTION[collection]
        if role is not None:
            codes = (CODE_OF_ROLE[role],)
        generated: list[Any] = [_Generated(self, code) for code in codes]
        created: list[Any] = [
            _Created(self, self.created_ids(code)) for code in codes if self._created[code]
        ]
        foreign: list[Any] = [_Created(self, self._foreign[c]) for c in codes if c in self._foreign]
        if not foreign:
            return generated + created
        # Another district's ids sort before or after all of this one's (their prefixes
        # differ), so segments ordered by first id still ascend from one to the next.
        return sorted(
            generated + created + foreign, key=lambda seg: seg.id_at(0) if len(seg) else ""
        )

    def page(
        self,
        collection: str,
        *,
        role: str | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        limit: int = 100,
        v31: bool = True,
    ) -> tuple[list[Record], bool]:
        """One page of a collection and whether it is full (so more may follow)."""
        return page(
            self.segments(collection, role),
            starting_after=starting_after,
            ending_before=ending_before,
            limit=limit,
            v31=v31,
        )

    def iter_records(
        self, collection: str, role: str | None = None, v31: bool = True
    ) -> Iterator[Record]:
        """Every live record of a collection in id order (memory stays flat)."""
        for segment in self.segments(collection, role):
            for position in range(len(segment)):
                if segment.live(position):
                    yield segment.record(position, v31)

    def live_count(self, code: Code) -> int:
        """How many records of one collection code are served."""
        return self._live_counts[code]

    # -- events ------------------------------------------------------------------------------

    def event_id(self, seq: int) -> str:
        """The id of event `seq`."""
        return self.codec.encode(Code.EVENT, seq)

    def event_seq(self, event_id: str) -> int | None:
        """The sequence number of an event id of this district, or None."""
        decoded = self.codec.decode(event_id)
        if decoded is None or decoded.code != Code.EVENT or decoded.generation != BASE_GENERATION:
            return None
        return decoded.index

    def event_is_retained(self, event_id: str) -> bool:
        """Whether an event id is known and still within retention (else Clever says 404)."""
        seq = self.event_seq(event_id)
        return seq is not None and self.events.floor <= seq < self.events.total

    def get_event(self, event_id: str, v31: bool = True) -> Record | None:
        """One retained event, or None."""
        seq = self.event_seq(event_id)
        if seq is None or not self.events.floor <= seq < self.events.total:
            return None
        segment = _Events(self, frozenset())
        return segment.record(seq - self.events.floor, v31)

    def event_segments(self, record_types: Sequence[str] = ()) -> list[Any]:
        """The events as a single segment, filtered by record type."""
        return [_Events(self, frozenset(record_types))]

    def page_events(
        self,
        *,
        record_types: Sequence[str] = (),
        starting_after: str | None = None,
        ending_before: str | None = None,
        limit: int = 100,
        v31: bool = True,
    ) -> tuple[list[Record], bool]:
        """One page of events, oldest first."""
        return page(
            self.event_segments(record_types),
            starting_after=starting_after,
            ending_before=ending_before,
            limit=limit,
            v31=v31,
        )

    def newest_event_id(self) -> str | None:
        """The id of the newest retained event."""
        if self.events.total <= self.events.floor:
            return None
        return self.event_id(self.events.total - 1)

    def _add_history_events(self) -> None:
        """A few past updates, so a fresh district already has an event cursor to record."""
        count = min(self.config.spec.history_events, self.generator.counts[Code.STUDENT])
        if not count:
            return
        generator = self.generator

        def render(offset: int) -> tuple[Record, Record | None]:
            record = generator.student(offset, True)
            return record, {"email": f"former.address{offset}@{generator.domain}"}

        self.events.append(
            EventBatch(
                0,
                "users.updated",
                f"{generator.school_year - 1}-09-30T12:00:00.000Z",
                lazy_indices=array("q", range(count)),
                lazy_render=render,
            )
        )

    # -- changes -----------------------------------------------------------------------------

    def _require(self, record_id: str) -> tuple[str, Record]:
        found = self.get(record_id)
        if found is None:
            raise ChangeError(f"no record {record_id} in district {self.id}")
        return found

    def _new_id(self, code: Code) -> str:
        record_id = self.codec.encode(code, self._next_created, CREATED_GENERATION)
        self._next_created += 1
        self._created[code].append(record_id)
        return record_id

    def _code_for(self, collection: str, role: str | None) -> Code:
        if collection not in MUTABLE_COLLECTIONS:
            raise ChangeError(f"cannot change {collection!r}")
        if collection == "users":
            if role not in CODE_OF_ROLE:
                raise ChangeError(f"users need a role, one of {', '.join(CODE_OF_ROLE)}")
            return CODE_OF_ROLE[role]
        return CODES_OF_COLLECTION[collection][0]

    def _template(self, code: Code, serial: int) -> Record:
        """A plausible new record to start from: a copy of a generated one, new identity."""
        count = self.generator.counts[code]
        record = self._generated_at(code, serial % count, len(self._remaps))
        if code in USER_CODES:
            record["email"] = f"new.user{serial}@{self.generator.domain}"
            role = next(iter(record["roles"].values()))
            for key in ("sis_id", "legacy_id", "student_number", "teacher_number", "staff_id"):
                if key in role:
                    role[key] = f"N{serial}"
        elif code == Code.SECTION:
            record.update(students=[], sis_id=f"N{serial}", name=f"{record.get('name')} (new)")
        elif "name" in record:
            record["name"] = f"{record['name']} (new)"
        return record

    def _store(self, record_id: str, record: Record) -> None:
        self._records[record_id] = record
        self.version += 1

    def create(
        self, collection: str, record: Mapping[str, Any] | None = None, *, role: str | None = None
    ) -> str:
        """Create a record (fields not given are filled in plausibly); returns its new id."""
        code = self._code_for(collection, role)
        serial = self._next_created
        record_id = self._new_id(code)
        self._add(collection, code, serial, record_id, record)
        return record_id

    def create_with_id(
        self,
        collection: str,
        record_id: str,
        record: Mapping[str, Any] | None = None,
        *,
        role: str | None = None,
    ) -> str:
        """Serve a record under an id this district did not mint, such as another
        district's: what a misconfigured (or hostile) SIS can send. Updates and deletes of
        it work like those of any created record."""
        code = self._code_for(collection, role)
        if self.codec.decode(record_id) is not None or record_id in self._foreign_codes:
            raise ChangeError(f"{record_id} is already an id of district {self.id}")
        serial = self._next_created
        self._next_created += 1
        ids = self._foreign.setdefault(code, [])
        ids.append(record_id)
        ids.sort()
        self._foreign_codes[record_id] = code
        self._add(collection, code, serial, record_id, record)
        return record_id

    def _add(
        self,
        collection: str,
        code: Code,
        serial: int,
        record_id: str,
        record: Mapping[str, Any] | None,
    ) -> None:
        """Store a new record built from the template of `serial` and `record`, and record
        its `created` event."""
        now = self.events.clock.now()
        new = deep_merge(self._template(code, serial), record or {})
        new["id"] = record_id
        new["district"] = self.id
        if "created" in new:
            new["created"] = now
        if "last_modified" in new:
            new["last_modified"] = now
        self._store(record_id, new)
        self._live_counts[code] += 1
        self.events.snapshot(f"{collection}.created", new)

    def update(self, record_id: str, changes: Mapping[str, Any]) -> Record:
        """Merge `changes` into a record (nested dicts merge); returns the new record."""
        collection, old = self._require(record_id)
        if collection not in MUTABLE_COLLECTIONS:
            raise ChangeError(f"cannot change {collection!r}")
        new = deep_merge(old, changes)
        new["id"] = record_id
        if "last_modified" in new:
            new["last_modified"] = self.events.clock.now()
        self._store(record_id, new)
        self.events.snapshot(f"{collection}.updated", new, _changed_attributes(old, new))
        return new

    def delete(self, record_id: str) -> None:
        """Delete (or unshare) one record."""
        collection, old = self._require(record_id)
        if collection not in MUTABLE_COLLECTIONS:
            raise ChangeError(f"cannot change {collection!r}")
        self._mark_deleted(record_id)
        self.events.snapshot(f"{collection}.deleted", old)

    def _mark_deleted(self, record_id: str) -> None:
        if (foreign_code := self._foreign_codes.get(record_id)) is not None:
            self._deleted_created.add(record_id)
            self._live_counts[foreign_code] -= 1
            self.version += 1
            return
        decoded = self.codec.decode(record_id)
        assert decoded is not None
        code = Code(decoded.code)
        if decoded.generation == BASE_GENERATION:
            bits = self._deleted_bits.setdefault(
                code, bytearray((self.generator.counts[code] + 7) // 8)
            )
            bits[decoded.index >> 3] |= 1 << (decoded.index & 7)
        else:
            self._deleted_created.add(record_id)
        self._live_counts[code] -= 1
        self.version += 1

    def restore(self, record_id: str) -> Record:
        """Share a deleted record again (a user deleted by mistake and put back), with a
        `created` event as Clever records it."""
        if self.is_live(record_id):
            raise ChangeError(f"{record_id} is not deleted")
        if (foreign_code := self._foreign_codes.get(record_id)) is not None:
            code = foreign_code
            self._deleted_created.discard(record_id)
        else:
            decoded = self.codec.decode(record_id)
            if decoded is None or decoded.code not in COLLECTION_OF_CODE:
                raise ChangeError(f"no record {record_id} in district {self.id}")
            code = Code(decoded.code)
            bits = self._deleted_bits.get(code)
            if decoded.generation == BASE_GENERATION and bits is not None:
                bits[decoded.index >> 3] &= ~(1 << (decoded.index & 7)) & 0xFF
            elif record_id in self._deleted_created:
                self._deleted_created.discard(record_id)
            else:
                raise ChangeError(f"no record {record_id} in district {self.id}")
        self._live_counts[code] += 1
        self.version += 1
        collection, record = self._require(record_id)
        self.events.snapshot(f"{collection}.created", record)
        return record

    def move_student(self, student_id: str, school_id: str) -> Record:
        """Move a student to another primary school (their sections stay as they are)."""
        _, student = self._require(student_id)
        if "student" not in student.get("roles", {}):
            raise ChangeError(f"{student_id} is not a student")
        if self.get(school_id) is None:
            raise ChangeError(f"no school {school_id}")
        role = student["roles"]["student"]
        enrollments = [{**item, "school": school_id} for item in role.get("enrollments") or []]
        return self.update(
            student_id,
            {
                "roles": {
                    "student": {
                        "school": school_id,
                        "schools": [school_id],
                        "enrollments": enrollments,
                    }
                }
            },
        )

    def remove_students(self, section_id: str, student_ids: Sequence[str]) -> Record:
        """Take students out of a section."""
        _, section = self._require(section_id)
        leaving = set(student_ids)
        kept = [sid for sid in section.get("students") or [] if sid not in leaving]
        return self.update(section_id, {"students": kept})

    def add_students(self, section_id: str, student_ids: Sequence[str]) -> Record:
        """Enroll students in a section."""
        _, section = self._require(section_id)
        current = list(section.get("students") or [])
        current += [sid for sid in student_ids if sid not in current]
        return self.update(section_id, {"students": current})

    def roll_over_terms(self) -> dict[str, str]:
        """Start the next school year the way Clever does it: new term and course ids.

        Every term and course is deleted and recreated with a new id (terms move one year
        on); sections keep their ids and point at the new terms and courses. Returns the
        old-to-new id map.
        """
        self._term_year += 1
        term_map: dict[str, str] = {}
        course_map: dict[str, str] = {}
        for code, mapping in ((Code.TERM, term_map), (Code.COURSE, course_map)):
            for old in list(self.iter_records(COLLECTION_OF_CODE[code])):
                new_id = self._new_id(code)
                mapping[old["id"]] = new_id
                new = dict(old, id=new_id)
                decoded = self.codec.decode(old["id"])
                if code == Code.TERM and decoded and decoded.generation == BASE_GENERATION:
                    new = self.generator.term(decoded.index, self._term_year, new_id)
                self._store(new_id, new)
                self._live_counts[code] += 1
                self.events.snapshot(f"{COLLECTION_OF_CODE[code]}.created", new)

        remap_index = len(self._remaps)
        self._remaps.append((term_map, course_map))
        previous_terms, previous_courses = self._composed[remap_index]
        self._composed[remap_index + 1] = (
            {**{k: term_map.get(v, v) for k, v in previous_terms.items()}, **term_map},
            {**{k: course_map.get(v, v) for k, v in previous_courses.items()}, **course_map},
        )
        self._update_sections_for_remap(remap_index, term_map, course_map)

        for old_id in [*term_map, *course_map]:
            self.delete(old_id)
        self.version += 1
        return {**term_map, **course_map}

    def _update_sections_for_remap(
        self, remap_index: int, term_map: Mapping[str, str], course_map: Mapping[str, str]
    ) -> None:
        head = self.codec.head(Code.SECTION)
        touched = array("q")
        generator = self.generator
        for index in range(generator.counts[Code.SECTION]):
            if self.is_deleted(Code.SECTION, index) or f"{head}{index:012x}" in self._records:
                continue
            if generator.section_flags(index) & (NO_TERM | NO_COURSE) != NO_TERM | NO_COURSE:
                touched.append(index)

        def render(offset: int) -> tuple[Record, Record | None]:
            index = touched[offset]
            after = self._generated_at(Code.SECTION, index, remap_index + 1)
            before = self._generated_at(Code.SECTION, index, remap_index)
            return after, _changed_attributes(before, after)

        self.events.append(
            EventBatch(
                0,
                "sections.updated",
                self.events.clock.now(),
                lazy_indices=touched,
                lazy_render=render,
            )
        )
        for record_id, record in list(self._records.items()):
            if not record_id.startswith(
                (head, self.codec.head(Code.SECTION, CREATED_GENERATION))
            ) or not self.is_live(record_id):
                continue
            changes = {}
            if record.get("term_id") in term_map:
                changes["term_id"] = term_map[record["term_id"]]
            if record.get("course") in course_map:
                changes["course"] = course_map[record["course"]]
            if changes:
                self.update(record_id, changes)

    def unshare(self, collection: str, fraction: float, *, role: str | None = None) -> int:
        """Stop sharing a share of a collection's generated records (a mass deletion).

        Sections keep listing unshared students, as Clever did for districts sharing by
        user; a mirror must skip those links. Returns how many records went away.
        """
        code = self._code_for(collection, role if collection == "users" else None)
        if not 0 < fraction <= 1:
            raise ChangeError("fraction must be in (0, 1]")
        self._unshares += 1
        salt = stream_key(self.config.seed, "unshare", self._unshares) & 0xFFFFFFFF
        bound = fraction_threshold32(fraction)
        remaps = len(self._remaps)
        head = self.codec.head(code)
        chosen = array("q")
        bits = self._deleted_bits.setdefault(
            code, bytearray((self.generator.counts[code] + 7) // 8)
        )
        for index in range(self.generator.counts[code]):
            if fib32(index, salt) < bound and not bits[index >> 3] & (1 << (index & 7)):
                bits[index >> 3] |= 1 << (index & 7)
                chosen.append(index)
        self._live_counts[code] -= len(chosen)
        self.version += 1

        def render(offset: int) -> tuple[Record, Record | None]:
            index = chosen[offset]
            stored = self._records.get(f"{head}{index:012x}")
            return (stored or self._generated_at(code, index, remaps)), None

        self.events.append(
            EventBatch(
                0,
                f"{collection}.deleted",
                self.events.clock.now(),
                lazy_indices=chosen,
                lazy_render=render,
            )
        )
        return len(chosen)

    def rotate_token(self) -> str:
        """Issue the district a new token (the old one is rejected from now on); a district
        that revoked the app authorizes it again."""
        self._rotations += 1
        self.token = "".join(
            f"{stream_key(self.config.seed, f'token-{self._rotations}', part):016x}"
            for part in range(3)
        )[:40]
        self.token_created = self.events.clock.now()
        self.authorized = True
        self.version += 1
        return self.token

    def revoke_token(self) -> None:
        """The district revokes the app: its token is rejected and Clever lists none."""
        self.authorized = False
        self.version += 1

    def pause(self, start: str | None = None, end: str | None = None) -> Record:
        """Clever's sync pause: from `start` (now when None) to `end` (open-ended when None).
        A pause already begun shows as `state: paused`; the district record changes, with a
        `districts.updated` event."""
        _, old = self._require(self.id)
        now = self.events.clock.now()
        begins = start or now
        new = dict(old, pause_start=begins, pause_end=end)
        if begins <= now:
            new["state"] = "paused"
        return self._replace_district(old, new)

    def resume(self) -> Record:
        """End the district's sync pause."""
        _, old = self._require(self.id)
        return self._replace_district(
            old, dict(old, pause_start=None, pause_end=None, state="success")
        )

    def _replace_district(self, old: Record, new: Record) -> Record:
        self._store(self.id, new)
        self.events.snapshot("districts.updated", new, _changed_attributes(old, new))
        return new

    def expire_events(self, through: str | None = None) -> int:
        """Drop events from retention up to and including `through` (all when None)."""
        if through is None:
            floor = self.events.total
        else:
            seq = self.event_seq(through)
            if seq is None or seq >= self.events.total:
                raise ChangeError(f"unknown event {through}")
            floor = seq + 1
        self.events.floor = max(self.events.floor, floor)
        self.version += 1
        return self.events.floor
