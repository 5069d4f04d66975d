"""api key lifecycle: last use, expiry, revocation, bootstrap flag

Keys passed with `--api-key` used to be stored as plain admin keys named 'configured' and never
revoked; those rows become bootstrap keys here so the next start with a different key revokes them.

Revision ID: 0003_api_keys
Revises: 0002_review
Create Date: 2026-11-29 08:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_api_keys'
down_revision = '0002_review'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('is_bootstrap', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.execute(sa.text("UPDATE api_keys SET is_bootstrap = :yes WHERE name = 'configured'")
               .bindparams(yes=True))


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('is_bootstrap')
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('last_used_at')
