"""api key priority class: interactive (default) or batch

Revision ID: 0004_key_priority
Revises: 0003_api_keys
Create Date: 2026-11-29 11:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_key_priority'
down_revision = '0003_api_keys'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority_class', sa.String(length=16), nullable=False,
                                      server_default='interactive'))


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('priority_class')
