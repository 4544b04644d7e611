"""Where every generated record sits and how records relate, by formula.

The district is laid out in contiguous blocks per school: school `s` owns students
`[student_start[s], student_start[s+1])`, and likewise sections and teachers. Within a school,
students come in contiguous grade bands, one per grade the school teaches (sized by a seeded
split), and a student's grade is that of their band. Each period shuffles each band's students
with an affine permutation and cuts the shuffled list into sections of `section_size`, so every
home student of a section is in the section's grade, and a section's students and a student's
sections are both a few modular operations away, in either direction. A school's sections go
period by period and, within a period, band by band (`band_block_start`). The edge cases that
change relationships (students in other schools' sections, foreign and co-teachers, idle users)
are chosen by strides or cheap hashes that can be inverted the same way.

Nothing here holds per-record state: memory is a handful of integers per school and grade band.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator

from sandbox.config import EdgeRates, SizeSpec
from sandbox.hashing import fib32, fraction_threshold32, mix64, stream_key, threshold16

# Sections shift a guest student's section by this much per extra school, so a student's two
# guest sections land in different places.
_GUEST_SHIFT = 7
MAX_CO_TEACHERS = 9

KIND_ELEMENTARY, KIND_MIDDLE, KIND_HIGH = 0, 1, 2
_KIND_PATTERN = (KIND_ELEMENTARY, KIND_MIDDLE, KIND_HIGH, KIND_ELEMENTARY, KIND_ELEMENTARY)
_KIND_WEIGHT = (1.0, 1.4, 2.4)
# The grades each school kind teaches, `[low, high)` as indices of Clever's grades
# (0 is Kindergarten): K-5, 6-8 and 9-12.
KIND_GRADES = ((0, 6), (6, 9), (9, 13))


def _stride(rate: float) -> int:
    """The period of a stride-selected edge case (0 disables it)."""
    return max(2, round(1 / rate)) if rate > 0 else 0


def _prefix(counts: list[int]) -> list[int]:
    starts = [0]
    for count in counts:
        starts.append(starts[-1] + count)
    return starts


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Split `total` in proportion to `weights`, every part at least one; with fewer than one
    each, `total` parts of one spread evenly and the others none."""
    parts = len(weights)
    if total < parts:
        return [(k + 1) * total // parts - k * total // parts for k in range(parts)]
    scale = (total - parts) / sum(weights)
    shares = [w * scale for w in weights]
    counts = [1 + int(share) for share in shares]
    leftover = total - sum(counts)
    by_fraction = sorted(range(parts), key=lambda k: (int(shares[k]) - shares[k], k))
    for k in by_fraction[:leftover]:
        counts[k] += 1
    return counts


def _affine(h: int, n: int) -> tuple[int, int, int]:
    """A shuffle `pos = (a*l + b) % n` of `n` items drawn from `h`, as (a, a's inverse, b)."""
    if n <= 1:
        return 0, 0, 0
    a = (h % n) | 1 if n > 2 else 1
    while math.gcd(a, n) != 1:
        a += 1
    return a % n, pow(a, -1, n), (h >> 32) % n


class Layout:
    """Counts, positions and relationships of one district's generated records."""

    def __init__(self, spec: SizeSpec, rates: EdgeRates, seed: int) -> None:
        self.spec = spec
        self.rates = rates
        self.seed = seed
        schools = spec.schools
        if schools < 1 or spec.students < schools:
            raise ValueError("a district needs at least one school and one student per school")
        self.n_schools = schools
        self.section_size = spec.section_size
        self.school_kind = [_KIND_PATTERN[s % len(_KIND_PATTERN)] for s in range(schools)]

        self.school_students = self._split_students(spec.students, seed)
        self.student_start = _prefix(self.school_students)
        self.n_students = spec.students
        self.school_low_grade = [KIND_GRADES[kind][0] for kind in self.school_kind]

        # Per school, one band per grade it teaches (the first band is the school's lowest
        # grade): its first student, its size, and its first block within a period.
        self.band_students = self._split_bands(seed)
        self.band_start = [
            [start + offset for offset in _prefix(sizes)[:-1]]
            for start, sizes in zip(self.student_start[:-1], self.band_students, strict=True)
        ]
        self.band_blocks = [
            [-(-n // self.section_size) for n in sizes] for sizes in self.band_students
        ]
        self.band_block_start = [_prefix(blocks)[:-1] for blocks in self.band_blocks]

        short = spec.short_school_every
        self.school_periods = [
            max(1, spec.periods - 1) if short and s % short == short - 1 else spec.periods
            for s in range(schools)
        ]
        self.school_blocks = [sum(blocks) for blocks in self.band_blocks]
        self.school_sections = [
            periods * blocks
            for periods, blocks in zip(self.school_periods, self.school_blocks, strict=True)
        ]
        self.section_start = _prefix(self.school_sections)
        self.n_sections = self.section_start[-1]

        self.school_teaching = [
            min(n, math.ceil(n / spec.sections_per_teacher)) for n in self.school_sections
        ]
        self.school_idle = self._idle_teachers(rates.teacher_no_sections, seed)
        self.teacher_start = _prefix(
            [t + i for t, i in zip(self.school_teaching, self.school_idle, strict=True)]
        )
        self.n_teachers = self.teacher_start[-1]
        self.pool_start = _prefix(self.school_teaching)
        self.n_pool = self.pool_start[-1]

        self.n_staff = max(1, round(spec.students * spec.staff_per_student))
        self.n_district_admins = spec.district_admins
        self.n_contacts = max(1, round(spec.students * spec.contacts_per_student))
        self.n_courses = max(
            spec.min_courses, len(_KIND_WEIGHT), self.n_sections // spec.sections_per_course
        )
        # Courses come in one block per school kind, sized by that kind's sections.
        self.course_start = _prefix(self._split_courses())
        self.n_terms = 3

        self._permutations = self._build_permutations(seed)

        self.multi_stride = _stride(rates.multi_school_student) if schools >= 2 else 0
        self.three_schools = schools >= 3
        # Students also in other schools go to schools of their own level when it has three
        # schools or more (`_guest_school`): the schools of each kind in order, and each
        # school's place among them.
        self.kind_schools = [
            [s for s in range(schools) if self.school_kind[s] == kind] for kind in range(3)
        ]
        self._kind_place = [
            self.kind_schools[kind].index(s) for s, kind in enumerate(self.school_kind)
        ]
        foreign = _stride(rates.foreign_teacher_section) if schools >= 2 else 0
        self.school_foreign_stride = [
            foreign if foreign and self.school_teaching[(s + 1) % schools] else 0
            for s in range(schools)
        ]

        self._unenrolled_salt = stream_key(seed, "unenrolled") & 0xFFFFFFFF
        self._unenrolled_bound = fraction_threshold32(rates.student_no_sections)
        self.forced_unenrolled = (
            self.student_start[0] + 1
            if rates.student_no_sections > 0 and self.school_students[0] >= 2
            else -1
        )

        self._section_key = stream_key(seed, "section-links")
        self._co_bound = threshold16(rates.co_teacher)
        self._co_max_bound = threshold16(rates.max_co_teachers)
        self._ghost_student_bound = threshold16(rates.unshared_student_in_section)
        self._ghost_teacher_bound = threshold16(rates.unshared_teacher_in_section)
        self.forced_max_co = 1 if rates.max_co_teachers > 0 and self.n_sections > 1 else -1
        self.forced_ghost_student = (
            2 if rates.unshared_student_in_section > 0 and self.n_sections > 2 else -1
        )
        self.forced_ghost_teacher = (
            3 if rates.unshared_teacher_in_section > 0 and self.n_sections > 3 else -1
        )

        self._contact_key = stream_key(seed, "contact-links")
        self._several_bound = threshold16(rates.contact_several_students)
        self.forced_several = 1 if rates.contact_several_students > 0 else -1

    # -- construction helpers -------------------------------------------------------------

    def _split_students(self, total: int, seed: int) -> list[int]:
        """Split students over schools, high schools larger, every school at least one."""
        key = stream_key(seed, "school-size")
        weights = [
            _KIND_WEIGHT[kind] * (0.6 + 0.8 * (mix64(key ^ s) & 0xFFFF) / 0xFFFF)
            for s, kind in enumerate(self.school_kind)
        ]
        return _apportion(total, weights)

    def _split_bands(self, seed: int) -> list[list[int]]:
        """Split each school's students over its grades, within 20% of even, every grade at
        least one student; a school with fewer students than grades leaves some grades empty."""
        key = stream_key(seed, "grade-bands")
        split = []
        for s, (kind, n) in enumerate(zip(self.school_kind, self.school_students, strict=True)):
            low, high = KIND_GRADES[kind]
            weights = [
                0.8 + 0.4 * (mix64(key ^ (s << 4) ^ g) & 0xFFFF) / 0xFFFF for g in range(high - low)
            ]
            split.append(_apportion(n, weights))
        return split

    def _split_courses(self) -> list[int]:
        """How many courses each school kind offers: at least one each, the rest shared out
        by the kind's sections."""
        sections = [0] * len(_KIND_WEIGHT)
        for kind, count in zip(self.school_kind, self.school_sections, strict=True):
            sections[kind] += count
        spare = self.n_courses - len(sections)
        shares = [spare * count / self.n_sections for count in sections]
        counts = [1 + int(share) for share in shares]
        leftover = self.n_courses - sum(counts)
        by_fraction = sorted(range(len(shares)), key=lambda k: (int(shares[k]) - shares[k], k))
        for kind in by_fraction[:leftover]:
            counts[kind] += 1
        return counts

    def _idle_teachers(self, rate: float, seed: int) -> list[int]:
        """How many teachers of each school teach nothing; school 0 always has one."""
        if rate <= 0:
            return [0] * self.n_schools
        key = stream_key(seed, "idle-teachers")
        idle = [
            int(rate * teaching + (mix64(key ^ s) & 0xFFFF) / 0x10000)
            for s, teaching in enumerate(self.school_teaching)
        ]
        idle[0] = max(1, idle[0])
        return idle

    def _build_permutations(self, seed: int) -> list[list[list[tuple[int, int, int]]]]:
        """Per school, period and grade band, an affine shuffle of the band's students."""
        key = stream_key(seed, "periods")
        return [
            [
                [_affine(mix64(key ^ (s << 12) ^ (g << 8) ^ p), n) for g, n in enumerate(sizes)]
                for p in range(self.school_periods[s])
            ]
            for s, sizes in enumerate(self.band_students)
        ]

    # -- positions --------------------------------------------------------------------------

    def school_of_student(self, index: int) -> int:
        """The primary school of student `index`."""
        return bisect_right(self.student_start, index) - 1

    def school_of_section(self, index: int) -> int:
        """The school a section is taught at."""
        return bisect_right(self.section_start, index) - 1

    def school_of_teacher(self, index: int) -> int:
        """The primary school of teacher `index`."""
        return bisect_right(self.teacher_start, index) - 1

    def section_period(self, index: int) -> tuple[int, int, int]:
        """Return (school, period, block) of a section, `block` counted within the period."""
        s = self.school_of_section(index)
        q = index - self.section_start[s]
        blocks = self.school_blocks[s]
        return s, q // blocks, q % blocks

    def section_place(self, index: int) -> tuple[int, int, int, int]:
        """Return (school, period, grade band, block within the band) of a section."""
        s = bisect_right(self.section_start, index) - 1
        p, block = divmod(index - self.section_start[s], self.school_blocks[s])
        starts = self.band_block_start[s]
        band = bisect_right(starts, block) - 1
        return s, p, band, block - starts[band]

    def section_grade(self, index: int) -> int:
        """The grade (0 for Kindergarten) of a section and of all its home students."""
        s, _, band, _ = self.section_place(index)
        return self.school_low_grade[s] + band

    def student_band(self, index: int) -> tuple[int, int]:
        """Return (primary school, grade band) of a student."""
        s = bisect_right(self.student_start, index) - 1
        return s, bisect_right(self.band_start[s], index) - 1

    def student_grade(self, index: int) -> int:
        """The grade (0 for Kindergarten) of a student: that of their band."""
        s, band = self.student_band(index)
        return self.school_low_grade[s] + band

    def _band_of_grade(self, s: int, grade: int) -> int:
        """The band of `grade` at school `s` when the school has sections of it, else -1."""
        band = grade - self.school_low_grade[s]
        blocks = self.band_blocks[s]
        return band if 0 <= band < len(blocks) and blocks[band] else -1

    def _band_multi(self, s: int, band: int) -> range:
        """The multi-school students of a band, as `local // multi_stride` of each."""
        start = self.band_start[s][band] - self.student_start[s]
        end = start + self.band_students[s][band]
        stride = self.multi_stride
        return range(-(-start // stride), -(-end // stride))

    def is_teaching(self, teacher: int) -> bool:
        """Whether a teacher is in the pool that sections draw teachers from."""
        s = self.school_of_teacher(teacher)
        return teacher - self.teacher_start[s] < self.school_teaching[s]

    def _pool_index(self, teacher: int) -> int:
        s = self.school_of_teacher(teacher)
        return self.pool_start[s] + teacher - self.teacher_start[s]

    def _pool_teacher(self, pool_index: int) -> int:
        s = bisect_right(self.pool_start, pool_index) - 1
        return self.teacher_start[s] + pool_index - self.pool_start[s]

    # -- students and sections --------------------------------------------------------------

    def is_multi_school(self, student: int) -> bool:
        """Whether a student also takes sections at other schools."""
        if not self.multi_stride:
            return False
        s = self.school_of_student(student)
        return (student - self.student_start[s]) % self.multi_stride == 0

    def is_unenrolled(self, student: int) -> bool:
        """Whether a student is in no section at all."""
        if student == self.forced_unenrolled:
            return True
        if fib32(student, self._unenrolled_salt) >= self._unenrolled_bound:
            return False
        return not self.is_multi_school(student)

    def _keeps_level(self, s: int) -> bool:
        """Whether students of school `s` visit schools of its own level."""
        return len(self.kind_schools[self.school_kind[s]]) >= 3

    def _guest_school(self, s: int, d: int) -> int:
        """The school that students of school `s` visit on their `d`-th visit (1 or 2): the
        `d`-th next school of the same level when that level has three schools or more, else
        the `d`-th next school of the district."""
        if self._keeps_level(s):
            same = self.kind_schools[self.school_kind[s]]
            return same[(self._kind_place[s] + d) % len(same)]
        return (s + d) % self.n_schools

    def _guest_sources(self, t: int, d: int) -> list[int]:
        """The schools whose students make their `d`-th visit to school `t`."""
        sources = []
        if self._keeps_level(t):
            same = self.kind_schools[self.school_kind[t]]
            sources.append(same[(self._kind_place[t] - d) % len(same)])
        other = (t - d) % self.n_schools
        if not self._keeps_level(other):
            sources.append(other)
        return sources

    def _guest_targets(self, s: int, local: int) -> Iterator[tuple[int, int]]:
        """The (school, local section) pairs a multi-school student visits.

        The `m`-th multi-school student of a school visits another school
        (`_guest_school`), and every third a second one. Where that school has sections of
        the student's grade, the student sits in one of them: the sections of a grade are
        taken period by period, and the student's place among their band's multi-school
        students picks one. Where it has none (another level's school, or a school too small
        to have every grade), the student sits in a section picked from all of that school's
        sections by `m`, whatever its grade.
        """
        if not self.multi_stride or local % self.multi_stride:
            return
        m = local // self.multi_stride
        _, band = self.student_band(self.student_start[s] + local)
        grade = self.school_low_grade[s] + band
        rank = m - self._band_multi(s, band).start
        for d in (1, 2):
            if d == 2 and (not self.three_schools or m % 3):
                continue
            target = self._guest_school(s, d)
            shift = _GUEST_SHIFT * d
            target_band = self._band_of_grade(target, grade)
            if target_band >= 0:
                width = self.band_blocks[target][target_band]
                p, block = divmod((rank + shift) % (self.school_periods[target] * width), width)
                start = self.band_block_start[target][target_band]
                yield target, p * self.school_blocks[target] + start + block
            else:
                yield target, (m + shift) % self.school_sections[target]

    def section_guests(self, section: int) -> list[int]:
        """Students of other schools that are enrolled in a section (see `_guest_targets`):
        those of the section's grade, then those of grades the school has no sections of."""
        if not self.multi_stride:
            return []
        stride = self.multi_stride
        s, p, band, block = self.section_place(section)
        q = section - self.section_start[s]
        n_sec = self.school_sections[s]
        grade = self.school_low_grade[s] + band
        width = self.band_blocks[s][band]
        span = self.school_periods[s] * width
        k = p * width + block
        guests = []
        for d in (1, 2):
            if d == 2 and not self.three_schools:
                continue
            shift = _GUEST_SHIFT * d
            for source in self._guest_sources(s, d):
                first = self.student_start[source]
                source_band = grade - self.school_low_grade[source]
                if 0 <= source_band < len(self.band_students[source]):
                    multi = self._band_multi(source, source_band)
                    for m in range(multi.start + (k - shift) % span, multi.stop, span):
                        if d == 2 and m % 3:
                            continue
                        guests.append(first + m * stride)
                multi_count = -(-self.school_students[source] // stride)
                for m in range((q - shift) % n_sec, multi_count, n_sec):
                    if d == 2 and m % 3:
                        continue
                    student = first + m * stride
                    if self._band_of_grade(s, self.student_grade(student)) < 0:
                        guests.append(student)
        return guests

    def section_home_students(self, section: int) -> list[int]:
        """Students of the section's own school (all of its grade), in roster order, idle
        students left out."""
        s = bisect_right(self.section_start, section) - 1
        p, block = divmod(section - self.section_start[s], self.school_blocks[s])
        block_starts = self.band_block_start[s]
        band = bisect_right(block_starts, block) - 1
        n = self.band_students[s][band]
        _, a_inv, b = self._permutations[s][p][band]
        start = self.band_start[s][band]
        first = (block - block_starts[band]) * self.section_size
        members = [
            start + (a_inv * (pos - b)) % n
            for pos in range(first, min(first + self.section_size, n))
        ]
        # Inlined `is_unenrolled`: this runs for every enrollment served.
        salt, bound, forced = self._unenrolled_salt, self._unenrolled_bound, self.forced_unenrolled
        if bound or forced >= 0:
            members = [
                i
                for i in members
                if i != forced
                and (((i + salt) * 0x9E3779B1) & 0xFFFFFFFF >= bound or self.is_multi_school(i))
            ]
        return members

    def section_students(self, section: int) -> list[int]:
        """Every generated student enrolled in a section (home school first, then guests)."""
        return self.section_home_students(section) + self.section_guests(section)

    def student_sections(self, student: int) -> list[int]:
        """The sections a student is enrolled in, in period order, guest sections last."""
        if self.is_unenrolled(student):
            return []
        s = self.school_of_student(student)
        starts = self.band_start[s]
        band = bisect_right(starts, student) - 1
        rank = student - starts[band]
        n = self.band_students[s][band]
        blocks = self.school_blocks[s]
        base = self.section_start[s] + self.band_block_start[s][band]
        size = self.section_size
        sections = []
        for p, rows in enumerate(self._permutations[s]):
            a, _, b = rows[band]
            sections.append(base + p * blocks + ((a * rank + b) % n) // size)
        for target, q in self._guest_targets(s, student - self.student_start[s]):
            sections.append(self.section_start[target] + q)
        return sections

    # -- teachers ---------------------------------------------------------------------------

    def section_bits(self, section: int) -> int:
        """64 random bits for the section's relationship edge cases."""
        return mix64(self._section_key ^ section)

    def co_teacher_count(self, section: int, bits: int | None = None) -> int:
        """How many co-teachers a section has besides its primary teacher."""
        if section == self.forced_max_co:
            wanted = MAX_CO_TEACHERS
        elif section in (self.forced_ghost_student, self.forced_ghost_teacher):
            wanted = 0
        else:
            h = self.section_bits(section) if bits is None else bits
            if (h & 0xFFFF) < self._co_max_bound:
                wanted = MAX_CO_TEACHERS
            elif ((h >> 16) & 0xFFFF) < self._co_bound:
                wanted = 1
            else:
                wanted = 0
        return min(wanted, self.n_pool - 1)

    def has_unshared_student(self, section: int, bits: int | None = None) -> bool:
        """Whether a section lists a student id that the district never shares."""
        if section == self.forced_ghost_student:
            return True
        if section in (self.forced_max_co, self.forced_ghost_teacher):
            return False
        h = self.section_bits(section) if bits is None else bits
        return ((h >> 32) & 0xFFFF) < self._ghost_student_bound

    def has_unshared_teacher(self, section: int, bits: int | None = None) -> bool:
        """Whether a section lists a co-teacher id that the district never shares."""
        if section == self.forced_ghost_teacher:
            return True
        if section in (self.forced_max_co, self.forced_ghost_student):
            return False
        h = self.section_bits(section) if bits is None else bits
        return ((h >> 48) & 0xFFFF) < self._ghost_teacher_bound

    def is_foreign_section(self, section: int) -> bool:
        """Whether a section's primary teacher belongs to another school."""
        s = self.school_of_section(section)
        stride = self.school_foreign_stride[s]
        return bool(stride) and (section - self.section_start[s]) % stride == 0

    def primary_teacher(self, section: int) -> int:
        """The section's primary teacher."""
        s = self.school_of_section(section)
        q = section - self.section_start[s]
        stride = self.school_foreign_stride[s]
        if stride and q % stride == 0:
            other = (s + 1) % self.n_schools
            return self.teacher_start[other] + (q // stride) % self.school_teaching[other]
        rank = q - q // stride - 1 if stride else q
        return self.teacher_start[s] + rank % self.school_teaching[s]

    def section_teachers(self, section: int, bits: int | None = None) -> list[int]:
        """Primary teacher first, then co-teachers in order."""
        primary = self.primary_teacher(section)
        count = self.co_teacher_count(section, bits)
        if not count:
            return [primary]
        pool = self._pool_index(primary)
        return [primary] + [
            self._pool_teacher((pool + k) % self.n_pool) for k in range(1, count + 1)
        ]

    def primary_sections(self, teacher: int) -> list[int]:
        """Sections where a teacher is the primary teacher, ascending."""
        s = self.school_of_teacher(teacher)
        u = teacher - self.teacher_start[s]
        teaching = self.school_teaching[s]
        if u >= teaching:
            return []
        found = []
        stride = self.school_foreign_stride[s]
        n_sec = self.school_sections[s]
        home_count = n_sec - (-(-n_sec // stride) if stride else 0)
        for rank in range(u, home_count, teaching):
            q = rank + rank // (stride - 1) + 1 if stride else rank
            found.append(self.section_start[s] + q)
        previous = (s - 1) % self.n_schools
        prev_stride = self.school_foreign_stride[previous]
        if prev_stride:
            foreign_count = -(-self.school_sections[previous] // prev_stride)
            for m in range(u, foreign_count, teaching):
                found.append(self.section_start[previous] + m * prev_stride)
        return sorted(found)

    def first_primary_section(self, teacher: int) -> int:
        """A section the teacher is the primary teacher of, in O(1): their first at their own
        school, else their first at the previous school; -1 when they lead none."""
        s = self.school_of_teacher(teacher)
        u = teacher - self.teacher_start[s]
        teaching = self.school_teaching[s]
        if u >= teaching:
            return -1
        stride = self.school_foreign_stride[s]
        n_sec = self.school_sections[s]
        if u < n_sec - (-(-n_sec // stride) if stride else 0):
            return self.section_start[s] + (u + u // (stride - 1) + 1 if stride else u)
        previous = (s - 1) % self.n_schools
        prev_stride = self.school_foreign_stride[previous]
        if prev_stride and u < -(-self.school_sections[previous] // prev_stride):
            return self.section_start[previous] + u * prev_stride
        return -1

    def teacher_sections(self, teacher: int) -> list[int]:
        """Every section a teacher teaches, as primary or co-teacher, ascending."""
        if not self.is_teaching(teacher):
            return []
        found = set(self.primary_sections(teacher))
        pool = self._pool_index(teacher)
        for k in range(1, min(MAX_CO_TEACHERS, self.n_pool - 1) + 1):
            lead = self._pool_teacher((pool - k) % self.n_pool)
            for section in self.primary_sections(lead):
                if self.co_teacher_count(section) >= k:
                    found.add(section)
        return sorted(found)

    # -- contacts ---------------------------------------------------------------------------

    def contact_student(self, contact: int) -> int:
        """The first student a contact is related to."""
        return contact * self.n_students // self.n_contacts

    def _first_contacts(self, student: int) -> range:
        n_c, n_s = self.n_contacts, self.n_students
        return range(-(-student * n_c // n_s), -(-(student + 1) * n_c // n_s))

    def has_several_students(self, contact: int) -> bool:
        """Whether a contact is related to two students (siblings)."""
        if contact == self.forced_several:
            return True
        return (mix64(self._contact_key ^ contact) & 0xFFFF) < self._several_bound

    def contact_students(self, contact: int) -> list[int]:
        """The students a contact is related to, in relationship order."""
        first = self.contact_student(contact)
        if first + 1 < self.n_students and self.has_several_students(contact):
            return [first, first + 1]
        return [first]

    def student_contacts(self, student: int) -> list[int]:
        """The contacts related to a student, ascending."""
        found = list(self._first_contacts(student))
        if student > 0:
            found = [
                k for k in self._first_contacts(student - 1) if self.has_several_students(k)
            ] + found
        return found
