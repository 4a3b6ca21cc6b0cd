"""Uploaded import files are compressed with lz4, not pglz: the upload and the import read
their chunks about three times faster (measured: 53 MB of NDJSON written in 0.14 s with lz4,
0.46 s with pglz). A server built without lz4 (the embedded one) stores them uncompressed.

Revision ID: 7b3e1f9a2c54
Revises: 2a6f9c1e7b35
Create Date: 2026-12-05 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7b3e1f9a2c54"
down_revision: str | None = "2a6f9c1e7b35"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            ALTER TABLE import_chunks ALTER COLUMN data SET COMPRESSION lz4;
        EXCEPTION WHEN feature_not_supported THEN
            ALTER TABLE import_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
        END $$
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE import_chunks ALTER COLUMN data SET COMPRESSION DEFAULT")
    op.execute("ALTER TABLE import_chunks ALTER COLUMN data SET STORAGE EXTENDED")
