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

COURSE_NAMES: dict[str, tuple[str, ...]] = {
    "english/language arts": ("English", "Reading", "Writing Workshop", "Literature", "ELA"),
    "math": ("Math", "Algebra I", "Geometry", "Algebra II", "Pre-Calculus", "Statistics"),
    "science": ("Science", "Biology", "Chemistry", "Physics", "Earth Science"),
    "social studies": ("Social Studies", "U.S. History", "World History", "Civics"),
    "language": ("Spanish", "French", "Mandarin", "Français II", "Español I"),
    "homeroom/advisory": ("Homeroom", "Advisory"),
    "interventions/online learning": ("Reading Intervention", "Math Lab", "Credit Recovery"),
    "technology and engineering": ("Computer Science", "Robotics", "Engineering Design"),
    "PE and health": ("Physical Education", "Health", "Dance"),
    "arts and music": ("Art", "Band", "Chorus", "Orchestra", "Théâtre"),
    "other": ("Study Hall", "Library", "Peer Tutoring"),
}

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

TEACHER_TITLES: tuple[str, ...] = ("Teacher", "Lead Teacher", "Co-Teacher", "Specialist", "")
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
