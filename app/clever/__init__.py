"""The only code that speaks Clever: the Data API client, wire models, errors and
district discovery."""

from app.clever.client import (
    MAX_PAGE_SIZE,
    CleverClient,
    CleverSettings,
    InvalidRecord,
    NotFound,
    Page,
)
from app.clever.discovery import (
    CleverOAuthClient,
    OAuthSettings,
    districts,
    map_district_tokens,
)
from app.clever.errors import (
    CleverAuthError,
    CleverError,
    CleverEventsUnavailable,
    CleverRequestError,
    CleverTransientError,
)
from app.clever.models import (
    RECORD_MODELS,
    ROLE_NAMES,
    CleverRecord,
    Course,
    District,
    Event,
    School,
    Section,
    Term,
    User,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "RECORD_MODELS",
    "ROLE_NAMES",
    "CleverAuthError",
    "CleverClient",
    "CleverError",
    "CleverEventsUnavailable",
    "CleverOAuthClient",
    "CleverRecord",
    "CleverRequestError",
    "CleverSettings",
    "CleverTransientError",
    "Course",
    "District",
    "Event",
    "InvalidRecord",
    "NotFound",
    "OAuthSettings",
    "Page",
    "School",
    "Section",
    "Term",
    "User",
    "districts",
    "map_district_tokens",
]
