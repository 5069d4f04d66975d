"""the flywheel's beat trigger state and registered lm-eval tasks in the database (were
<data dir>/flywheel_trigger.json and <data dir>/lm_eval_tasks/<name>/)

Revision ID: 0007_flywheel_state
Revises: 0006_flywheel_runs
Create Date: 2026-11-29 14:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_flywheel_state'
down_revision = '0006_flywheel_runs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'flywheel_trigger',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('feedback_count', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.String(length=128), nullable=True),
        sa.Column('triggered_at', sa.Float(), nullable=False),
        sa.Column('rev', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_flywheel_trigger')),
    )
    op.create_table(
        'lm_eval_tasks',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('files', sa.JSON(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_lm_eval_tasks')),
    )


def downgrade() -> None:
    op.drop_table('lm_eval_tasks')
    op.drop_table('flywheel_trigger')
