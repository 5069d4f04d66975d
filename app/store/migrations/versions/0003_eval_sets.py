"""operator-registered eval sets

Revision ID: 0003_eval_sets
Revises: 0002_review
Create Date: 2026-11-29 08:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_eval_sets'
down_revision = '0002_review'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('eval_sets',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('item_count', sa.Integer(), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('items_jsonl', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_eval_sets_created_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_sets')),
    sa.UniqueConstraint('name', name=op.f('uq_eval_sets_name'))
    )


def downgrade() -> None:
    op.drop_table('eval_sets')
