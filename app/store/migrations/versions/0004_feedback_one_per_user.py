"""feedback: one record per (user, message), changes kept in feedback_changes

Until now every feedback call wrote a new row, so a thumb followed by a correction left two
records for one judgement (double counted in rates, datasets and canary verdicts). Here each
user's rows on a message merge into one, oldest first, the latest non-empty value of each field
winning; every old row becomes an audit row of `feedback_changes` (its id kept, so an outbox
replay of it is still recognised). The merged record keeps the oldest row's id and creation time.
Rows whose user was deleted (user_id NULL) cannot be told apart and stay as they are.

Revision ID: 0004_feedback_one
Revises: 0003_api_keys
Create Date: 2026-11-29 11:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_feedback_one'
down_revision = '0003_api_keys'
branch_labels = None
depends_on = None

FIELDS = ('thumbs', 'rating', 'tags', 'comment', 'correction')

_feedback = sa.table(
    'feedback', sa.column('id', sa.String), sa.column('message_id', sa.String),
    sa.column('user_id', sa.String), sa.column('thumbs', sa.String), sa.column('rating', sa.Integer),
    sa.column('tags', sa.JSON), sa.column('comment', sa.Text), sa.column('correction', sa.Text),
    sa.column('created_at', sa.DateTime(timezone=True)),
    sa.column('updated_at', sa.DateTime(timezone=True)))
_changes = sa.table(
    'feedback_changes', sa.column('id', sa.String), sa.column('feedback_id', sa.String),
    sa.column('user_id', sa.String), sa.column('values', sa.JSON), sa.column('previous', sa.JSON),
    sa.column('changed_at', sa.DateTime(timezone=True)))


def upgrade() -> None:
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(_feedback.update().values(updated_at=_feedback.c.created_at))
    changes = _merge_duplicates(op.get_bind())
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.alter_column('updated_at', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_index(batch_op.f('ix_feedback_updated_at'), ['updated_at'], unique=False)
        batch_op.create_unique_constraint('uq_feedback_user_message', ['user_id', 'message_id'])
    # Created after SQLite's batch mode rebuilt `feedback`: dropping the old copy would cascade.
    op.create_table('feedback_changes',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('feedback_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('previous', sa.JSON(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['feedback_id'], ['feedback.id'], name=op.f('fk_feedback_changes_feedback_id_feedback'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_feedback_changes_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_changes'))
    )
    with op.batch_alter_table('feedback_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_changes_feedback_id'), ['feedback_id'], unique=False)
    if changes:
        op.get_bind().execute(_changes.insert(), changes)


def _merge_duplicates(bind) -> list[dict]:
    """Fold each (user, message)'s rows into its oldest one; returns each row as one change."""
    rows = bind.execute(sa.select(_feedback).order_by(_feedback.c.created_at, _feedback.c.id)).mappings().all()
    survivors: dict[tuple, dict] = {}
    changes, doomed = [], []
    for row in rows:
        key = (row['user_id'], row['message_id']) if row['user_id'] is not None else (None, row['id'])
        values = {name: row[name] for name in FIELDS if row[name]}
        merged = survivors.get(key)
        if merged is None:
            survivors[key] = merged = {name: row[name] for name in FIELDS} | {
                'id': row['id'], 'updated_at': row['created_at'], 'merged': False}
            previous = {}
        else:
            previous = {name: merged[name] for name in values}
            merged.update(values, updated_at=row['created_at'], merged=True)
            doomed.append(row['id'])
        changes.append({'id': row['id'], 'feedback_id': merged['id'], 'user_id': row['user_id'],
                        'values': values, 'previous': previous, 'changed_at': row['created_at']})
    for merged in survivors.values():
        if merged['merged']:
            bind.execute(_feedback.update().where(_feedback.c.id == merged['id']).values(
                **{name: merged[name] for name in FIELDS}, updated_at=merged['updated_at']))
    for start in range(0, len(doomed), 500):
        bind.execute(_feedback.delete().where(_feedback.c.id.in_(doomed[start:start + 500])))
    return changes


def downgrade() -> None:
    # The merged records stay merged: the rows they were made of live on only in the audit table
    # this drops.
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_constraint('uq_feedback_user_message', type_='unique')
        batch_op.drop_index(batch_op.f('ix_feedback_updated_at'))
        batch_op.drop_column('updated_at')
    with op.batch_alter_table('feedback_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_changes_feedback_id'))
    op.drop_table('feedback_changes')
