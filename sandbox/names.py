"""Name, place and course tables the generator picks from.

Names mix plain ASCII with the characters Clever says to expect (', -, ñ, à, ü, ...). Each
person name carries an email-safe token computed once here, so generating a record never has
to normalize text.
"""

from __future__ import annotations

import unicodedata

# fmt: off
FIRST_NAMES: tuple[str, ...] = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella", "William",
    "Mia", "Benjamin", "Amelia", "Lucas", "Harper", "Henry", "Evelyn", "Alexander", "Abigail",
    "Mason", "Emily", "Michael", "Ella", "Ethan", "Elizabeth", "Daniel", "Camila", "Jacob",
    "Luna", "Logan", "Sofía", "Jackson", "Avery", "Sebastián", "Mila", "Jack", "Aria", "Aiden",
    "Scarlett", "Owen", "Penélope", "Samuel", "Layla", "Matthew", "Chloé", "Joseph", "Victoria",
    "Levi", "Madison", "Mateo", "Eleanor", "David", "Grace", "John", "Nora", "Wyatt", "Riley",
    "José", "María", "Zoë", "Renée", "Björn", "Søren", "Łukasz", "François", "Anaïs", "Jürgen",
    "Siobhán", "Seán", "Inés", "Nuño", "Ángel", "Raúl", "Joaquín", "Begoña", "Dvořák", "Éloïse",
    "Thảo", "Nguyệt", "Minh", "Hùng", "Mei-Ling", "Jae-won", "Ji-ho", "Anne-Marie", "Jean-Luc",
    "D'Andre", "De'Shawn", "Ja'Nya", "Aaliyah", "Muhammad", "Fatima", "Yusuf", "Amira", "Omar",
    "Priya", "Arjun", "Ananya", "Rohan", "Kwame", "Ama", "Chidi", "Ngozi", "Oluwaseun",
    "Adaeze", "Xiomara", "Yaretzi", "Ximena", "Itzel", "Guadalupe", "Jesús", "Ximén", "Tomás",
    "Iñaki", "Åsa", "Øyvind", "Ólafur", "Þóra", "Ðorđe", "Güneş", "Çağla", "Şebnem", "Ömer",
    "Ayşe",
)
# fmt: on

# fmt: off
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Núñez", "Muñoz", "Ibáñez", "Peña",
    "Castañeda", "O'Brien", "O'Connor", "D'Angelo", "D'Souza", "McAllister", "MacDonald",
    "García-López", "Smith-Jones", "Pérez-Reverte", "Ortiz-Cruz", "Müller", "Schröder",
    "Günther", "Fößel", "Lefèvre", "Gauthier", "Bélanger", "Côté", "Nguyễn", "Trần", "Lê",
    "Phạm", "Dąbrowski", "Wójcik", "Łuczak", "Dvořáková", "Çelik", "Öztürk", "Yıldız",  # noqa: RUF001
    "St. John", "van der Berg", "de la Cruz", "Le Blanc", "Van Buren", "Ó Súilleabháin",
    "Kowalski", "Novak", "Horvát", "Papadopoulos", "Ivanov", "Okafor", "Adeyemi", "Mensah",
    "Kim", "Park", "Choi", "Wang", "Zhang", "Liu", "Chen", "Singh", "Patel", "Khan", "Ali",
    "Haddad", "Nasser", "Cohen", "Levi", "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi",
    "Silva", "Santos", "Oliveira", "Souza", "Gonçalves", "Conceição", "Jääskeläinen", "Åberg",
)
# fmt: on

MIDDLE_INITIALS: tuple[str, ...] = ("A", "B", "C", "D", "E", "J", "K", "L", "M", "R", "S", "")

# fmt: off
SCHOOL_NAME_ROOTS: tuple[str, ...] = (
    "Lincoln", "Washington", "Roosevelt", "Jefferson", "Franklin", "Kennedy", "King", "Chávez",
    "Sotomayor", "Curie", "Einstein", "Earhart", "Tubman", "Douglass", "Parks", "Hamilton",
    "Riverside", "Lakeview", "Hillcrest", "Oakwood", "Maplewood", "Cedar Ridge", "Pine Valley",
    "Sunnyside", "Westbrook", "Eastgate", "Northfield", "Southridge", "Brookside", "Fairview",
    "Muñoz Marín", "Clemente", "O'Keeffe", "Du Bois", "Lafayette", "Bolívar", "Juárez",
    "Mountain View", "Harbor", "Prairie", "Canyon", "Meadowbrook", "Willow Creek", "Highland",
)
# fmt: on

# fmt: off
STREETS: tuple[str, ...] = (
    "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Pine Rd", "Washington Blvd",
    "Park Ave", "Lake Shore Dr", "Hillside Ave", "Calle Ocho", "Avenida de la Paz",
    "Rue Royale", "Broadway", "Market St", "Mission St", "Sunset Blvd", "River Rd", "Church St",
    "Mill Rd",
)
# fmt: on

CITIES: tuple[tuple[str, str, str], ...] = (
    ("Springfield", "IL", "627"),
    ("Riverside", "CA", "925"),
    ("Franklin", "TN", "370"),
    ("Greenville", "SC", "296"),
    ("Bristol", "CT", "060"),
    ("Clinton", "IA", "527"),
    ("Salem", "OR", "973"),
    ("Madison", "WI", "537"),
    ("Georgetown", "TX", "786"),
    ("Española", "NM", "875"),
    ("Cañon City", "CO", "812"),
    ("Coeur d'Alene", "ID", "838"),
)

# fmt: off
SUBJECTS: tuple[str, ...] = (
    "english/language arts", "math", "science", "social studies", "language",
    "homeroom/advisory", "interventions/online learning", "technology and engineering",
    "PE and health", "arts and music", "other",
)
# fmt: on

# A course: (subject, name, lowest grade, highest grade, what its teacher teaches), grade 0
# being kindergarten. An elementary course of one grade is taught by that grade's teacher.
Course = tuple[str, str, int, int, str]

_GRADE_COURSES = (
    ("math", "Grade {g} Math", "Kindergarten Math"),
    ("english/language arts", "Reading {g}", "Kindergarten Reading"),
    ("english/language arts", "Writing {g}", "Kindergarten Writing"),
    ("science", "Science {g}", "Kindergarten Science"),
    ("social studies", "Social Studies {g}", "Kindergarten Social Studies"),
)

# fmt: off
ELEMENTARY_COURSES: tuple[Course, ...] = (
    *(
        (subject, named.format(g=grade) if grade else kindergarten, grade, grade, "")
        for subject, named, kindergarten in _GRADE_COURSES
        for grade in range(6)
    ),
    ("homeroom/advisory", "Homeroom", 0, 5, "Classroom"),
    ("arts and music", "Art", 0, 5, "Art"),
    ("arts and music", "Music", 0, 5, "Music"),
    ("PE and health", "Physical Education", 0, 5, "Physical Education"),
    ("language", "Español", 1, 5, "Spanish"),
    ("interventions/online learning", "Reading Intervention", 1, 5, "Reading Intervention"),
    ("technology and engineering", "Computer Lab", 2, 5, "Technology"),
    ("other", "Library", 0, 5, "Library Media"),
)
MIDDLE_COURSES: tuple[Course, ...] = (
    ("math", "Math 6", 6, 6, "Math"), ("math", "Math 7", 7, 7, "Math"),
    ("math", "Math 8", 8, 8, "Math"), ("math", "Pre-Algebra", 7, 8, "Math"),
    ("math", "Algebra I", 8, 8, "Math"),
    ("english/language arts", "English 6", 6, 6, "English"),
    ("english/language arts", "English 7", 7, 7, "English"),
    ("english/language arts", "English 8", 8, 8, "English"),
    ("english/language arts", "Literature", 6, 8, "English"),
    ("science", "Earth Science", 6, 6, "Science"), ("science", "Life Science", 7, 7, "Science"),
    ("science", "Physical Science", 8, 8, "Science"),
    ("social studies", "World Geography", 6, 6, "Social Studies"),
    ("social studies", "World History", 7, 7, "Social Studies"),
    ("social studies", "U.S. History", 8, 8, "Social Studies"),
    ("language", "Spanish I", 7, 8, "Spanish"), ("language", "Français I", 7, 8, "French"),
    ("homeroom/advisory", "Advisory", 6, 8, "Advisory"),
    ("interventions/online learning", "Math Lab", 6, 8, "Math Intervention"),
    ("technology and engineering", "Robotics", 6, 8, "Technology"),
    ("PE and health", "Physical Education", 6, 8, "Physical Education"),
    ("PE and health", "Health", 6, 8, "Health"),
    ("arts and music", "Band", 6, 8, "Band"), ("arts and music", "Chorus", 6, 8, "Choir"),
    ("arts and music", "Art", 6, 8, "Art"),
    ("other", "Study Hall", 6, 8, "Study Skills"),
)
HIGH_COURSES: tuple[Course, ...] = (
    ("math", "Algebra I", 9, 10, "Math"), ("math", "Geometry", 9, 11, "Math"),
    ("math", "Algebra II", 10, 12, "Math"), ("math", "Pre-Calculus", 11, 12, "Math"),
    ("math", "Statistics", 11, 12, "Math"),
    ("english/language arts", "English 9", 9, 9, "English"),
    ("english/language arts", "English 10", 10, 10, "English"),
    ("english/language arts", "English 11", 11, 11, "English"),
    ("english/language arts", "English 12", 12, 12, "English"),
    ("english/language arts", "Writing Workshop", 10, 12, "English"),
    ("science", "Biology", 9, 10, "Science"), ("science", "Chemistry", 10, 12, "Science"),
    ("science", "Physics", 11, 12, "Science"),
    ("science", "Environmental Science", 11, 12, "Science"),
    ("social studies", "World History", 9, 10, "Social Studies"),
    ("social studies", "U.S. History", 11, 11, "Social Studies"),
    ("social studies", "Civics", 12, 12, "Social Studies"),
    ("language", "Spanish I", 9, 12, "Spanish"), ("language", "Spanish II", 10, 12, "Spanish"),
    ("language", "Français II", 10, 12, "French"), ("language", "Mandarin I", 9, 12, "Mandarin"),
    ("homeroom/advisory", "Advisory", 9, 12, "Advisory"),
    ("interventions/online learning", "Credit Recovery", 10, 12, "Intervention"),
    ("technology and engineering", "Computer Science", 9, 12, "Computer Science"),
    ("technology and engineering", "Engineering Design", 10, 12, "Engineering"),
    ("PE and health", "Physical Education", 9, 10, "Physical Education"),
    ("PE and health", "Health", 9, 9, "Health"),
    ("arts and music", "Orchestra", 9, 12, "Orchestra"),
    ("arts and music", "Théâtre", 9, 12, "Theatre"),
    ("other", "Peer Tutoring", 11, 12, "Study Skills"),
)
# fmt: on

SUBJECT_CODES: dict[str, str] = {
    "english/language arts": "ELA",
    "math": "MAT",
    "science": "SCI",
    "social studies": "SOC",
    "language": "LAN",
    "homeroom/advisory": "HRM",
    "interventions/online learning": "INT",
    "technology and engineering": "TEC",
    "PE and health": "PEH",
    "arts and music": "ART",
    "other": "OTH",
}

# Titles of a teacher that leads no section, whatever their school.
UNASSIGNED_TEACHER_TITLES: tuple[str, ...] = (
    "Teacher", "Substitute Teacher", "Instructional Specialist", "Interventionist",
)  # fmt: skip
STAFF_TITLES: tuple[tuple[str, str], ...] = (
    ("Counselor", "Student Services"),
    ("Librarian", "Library"),
    ("Nurse", "Health Services"),
    ("Assistant Principal", "Administration"),
    ("Principal", "Administration"),
    ("Paraprofessional", "Special Education"),
    ("Instructional Coach", "Curriculum"),
    ("Technology Coordinator", "IT"),
)
# fmt: off
ADMIN_TITLES: tuple[str, ...] = (
    "Superintendent", "Director of Technology", "Data Coordinator", "Assistant Superintendent",
    "SIS Administrator",
)
# fmt: on


_UNDECOMPOSABLE = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "ß": "ss",
        "\u0131": "i",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "æ": "ae",
        "Æ": "Ae",
    }
)


def email_token(name: str) -> str:
    """Lowercase a name for an email address: accents folded, spaces dropped.

    Apostrophes and hyphens are kept on purpose: real district emails contain them.
    """
    folded = unicodedata.normalize("NFKD", name.translate(_UNDECOMPOSABLE))
    kept = "".join(char for char in folded if char.isascii() and (char.isalnum() or char in "'-"))
    return kept.lower() or "x"


FIRST_TOKENS: tuple[str, ...] = tuple(email_token(name) for name in FIRST_NAMES)
LAST_TOKENS: tuple[str, ...] = tuple(email_token(name) for name in LAST_NAMES)
