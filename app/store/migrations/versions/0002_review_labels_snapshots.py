"""review labels and dataset snapshots

Revision ID: 0002_review
Revises: 0001_serving
Create Date: 2026-11-28 01:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_review'
down_revision = '0001_serving'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('review_labels',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('annotator_id', sa.String(length=64), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('rewrite', sa.Text(), nullable=True),
    sa.Column('preferred_message_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("verdict IN ('accept', 'reject', 'rewrite')", name=op.f('ck_review_labels_verdict_known')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_review_labels_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['annotator_id'], ['users.id'], name=op.f('fk_review_labels_annotator_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['preferred_message_id'], ['messages.id'], name=op.f('fk_review_labels_preferred_message_id_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_labels')),
    sa.UniqueConstraint('message_id', 'annotator_id', name='uq_review_labels_message_annotator')
    )
    with op.batch_alter_table('review_labels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_labels_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_labels_annotator_id'), ['annotator_id'], unique=False)

    op.create_table('dataset_snapshots',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('sft_jsonl', sa.Text(), nullable=False),
    sa.Column('dpo_jsonl', sa.Text(), nullable=False),
    sa.Column('kto_jsonl', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_dataset_snapshots_created_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_snapshots')),
    sa.UniqueConstraint('version', name=op.f('uq_dataset_snapshots_version'))
    )
    with op.batch_alter_table('dataset_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_snapshots_content_hash'), ['content_hash'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dataset_snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_snapshots_content_hash'))
    op.drop_table('dataset_snapshots')
    with op.batch_alter_table('review_labels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_labels_annotator_id'))
        batch_op.drop_index(batch_op.f('ix_review_labels_message_id'))
    op.drop_table('review_labels')
