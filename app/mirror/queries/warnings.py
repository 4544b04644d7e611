"""Data warnings read with the records they are about: the record's name and its school.

A warning names its district, entity and record id; the school is the school record
itself, a user's primary school or a section's school (none for other kinds, or when the
mirror does not hold the record). Every join stays within the warning's district.
"""

from __future__ import annotations

# `w` the warning, `sc` its school; `u`, `s`, `t`, `c` its record when of that kind.
WARNINGS_FROM = """
    FROM data_warnings w
    LEFT JOIN users u ON w.entity = 'users' AND u.id = w.record_id
         AND u.district_id = w.district_id
    LEFT JOIN sections s ON w.entity = 'sections' AND s.id = w.record_id
         AND s.district_id = w.district_id
    LEFT JOIN terms t ON w.entity = 'terms' AND t.id = w.record_id
         AND t.district_id = w.district_id
    LEFT JOIN courses c ON w.entity = 'courses' AND c.id = w.record_id
         AND c.district_id = w.district_id
    LEFT JOIN schools sc ON sc.district_id = w.district_id AND sc.id = CASE w.entity
         WHEN 'schools' THEN w.record_id WHEN 'users' THEN u.primary_school_id
         WHEN 'sections' THEN s.school_id END
"""

# The record's name, as a support person would recognise it.
RECORD_NAME = """CASE w.entity
    WHEN 'users' THEN nullif(concat_ws(' ', u.name_first, u.name_last), '')
    WHEN 'sections' THEN s.display_name WHEN 'terms' THEN t.name WHEN 'courses' THEN c.name
    WHEN 'schools' THEN sc.name END"""
