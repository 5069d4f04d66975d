"""model registry in the database: versions (with rev and content hash) and status events

Revision ID: 0005_model_registry
Revises: 0003_api_keys
Create Date: 2026-11-29 11:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_model_registry'
down_revision = '0003_api_keys'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'model_versions',
        sa.Column('id', sa.String(length=128), nullable=False),
        sa.Column('name', sa.String(length=256), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('parent_id', sa.String(length=128), nullable=True),
        sa.Column('dataset_snapshot_id', sa.String(length=128), nullable=True),
        sa.Column('recipe', sa.JSON(), nullable=False),
        sa.Column('metrics', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.String(length=40), nullable=False),
        sa.Column('content_hash', sa.String(length=80), nullable=True),
        sa.Column('rev', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    )
    for status in ('production', 'canary'):
        op.create_index(f'uq_model_versions_one_{status}', 'model_versions', ['status'],
                        unique=True, sqlite_where=sa.text(f"status = '{status}'"),
                        postgresql_where=sa.text(f"status = '{status}'"))
    op.create_table(
        'model_version_events',
        sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('version_id', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('at', sa.String(length=40), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('rolled_back', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE',
                                name=op.f('fk_model_version_events_version_id_model_versions')),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_model_version_events')),
    )
    op.create_index(op.f('ix_model_version_events_version_id'), 'model_version_events',
                    ['version_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_model_version_events_version_id'), table_name='model_version_events')
    op.drop_table('model_version_events')
    for status in ('production', 'canary'):
        op.drop_index(f'uq_model_versions_one_{status}', table_name='model_versions')
    op.drop_table('model_versions')
