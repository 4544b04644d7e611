"""The columns each entity's staging table takes, in the order normalization produces its
rows: the live table's Clever columns (`app.mirror.models`) plus the bookkeeping the merge
compares (`source_last_modified`, `content_hash`) and Clever's record as sent (`raw`).

`app.sync.normalize` builds rows in this order and `app.mirror.staging` copies them into
tables of these columns; both read them from here.
"""

DISTRICT_COLUMNS = (
    "id", "name", "state", "sis_type", "nces_id", "mdr_number", "portal_url",
    "last_clever_sync", "pause_start", "pause_end", "source_last_modified", "content_hash",
    "raw",
)  # fmt: skip

SCHOOL_COLUMNS = (
    "id", "name", "school_number", "sis_id", "state_id", "nces_id", "mdr_number",
    "low_grade", "high_grade", "phone", "principal_name", "principal_email",
    "address", "city", "state", "zip", "source_last_modified", "content_hash", "raw",
)  # fmt: skip

TERM_COLUMNS = (
    "id", "name", "start_date", "end_date", "source_last_modified", "content_hash", "raw",
)  # fmt: skip

COURSE_COLUMNS = ("id", "name", "number", "source_last_modified", "content_hash", "raw")

USER_COLUMNS = (
    "id", "roles", "name_first", "name_middle", "name_last", "preferred_first_name",
    "email", "email_normalized", "email_valid", "primary_school_id", "sis_id", "state_id",
    "student_number", "teacher_number", "staff_number", "title", "grade", "grade_level",
    "graduation_year", "dob", "gender", "phone", "sensitive",
    "source_last_modified", "content_hash", "raw",
)  # fmt: skip

SECTION_COLUMNS = (
    "id", "school_id", "course_id", "term_id", "name", "period", "section_number", "sis_id",
    "subject", "grade", "grade_level", "primary_teacher_id", "source_last_modified",
    "content_hash", "raw",
)  # fmt: skip
