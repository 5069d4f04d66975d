"""flywheel iteration run records in the database (were JSON files under <data dir>/runs/)

Revision ID: 0006_flywheel_runs
Revises: 0005_model_registry
Create Date: 2026-11-29 13:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_flywheel_runs'
down_revision = '0005_model_registry'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'flywheel_runs',
        sa.Column('id', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('steps', sa.JSON(), nullable=False),
        sa.Column('current', sa.JSON(), nullable=True),
        sa.Column('heartbeat_at', sa.Float(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('wall_s', sa.Float(), nullable=True),
        sa.Column('recoveries', sa.Integer(), nullable=False),
        sa.Column('recovered_attempt', sa.String(length=512), nullable=True),
        sa.Column('extra', sa.JSON(), nullable=False),
        sa.Column('rev', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_flywheel_runs')),
    )
    op.create_index('ix_flywheel_runs_created_at', 'flywheel_runs', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_flywheel_runs_created_at', table_name='flywheel_runs')
    op.drop_table('flywheel_runs')
