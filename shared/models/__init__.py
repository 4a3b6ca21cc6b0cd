"""Every ORM model, imported here so alembic's autogenerate sees each table."""

from shared.db.base import Base
from shared.models.analytics import CustomerValue, ValueRun
from shared.models.api_key import ApiKey
from shared.models.customer import Customer, Tombstone
from shared.models.event import CustomerIdentity, Event, EventChange
from shared.models.funnel import Funnel, FunnelRun
from shared.models.ingest import ImportChunk, WebhookDelivery, WebhookInbox
from shared.models.interview import Interview
from shared.models.job import Job, JobOutbox
from shared.models.ops import AuditEntry, IdempotencyKey, OutboundDelivery, WebhookEndpoint
from shared.models.order import Order, OrderItem
from shared.models.persona import Persona, PersonaVersion
from shared.models.segment import Segment, Segmentation, SegmentMember
from shared.models.survey import (
    Survey,
    SurveyAnswer,
    SurveyDistribution,
    SurveyInvitation,
    SurveyResponse,
)
from shared.models.tenant import Tenant

# Tables whose rows belong to one tenant: row-level security is enabled and forced on each.
TENANT_TABLES = (
    "api_keys",
    "jobs",
    "job_outbox",
    "customers",
    "tombstones",
    "orders",
    "order_items",
    "events",
    "identities",
    "webhook_deliveries",
    "import_chunks",
    "customer_values",
    "value_runs",
    "segments",
    "segment_members",
    "segmentations",
    "webhook_inbox",
    "surveys",
    "survey_distributions",
    "survey_invitations",
    "survey_responses",
    "survey_answers",
    "interviews",
    "personas",
    "persona_versions",
    "funnels",
    "funnel_runs",
    "idempotency_keys",
    "audit_log",
    "webhook_endpoints",
    "outbound_deliveries",
    "event_changes",
)

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "Customer",
    "CustomerValue",
    "Event",
    "EventChange",
    "CustomerIdentity",
    "Funnel",
    "FunnelRun",
    "IdempotencyKey",
    "ImportChunk",
    "Interview",
    "Job",
    "JobOutbox",
    "Order",
    "OrderItem",
    "Persona",
    "PersonaVersion",
    "OutboundDelivery",
    "Segment",
    "SegmentMember",
    "Segmentation",
    "Survey",
    "SurveyAnswer",
    "SurveyDistribution",
    "SurveyInvitation",
    "SurveyResponse",
    "TENANT_TABLES",
    "Tenant",
    "Tombstone",
    "ValueRun",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookInbox",
]
