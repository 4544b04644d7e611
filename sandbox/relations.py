"""Clever's nested routes (`/sections/{id}/users`, `/schools/{id}/sections`, ...) as id
segments that `sandbox.paging` pages exactly like a top-level collection.

Every relation is read off the records the top-level routes serve, so the two always agree:

- a section's users are its served `students` and `teacher`/`teachers`; its school, course,
  term and district are the records its `school`, `course`, `term_id` and `district` name;
- a school's sections are the sections whose `school` it is; its terms and courses are those
  its sections name; a term's or course's sections and schools likewise;
- a user's schools are the schools on their record (`school`, `schools`) and, for a student,
  the schools of the sections they are enrolled in, so a student in three schools is a user
  of each; `primary=true` keeps only the record's `school`. A school's users are the
  students, teachers and staff that have it among their schools;
- a user's sections list them as student or teacher; `mystudents` are a teacher's students
  (across their sections) or a contact's, `myteachers` a student's teachers, `mycontacts`
  the contacts whose relationships name a student.

Generated records are found by formula (the layout's blocks per school and its inverses, the
truth's relation methods), records changed through the change API by checking each one.
Nothing is tabulated per record. Sections by term or by course, and staff by school, have no
inverse formula: they are found by a scan over the generated sections (cheap: no rendering,
see `SandboxDistrict.section_links`) or staff (rendered), whose cost grows with the district.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.ids import BASE_GENERATION, CODE_OF_ROLE, COLLECTION_OF_CODE, Code
from sandbox.paging import Record, Segment, ids_before, ids_through

if TYPE_CHECKING:
    from sandbox.district import SandboxDistrict

# collection -> nested name -> the collection its records belong to.
LISTS: dict[str, dict[str, str]] = {
    "sections": {"users": "users"},
    "schools": {"sections": "sections", "users": "users", "terms": "terms", "courses": "courses"},
    "terms": {"sections": "sections", "schools": "schools"},
    "courses": {"sections": "sections", "schools": "schools"},
    "users": {
        "sections": "sections",
        "schools": "schools",
        "mycontacts": "users",
        "mystudents": "users",
        "myteachers": "users",
    },
}
SINGLES: dict[str, dict[str, str]] = {
    "sections": {"school": "schools", "course": "courses", "term": "terms"},
}
# Every nested collection also names its district.
for _collection in LISTS:
    SINGLES.setdefault(_collection, {})["district"] = "districts"

# The roles each `role=` filter accepts (Clever's enums), and the filters each route keeps.
ROLE_FILTERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("sections", "users"): ("student", "teacher"),
    ("schools", "users"): ("staff", "student", "teacher"),
}
PRIMARY_FILTERS = frozenset({("schools", "users"), ("users", "schools")})

# Where a section's `school`, `term_id` and `course` sit in `section_links`.
_LINK_FIELDS = ("school", "term_id", "course")
# The field of a record that names its school, term or course.
_FIELD_OF = {"schools": "school", "terms": "term_id", "courses": "course"}
_SINGULAR = {
    "sections": "section",
    "schools": "school",
    "terms": "term",
    "courses": "course",
    "users": "user",
}


class RelationError(Exception):
    """A nested request Clever refuses: `status` and its `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Listing:
    """What a nested list route pages: its records' collection, their segments in id order,
    and the filters its paging links keep."""

    collection: str
    segments: list[Segment]
    kept: list[tuple[str, str]]


class _Merged(Sequence[int]):
    """A range of indices with a few more indices merged in, ascending."""

    def __init__(self, base: range, extra: Iterable[int]) -> None:
        self._base = base
        self._extra = sorted({index for index in extra if index not in base})
        # Where each extra index lands in the merged order.
        self._positions = [k + bisect_left(base, index) for k, index in enumerate(self._extra)]

    def __len__(self) -> int:
        return len(self._base) + len(self._extra)

    def __getitem__(self, position: Any) -> Any:
        k = bisect_left(self._positions, position)
        if k < len(self._positions) and self._positions[k] == position:
            return self._extra[k]
        return self._base[position - k]


class _Generated:
    """Generated records of one code at ascending indices, those passing `keep` served."""

    def __init__(
        self,
        district: SandboxDistrict,
        code: Code,
        indices: Sequence[int],
        keep: Callable[[int], bool],
    ) -> None:
        self._district = district
        self._code = code
        self._indices = indices
        self._keep = keep
        self._head = district.codec.head(code)

    def __len__(self) -> int:
        return len(self._indices)

    def id_at(self, position: int) -> str:
        return f"{self._head}{self._indices[position]:012x}"

    def index_at(self, position: int) -> int:
        """The generated index at a position."""
        return self._indices[position]

    def _index_of(self, cursor: str) -> int | None:
        decoded = self._district.codec.decode(cursor)
        if decoded and decoded.generation == BASE_GENERATION and decoded.code == self._code:
            return decoded.index
        return None

    def count_through(self, cursor: str) -> int:
        index = self._index_of(cursor)
        if index is None:
            return ids_through(self, cursor)
        return bisect_right(self._indices, index)

    def count_before(self, cursor: str) -> int:
        index = self._index_of(cursor)
        if index is None:
            return ids_before(self, cursor)
        return bisect_left(self._indices, index)

    def live(self, position: int) -> bool:
        index = self._indices[position]
        return not self._district.is_deleted(self._code, index) and self._keep(index)

    def record(self, position: int, v31: bool) -> Record:
        return self._district.current_generated(self._code, self._indices[position], v31)


class _Listed:
    """Records by id, ascending; those no longer served are skipped."""

    def __init__(self, district: SandboxDistrict, ids: Iterable[str]) -> None:
        self._district = district
        self._ids = sorted(set(ids))

    def __len__(self) -> int:
        return len(self._ids)

    def id_at(self, position: int) -> str:
        return self._ids[position]

    def count_through(self, cursor: str) -> int:
        return bisect_right(self._ids, cursor)

    def count_before(self, cursor: str) -> int:
        return bisect_left(self._ids, cursor)

    def live(self, position: int) -> bool:
        return self._district.is_live(self._ids[position])

    def record(self, position: int, v31: bool) -> Record:
        found = self._district.get(self._ids[position], v31)
        assert found is not None
        return found[1]


def _role_of(record: Mapping[str, Any]) -> tuple[str | None, Record]:
    roles = record.get("roles") or {}
    for name, role in roles.items():
        return name, role if isinstance(role, dict) else {}
    return None, {}


class Relations:
    """The nested routes of one district."""

    def __init__(self, district: SandboxDistrict) -> None:
        self._district = district
        self._truth = district.truth
        self._layout = district.layout
        self._generator = district.generator

    # -- the routes --------------------------------------------------------------------------

    def single(self, collection: str, record_id: str, name: str, v31: bool) -> Record:
        """The record a single nested route serves (`/sections/{id}/term`, ...)."""
        record = self._require(collection, record_id)
        target = SINGLES[collection][name]
        if target == "districts":
            related: str | None = self._district.id
        else:
            related = record.get(_FIELD_OF[target])
        found = self._district.get(related, v31) if isinstance(related, str) else None
        if found is None or found[0] != target:
            raise RelationError(404, f"{_SINGULAR[collection]} {record_id} has no {name}")
        return found[1]

    def listing(
        self, collection: str, record_id: str, name: str, params: Mapping[str, str]
    ) -> Listing:
        """What a nested list route pages, its filters checked (400 when Clever's enums
        refuse them) and its record found (404 when this district does not serve it)."""
        route = (collection, name)
        # Filters a route does not take are ignored, as Clever ignores unknown parameters.
        role = (params.get("role") or None) if route in ROLE_FILTERS else None
        if role is not None and role not in ROLE_FILTERS[route]:
            raise RelationError(400, f"invalid role {role!r}")
        primary_raw = params.get("primary") if route in PRIMARY_FILTERS else None
        if primary_raw not in (None, "", "true"):
            raise RelationError(400, f"invalid primary {primary_raw!r}")
        primary = primary_raw == "true"
        record = self._require(collection, record_id)
        kept = [("role", role)] if role else []
        if primary:
            kept.append(("primary", "true"))
        target = LISTS[collection][name]
        return Listing(target, self._segments(collection, record, name, role, primary), kept)

    def _segments(
        self, collection: str, record: Record, name: str, role: str | None, primary: bool
    ) -> list[Segment]:
        record_id = record["id"]
        if collection == "sections":
            return [self._listed(self._section_users(record, role))]
        if collection == "schools":
            if name == "sections":
                return self._sections_where("school", record_id)
            if name == "users":
                return self._school_users(record_id, role, primary)
            field = "term_id" if name == "terms" else "course"
            return [self._listed(self._linked_by_school_sections(record_id, field))]
        field = "term_id" if collection == "terms" else "course"
        if collection in ("terms", "courses"):
            if name == "sections":
                return self._sections_where(field, record_id)
            return [self._listed(self._schools_with(field, record_id))]
        return [self._listed(self._user_list(record, name, primary))]

    # -- sections ----------------------------------------------------------------------------

    @staticmethod
    def _section_users(section: Record, role: str | None) -> list[str]:
        ids: list[Any] = []
        if role in (None, "student"):
            ids += section.get("students") or []
        if role in (None, "teacher"):
            ids += [section.get("teacher"), *(section.get("teachers") or [])]
        return [user_id for user_id in ids if isinstance(user_id, str)]

    def _sections_where(self, field: str, value: str) -> list[Segment]:
        """Sections whose `field` (`school`, `term_id` or `course`) is `value`."""
        district, layout = self._district, self._layout
        candidates: Sequence[int]
        if field == "school":
            school = self._generated_index(value, Code.SCHOOL)
            block = (
                range(layout.section_start[school], layout.section_start[school + 1])
                if school is not None
                else range(0)
            )
            moved_in = [
                index
                for index, stored in self._changed_generated(Code.SECTION)
                if stored.get("school") == value
            ]
            candidates = _Merged(block, moved_in)
        else:
            candidates = range(layout.n_sections)
        generated = _Generated(
            district, Code.SECTION, candidates, district.section_matcher(field, value)
        )
        created = [
            section_id
            for section_id, stored in self._created("sections")
            if stored.get(field) == value
        ]
        return self._combine([generated], created)

    def _linked_by_school_sections(self, school_id: str, field: str) -> set[str]:
        """The terms or courses the sections of a school name."""
        slot = _LINK_FIELDS.index(field)
        found: set[str] = set()
        for segment in self._sections_where("school", school_id):
            for position in range(len(segment)):
                if not segment.live(position):
                    continue
                if isinstance(segment, _Generated):
                    value = self._district.section_links(segment.index_at(position))[slot]
                else:
                    value = segment.record(position, True).get(field)
                if isinstance(value, str):
                    found.add(value)
        return found

    def _schools_with(self, field: str, value: str) -> set[str]:
        """The schools of the sections whose `field` is `value`: a school is in once one of
        its sections is found, so dense relations (terms) stop early in each school."""
        district, layout = self._district, self._layout
        matches = district.section_matcher(field, value)
        found: set[str] = set()
        for school, school_id in enumerate(self._generator.school_ids):
            in_school = district.section_matcher("school", school_id)
            for index in range(layout.section_start[school], layout.section_start[school + 1]):
                if (
                    not district.is_deleted(Code.SECTION, index)
                    and matches(index)
                    and in_school(index)
                ):
                    found.add(school_id)
                    break
        # Changed sections may have moved to another school (or be new).
        for _, stored in self._live_records("sections"):
            moved_to = stored.get("school")
            if stored.get(field) == value and isinstance(moved_to, str):
                found.add(moved_to)
        return found

    # -- users -------------------------------------------------------------------------------

    def user_schools(self, user_id: str, record: Record, primary: bool) -> set[str]:
        """The schools a user belongs to (see the module docstring)."""
        role_name, role = _role_of(record)
        if primary:
            school = role.get("school")
            return {school} if isinstance(school, str) else set()
        schools = set(self._truth.user_school_ids(user_id))
        if role_name == "student":
            schools.update(self._truth.student_school_ids(user_id))
        return schools

    def _is_user_of(self, user_id: str, school_id: str, primary: bool) -> bool:
        found = self._district.get(user_id)
        return (
            found is not None
            and found[0] == "users"
            and school_id in self.user_schools(user_id, found[1], primary)
        )

    def _school_users(self, school_id: str, role: str | None, primary: bool) -> list[Segment]:
        """Students, teachers and staff of a school: each code's generated block (staff:
        every staff member) plus the students who visit it, changed records checked."""
        layout, generator = self._layout, self._generator
        school = self._generated_index(school_id, Code.SCHOOL)
        roles = (role,) if role else ROLE_FILTERS[("schools", "users")]
        segments: list[Segment] = []
        for code in (Code.STUDENT, Code.TEACHER, Code.STAFF):
            if code not in {CODE_OF_ROLE[name] for name in roles}:
                continue
            changed = {index for index, _ in self._changed_generated(code)}
            extra = set(changed)
            if school is None:
                block = range(0)
            elif code == Code.STUDENT:
                block = range(layout.student_start[school], layout.student_start[school + 1])
                if not primary:
                    extra.update(self._visiting_students(school, school_id))
            elif code == Code.TEACHER:
                block = range(layout.teacher_start[school], layout.teacher_start[school + 1])
            else:
                # Generated staff have no primary school; which schools they have is known
                # only from their records.
                block = range(0) if primary else range(layout.n_staff)
            # A generated student or teacher of the school's block has it as their `school`
            # unless changed; staff, visitors and changed users are checked one by one.
            sure = block if code != Code.STAFF else range(0)

            def keep(
                index: int, code: Code = code, sure: range = sure, changed: set[int] = changed
            ) -> bool:
                if index in sure and index not in changed:
                    return True
                return self._is_user_of(generator.id_of(code, index), school_id, primary)

            segments.append(_Generated(self._district, code, _Merged(block, extra), keep))
        created = [
            user_id
            for user_id, stored in self._created("users")
            if _role_of(stored)[0] in roles and self._is_user_of(user_id, school_id, primary)
        ]
        return self._combine(segments, created)

    def _visiting_students(self, school: int, school_id: str) -> set[int]:
        """Generated students of other schools enrolled in a section of this one (by the
        layout's formula, plus those changed sections of the school list)."""
        layout = self._layout
        visitors: set[int] = set()
        for section in range(layout.section_start[school], layout.section_start[school + 1]):
            visitors.update(layout.section_guests(section))
        for _, stored in self._live_records("sections"):
            if stored.get("school") != school_id:
                continue
            for student_id in stored.get("students") or []:
                index = self._generated_index(student_id, Code.STUDENT)
                if index is not None:
                    visitors.add(index)
        return visitors

    def _user_list(self, user: Record, name: str, primary: bool) -> Iterable[str]:
        truth, user_id = self._truth, user["id"]
        role_name, _ = _role_of(user)
        if name == "schools":
            return self.user_schools(user_id, user, primary)
        if name == "sections":
            return {*truth.student_section_ids(user_id), *truth.teacher_section_ids(user_id)}
        if name == "mystudents":
            if role_name == "teacher":
                return truth.teacher_student_ids(user_id)
            return truth.contact_student_ids(user_id) if role_name == "contact" else []
        if role_name != "student":
            return []
        if name == "myteachers":
            return truth.student_teacher_ids(user_id)
        return truth.student_contact_ids(user_id)

    # -- shared ------------------------------------------------------------------------------

    def _require(self, collection: str, record_id: str) -> Record:
        found = self._district.get(record_id)
        if found is None or found[0] != collection:
            raise RelationError(404, f"{_SINGULAR.get(collection, 'user')} {record_id} not found")
        return found[1]

    def _generated_index(self, record_id: Any, code: Code) -> int | None:
        decoded = self._district.codec.decode(record_id) if isinstance(record_id, str) else None
        if decoded and decoded.generation == BASE_GENERATION and decoded.code == code:
            return decoded.index
        return None

    def _live_records(self, collection: str) -> Iterator[tuple[str, Record]]:
        """Changed or created records of a collection that are served (the overlay only)."""
        district = self._district
        for record_id in district.overlay_ids():
            found = district.get(record_id)
            if found is not None and found[0] == collection:
                yield record_id, found[1]

    def _changed_generated(self, code: Code) -> Iterator[tuple[int, Record]]:
        """Generated records of one code that were changed and are served: (index, record)."""
        for record_id, stored in self._live_records(COLLECTION_OF_CODE[code]):
            index = self._generated_index(record_id, code)
            if index is not None:
                yield index, stored

    def _created(self, collection: str) -> Iterator[tuple[str, Record]]:
        """Served records of a collection that the change API created (own or foreign ids)."""
        district = self._district
        for record_id, stored in self._live_records(collection):
            decoded = district.codec.decode(record_id)
            if decoded is None or decoded.generation != BASE_GENERATION:
                yield record_id, stored

    def _listed(self, ids: Iterable[str]) -> Segment:
        return _Listed(self._district, ids)

    def _combine(self, generated: list[Segment], ids: Iterable[str]) -> list[Segment]:
        """Generated segments and created ids as segments ascending from one to the next:
        another district's ids sort wholly before or after this one's."""
        prefix = self._district.codec.prefix
        listed = sorted(set(ids))
        before = [record_id for record_id in listed if record_id < prefix]
        after = [record_id for record_id in listed if record_id >= prefix]
        segments = [self._listed(before), *generated, self._listed(after)]
        return [segment for segment in segments if len(segment)]
