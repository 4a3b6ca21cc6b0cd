"""Every ORM model, imported here so alembic's autogenerate sees each table."""

from shared.db.base import Base
from shared.models.api_key import ApiKey
from shared.models.job import Job, JobOutbox
from shared.models.tenant import Tenant

# Tables whose rows belong to one tenant: row-level security is enabled and forced on each.
TENANT_TABLES = ("api_keys", "jobs", "job_outbox")

__all__ = ["ApiKey", "Base", "Job", "JobOutbox", "Tenant", "TENANT_TABLES"]
