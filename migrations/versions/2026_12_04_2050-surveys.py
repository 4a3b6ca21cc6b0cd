"""Surveys, distributions, invitations, responses, answers and interviews; decision role;
the tenant's policy on survey answers versus store data.

Revision ID: d44de1fe2428
Revises: fc327ae836bc
Create Date: 2026-12-04 20:50:19.309269
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.rls import disable_tenant_rls, enable_tenant_rls

TABLES = (
    "surveys",
    "interviews",
    "survey_distributions",
    "survey_responses",
    "survey_answers",
    "survey_invitations",
)
revision: str = "d44de1fe2428"
down_revision: str | None = "fc327ae836bc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("introduction", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("questions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_surveys_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_surveys")),
    )
    op.create_table(
        "interviews",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("interviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interviewer", sa.String(length=200), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("quotes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_interviews_tenant_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_interviews_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_interviews")),
    )
    op.create_index(
        "ix_interviews_tenant_id_customer_id",
        "interviews",
        ["tenant_id", "customer_id"],
        unique=False,
    )
    op.create_table(
        "survey_distributions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("audience", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("link_token_hash", sa.LargeBinary(), nullable=True),
        sa.Column("recipients", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "survey_id"],
            ["surveys.tenant_id", "surveys.id"],
            name=op.f("fk_survey_distributions_tenant_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_survey_distributions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_survey_distributions")),
    )
    op.create_index(
        "ix_survey_distributions_tenant_id_survey_id",
        "survey_distributions",
        ["tenant_id", "survey_id"],
        unique=False,
    )
    op.create_index(
        "uq_survey_distributions_tenant_id_link_token_hash",
        "survey_distributions",
        ["tenant_id", "link_token_hash"],
        unique=True,
    )
    op.create_table(
        "survey_responses",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("survey_version", sa.Integer(), nullable=False),
        sa.Column("distribution_id", sa.Uuid(), nullable=True),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_survey_responses_tenant_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "survey_id"],
            ["surveys.tenant_id", "surveys.id"],
            name=op.f("fk_survey_responses_tenant_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_survey_responses_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_survey_responses")),
    )
    op.create_index(
        "ix_survey_responses_tenant_id_customer_id",
        "survey_responses",
        ["tenant_id", "customer_id"],
        unique=False,
    )
    op.create_index(
        "ix_survey_responses_tenant_id_survey_id",
        "survey_responses",
        ["tenant_id", "survey_id", "id"],
        unique=False,
    )
    op.create_table(
        "survey_answers",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("response_id", sa.Uuid(), nullable=False),
        sa.Column("question_key", sa.String(length=64), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("value_number", sa.Numeric(), nullable=True),
        sa.Column("choices", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column(
            "answered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_survey_answers_tenant_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "response_id"],
            ["survey_responses.tenant_id", "survey_responses.id"],
            name=op.f("fk_survey_answers_tenant_id_survey_responses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_survey_answers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "response_id", "question_key", name=op.f("pk_survey_answers")
        ),
    )
    op.create_index(
        "ix_survey_answers_tenant_id_customer_id",
        "survey_answers",
        ["tenant_id", "customer_id"],
        unique=False,
    )
    op.create_index(
        "ix_survey_answers_tenant_id_survey_id_question_key_value_text",
        "survey_answers",
        ["tenant_id", "survey_id", "question_key", "value_text"],
        unique=False,
    )
    op.create_table(
        "survey_invitations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("distribution_id", sa.Uuid(), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("response_id", sa.Uuid(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_survey_invitations_tenant_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "distribution_id"],
            ["survey_distributions.tenant_id", "survey_distributions.id"],
            name=op.f("fk_survey_invitations_tenant_id_survey_distributions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_survey_invitations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_survey_invitations")),
    )
    op.create_index(
        "ix_survey_invitations_tenant_id_customer_id",
        "survey_invitations",
        ["tenant_id", "customer_id"],
        unique=False,
    )
    op.create_index(
        "ix_survey_invitations_tenant_id_distribution_id",
        "survey_invitations",
        ["tenant_id", "distribution_id", "id"],
        unique=False,
    )
    op.create_index(
        "uq_survey_invitations_tenant_id_token_hash",
        "survey_invitations",
        ["tenant_id", "token_hash"],
        unique=True,
    )
    for table in TABLES:
        enable_tenant_rls(table)
    op.add_column("customers", sa.Column("decision_role", sa.String(length=16), nullable=True))
    op.add_column(
        "tenants",
        sa.Column(
            "survey_answers_override_store", sa.Boolean(), server_default="false", nullable=False
        ),
    )


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(table)
    op.drop_column("tenants", "survey_answers_override_store")
    op.drop_column("customers", "decision_role")
    op.drop_index("uq_survey_invitations_tenant_id_token_hash", table_name="survey_invitations")
    op.drop_index(
        "ix_survey_invitations_tenant_id_distribution_id", table_name="survey_invitations"
    )
    op.drop_index("ix_survey_invitations_tenant_id_customer_id", table_name="survey_invitations")
    op.drop_table("survey_invitations")
    op.drop_index(
        "ix_survey_answers_tenant_id_survey_id_question_key_value_text", table_name="survey_answers"
    )
    op.drop_index("ix_survey_answers_tenant_id_customer_id", table_name="survey_answers")
    op.drop_table("survey_answers")
    op.drop_index("ix_survey_responses_tenant_id_survey_id", table_name="survey_responses")
    op.drop_index("ix_survey_responses_tenant_id_customer_id", table_name="survey_responses")
    op.drop_table("survey_responses")
    op.drop_index(
        "uq_survey_distributions_tenant_id_link_token_hash", table_name="survey_distributions"
    )
    op.drop_index("ix_survey_distributions_tenant_id_survey_id", table_name="survey_distributions")
    op.drop_table("survey_distributions")
    op.drop_index("ix_interviews_tenant_id_customer_id", table_name="interviews")
    op.drop_table("interviews")
    op.drop_table("surveys")
