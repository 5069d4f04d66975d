"""annotation datasets: label schemas, records, one response per annotator

Revision ID: 0004_annotation
Revises: 0002_review
Create Date: 2026-11-29 11:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_annotation'
down_revision = '0002_review'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('annotation_datasets',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('guidelines', sa.Text(), nullable=False),
    sa.Column('questions', sa.JSON(), nullable=False),
    sa.Column('min_submitted', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('min_submitted >= 1', name=op.f('ck_annotation_datasets_min_submitted_positive')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_annotation_datasets_created_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotation_datasets')),
    sa.UniqueConstraint('name', name=op.f('uq_annotation_datasets_name'))
    )
    op.create_table('annotation_records',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=True),
    sa.Column('author_id', sa.String(length=64), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('candidates', sa.JSON(), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['annotation_datasets.id'], name=op.f('fk_annotation_records_dataset_id_annotation_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_annotation_records_message_id_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_annotation_records_author_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotation_records')),
    sa.UniqueConstraint('dataset_id', 'message_id', name='uq_annotation_records_dataset_message')
    )
    op.create_index('ix_annotation_records_dataset_position', 'annotation_records', ['dataset_id', 'position'])
    op.create_table('annotation_responses',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('annotator_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('submitted', 'discarded')", name=op.f('ck_annotation_responses_status_known')),
    sa.ForeignKeyConstraint(['record_id'], ['annotation_records.id'], name=op.f('fk_annotation_responses_record_id_annotation_records'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['dataset_id'], ['annotation_datasets.id'], name=op.f('fk_annotation_responses_dataset_id_annotation_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['annotator_id'], ['users.id'], name=op.f('fk_annotation_responses_annotator_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotation_responses')),
    sa.UniqueConstraint('record_id', 'annotator_id', name='uq_annotation_responses_record_annotator')
    )
    op.create_index('ix_annotation_responses_record_id', 'annotation_responses', ['record_id'])
    op.create_index('ix_annotation_responses_dataset_annotator', 'annotation_responses', ['dataset_id', 'annotator_id'])


def downgrade() -> None:
    op.drop_table('annotation_responses')
    op.drop_table('annotation_records')
    op.drop_table('annotation_datasets')
