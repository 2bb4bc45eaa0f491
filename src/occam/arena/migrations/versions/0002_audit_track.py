"""audit track: the registered zoo, its key path and the public/private model halves

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('challenges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audit_zoo_dir', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('audit_key_path', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('audit_zoo_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('audit_public_models', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('audit_private_models', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('challenges', schema=None) as batch_op:
        batch_op.drop_column('audit_private_models')
        batch_op.drop_column('audit_public_models')
        batch_op.drop_column('audit_zoo_id')
        batch_op.drop_column('audit_key_path')
        batch_op.drop_column('audit_zoo_dir')
