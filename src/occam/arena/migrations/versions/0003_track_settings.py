"""per-track settings: one JSON column (track_settings) replaces the five audit_* columns

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 10:00:00

The data is carried over: an audit challenge's zoo_dir, key_path, zoo_id, public_models and private_models
(the two halves as JSON lists) become keys of its track_settings; downgrade writes them back. The old column
names appear here only because they are history.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_OLD = ('audit_zoo_dir', 'audit_key_path', 'audit_zoo_id', 'audit_public_models', 'audit_private_models')
_KEYS = ('zoo_dir', 'key_path', 'zoo_id', 'public_models', 'private_models')
_LISTS = ('public_models', 'private_models')


def _list(text: str | None) -> list:
    try:
        v = json.loads(text or '[]')
    except ValueError:
        return []
    return v if isinstance(v, list) else []


def upgrade() -> None:
    with op.batch_alter_table('challenges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('track_settings', sa.Text(), nullable=False, server_default='{}'))
    conn = op.get_bind()
    rows = conn.execute(sa.text('SELECT id, ' + ', '.join(_OLD) + ' FROM challenges')).fetchall()
    for row in rows:
        values = dict(zip(_KEYS, row[1:], strict=True))
        if all(v is None for v in values.values()):
            continue
        settings = {k: (_list(v) if k in _LISTS else v) for k, v in values.items()}
        conn.execute(sa.text('UPDATE challenges SET track_settings = :s WHERE id = :id'),
                     {'s': json.dumps(settings), 'id': row[0]})
    # recreate="never": ALTER TABLE ... DROP COLUMN (SQLite >= 3.35). Copying the table instead would DROP it, and
    # with foreign keys on, SQLite would cascade that to every submission of every challenge.
    with op.batch_alter_table('challenges', schema=None, recreate='never') as batch_op:
        for name in reversed(_OLD):
            batch_op.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table('challenges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audit_zoo_dir', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('audit_key_path', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('audit_zoo_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('audit_public_models', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('audit_private_models', sa.Text(), nullable=True))
    conn = op.get_bind()
    for cid, text in conn.execute(sa.text('SELECT id, track_settings FROM challenges')).fetchall():
        try:
            st = json.loads(text or '{}')
        except ValueError:
            continue
        if not isinstance(st, dict) or not st.get('zoo_dir'):
            continue  # only the audit track's settings had columns
        params = {old: (json.dumps(st.get(k) or []) if k in _LISTS else st.get(k)) for old, k in zip(_OLD, _KEYS, strict=True)}
        conn.execute(sa.text('UPDATE challenges SET ' + ', '.join(f'{c} = :{c}' for c in _OLD) + ' WHERE id = :id'),
                     {**params, 'id': cid})
    with op.batch_alter_table('challenges', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('track_settings')
