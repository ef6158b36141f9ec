"""Imports every domain's models so that metadata is complete (Alembic, tests)."""

from parcours.accounts import models as accounts_models  # noqa: F401
from parcours.activities import models as activities_models  # noqa: F401
from parcours.ai import models as ai_models  # noqa: F401
from parcours.consent import models as consent_models  # noqa: F401
from parcours.content import models as content_models  # noqa: F401
from parcours.core import models as core_models  # noqa: F401
from parcours.core.db import Base
from parcours.email import models as email_models  # noqa: F401
from parcours.meetings import models as meetings_models  # noqa: F401

metadata = Base.metadata
