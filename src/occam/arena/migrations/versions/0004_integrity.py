"""contest integrity: uploads and private test sets in the database, the admin log, team-name keys, notes, hiding

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'blobs',
        sa.Column('sha256', sa.String(length=64), primary_key=True),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
    )
    op.create_table(
        'private_datasets',
        sa.Column('name', sa.String(length=64), primary_key=True),
        sa.Column('manifest_json', sa.Text(), nullable=False),
        sa.Column('blob_sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
    )
    op.create_table(
        'admin_log',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('target', sa.String(length=200), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
    )
    op.create_index('ix_admin_log_at', 'admin_log', ['at'])
    # plain ALTER TABLE (no batch copy): on SQLite a batch copy of `teams` or `challenges` would cascade-delete
    # every submission through the foreign keys
    op.add_column('challenges', sa.Column('hidden', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('challenges', sa.Column('archived', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('challenges', sa.Column('invite_sha256', sa.String(length=64), nullable=True))
    op.add_column('submissions', sa.Column('note', sa.Text(), nullable=True))
    op.add_column('teams', sa.Column('name_key', sa.String(length=200), nullable=True))
    _backfill_name_keys()
    op.create_index('uq_teams_name_key', 'teams', ['name_key'], unique=True)


def _backfill_name_keys() -> None:
    """Existing teams get their key; a team whose key is taken (an older look-alike) keeps a unique one."""
    from occam.arena.sanitize import team_key

    conn = op.get_bind()
    teams = sa.table('teams', sa.column('id', sa.Integer), sa.column('name', sa.String), sa.column('name_key', sa.String))
    seen: set[str] = set()
    for tid, name in conn.execute(sa.select(teams.c.id, teams.c.name).order_by(teams.c.id)).all():
        key = team_key(name)
        if key in seen:
            key = f"{key}#{tid}"
        seen.add(key)
        conn.execute(teams.update().where(teams.c.id == tid).values(name_key=key))


def downgrade() -> None:
    op.drop_index('uq_teams_name_key', table_name='teams')
    op.drop_column('teams', 'name_key')
    op.drop_column('submissions', 'note')
    op.drop_column('challenges', 'invite_sha256')
    op.drop_column('challenges', 'archived')
    op.drop_column('challenges', 'hidden')
    op.drop_index('ix_admin_log_at', table_name='admin_log')
    op.drop_table('admin_log')
    op.drop_table('private_datasets')
    op.drop_table('blobs')
